package main

import (
	"context"
	"fmt"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/relabel"
	"github.com/ferrydev/ferry/source"
	"github.com/prometheus/prometheus/model/labels"
)

// demo is the built-in stream the agent prints when it has nothing else to
// read: a few lines of a pretend web server.
type demo struct {
	lines  int
	period time.Duration
	job    string
}

var demoPaths = []string{"/", "/api/v1/items", "/healthz", "/api/v1/items/42", "/login"}

func (d *demo) Run(ctx context.Context, out chan<- ferry.Batch[ferry.Entry]) error {
	ls := labels.FromStrings(relabel.JobLabel, d.job, "source", "demo")
	t := time.NewTicker(d.period)
	defer t.Stop()
	for i := 0; d.lines == 0 || i < d.lines; i++ {
		status := 200
		if i%7 == 6 {
			status = 500
		}
		e := ferry.Entry{
			Labels:    ls,
			Timestamp: time.Now(),
			Line:      fmt.Sprintf("method=GET path=%s status=%d duration=%dms", demoPaths[i%len(demoPaths)], status, 3+i*7%40),
		}
		if err := source.Send(ctx, out, ferry.NewBatch([]ferry.Entry{e}, nil)); err != nil {
			return nil
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return nil
		}
	}
	return nil
}
