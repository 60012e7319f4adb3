package filetail_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/positions"
	"github.com/ferrydev/ferry/source/filetail"
	"github.com/prometheus/prometheus/model/labels"
)

func Example() {
	dir, _ := os.MkdirTemp("", "filetail-example")
	defer os.RemoveAll(dir)
	logPath := filepath.Join(dir, "app.log")
	os.WriteFile(logPath, []byte("starting\nlistening on :8080\n"), 0o644)

	// Positions survive restarts; the source saves them on Close.
	pos, err := positions.Open(filepath.Join(dir, "positions.json"), positions.Options{})
	if err != nil {
		panic(err)
	}
	src := &filetail.Source{PositionsFile: pos, StartAt: filetail.StartBeginning}

	// A discoverer (discovery/file) usually sends these target sets.
	targets := make(chan []labels.Labels, 1)
	targets <- []labels.Labels{labels.FromStrings(filetail.PathLabel, logPath, "job", "app")}
	out := make(chan ferry.Batch[ferry.Entry], 1)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error)
	if err := src.Start(ctx, ferry.NopReporter()); err != nil { // a pipeline calls Start itself
		fmt.Println(err)
		return
	}
	go func() { done <- src.Run(ctx, targets, out) }()

	b := <-out
	for _, e := range b.Items {
		fmt.Println(e.Labels.Get("job"), e.Line)
	}
	b.Done(nil) // delivered: the position may advance past these lines

	cancel()
	<-done
	src.Close(context.Background())
	// Output:
	// app starting
	// app listening on :8080
}
