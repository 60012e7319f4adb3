package loki

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/pipeline"
	"github.com/ferrydev/ferry/source"
	"github.com/prometheus/prometheus/model/labels"
)

// TestInPipeline runs the sink as a pipeline does: a finite source, Run
// returns once everything is delivered and the sink is closed.
func TestInPipeline(t *testing.T) {
	f := newFakeLoki(t, nil)
	var items []ferry.Entry
	for i := range 1000 {
		items = append(items, ferry.Entry{Labels: labels.FromStrings("app", fmt.Sprint("a", i%7)), Timestamp: t0.Add(time.Duration(i)), Line: fmt.Sprint("line ", i)})
	}
	b := pipeline.New()
	logs := pipeline.FromSource(b, "slice", &source.Slice[ferry.Entry]{Items: items})
	pipeline.To(b, "loki", &Sink{URL: f.url(), BatchBytes: 4096, BatchWait: 10 * time.Millisecond}, logs)
	p, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Run(ctx); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range f.received() {
		for _, st := range r.Req.Streams {
			n += len(st.Entries)
		}
	}
	if n != len(items) {
		t.Fatalf("%d entries delivered, want %d", n, len(items))
	}

	// Build rejects an invalid sink before anything runs.
	b = pipeline.New()
	logs = pipeline.FromSource(b, "slice", &source.Slice[ferry.Entry]{})
	pipeline.To(b, "loki", &Sink{}, logs)
	if _, err := b.Build(); err == nil {
		t.Error("Build accepted a sink without URL")
	}
}
