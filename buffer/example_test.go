package buffer_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/buffer"
	"github.com/ferrydev/ferry/pipeline"
	"github.com/ferrydev/ferry/sink"
	"github.com/ferrydev/ferry/source"
	"github.com/prometheus/prometheus/model/labels"
)

// A sink behind a disk buffer: one line in the pipeline. The source's
// entries are acknowledged once they are on disk; the buffer replays them
// to the console.
func Example() {
	dir, err := os.MkdirTemp("", "ferry-buffer-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)

	ts := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	in := &source.Slice[ferry.Entry]{Items: []ferry.Entry{
		{Labels: labels.FromStrings("app", "web"), Timestamp: ts, Line: "GET / 200"},
		{Labels: labels.FromStrings("app", "web"), Timestamp: ts.Add(time.Second), Line: "GET /healthz 200"},
	}}
	console := &sink.Console[ferry.Entry]{W: os.Stdout}

	b := pipeline.New()
	logs := pipeline.FromSource(b, "demo", in)
	buffered := buffer.Wrap(filepath.Join(dir, "console"), console, buffer.Options{MaxBytes: 64 << 20})
	pipeline.To(b, "console", buffered, logs)
	p, err := b.Build()
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := p.Run(context.Background()); err != nil {
		fmt.Println(err)
	}
	s := buffered.Stats()
	fmt.Printf("written %d records, acknowledged %d, waiting %d\n", s.Written, s.Acked, s.Records)
	// Output:
	// 2026-12-04T12:00:00.000Z {app="web"} GET / 200
	// 2026-12-04T12:00:01.000Z {app="web"} GET /healthz 200
	// written 1 records, acknowledged 1, waiting 0
}
