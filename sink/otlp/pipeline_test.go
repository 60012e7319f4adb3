package otlp

import (
	"context"
	"testing"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/pipeline"
	"github.com/ferrydev/ferry/source"
)

// TestPipeline has a pipeline start the sink, feed it a finite source and
// close it: everything reaches the receiver.
func TestPipeline(t *testing.T) {
	f := newFake(t, nil)
	s := &LogsSink{Config: Config{URL: f.url, BatchWait: time.Hour}}
	b := pipeline.New()
	pipeline.To(b, "otlp", s, pipeline.FromSource[ferry.Entry](b, "entries", &source.Slice[ferry.Entry]{Items: testEntries()}))
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
	for _, rl := range f.logs(t) {
		n += len(rl.GetScopeLogs()[0].GetLogRecords())
	}
	if n != 3 {
		t.Errorf("%d records delivered, want 3 (Close flushes)", n)
	}
}
