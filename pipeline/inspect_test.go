package pipeline_test

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/pipeline"
	"github.com/ferrydev/ferry/sink/sinktest"
	"github.com/ferrydev/ferry/source"
)

func ExamplePipeline_Ready() {
	b := pipeline.New()
	pipeline.To(b, "out", &sinktest.Sink[ferry.Entry]{}, pipeline.FromSource(b, "in", &source.Slice[ferry.Entry]{}))
	p, _ := b.Build()
	fmt.Println(p.Ready())
	p.Run(context.Background())
	fmt.Println(p.Ready())
	// Output:
	// pipeline not started
	// <nil>
}

// queueSink is a sink with a state of its own.
type queueSink struct{ sinktest.Sink[ferry.Entry] }

func (s *queueSink) State() []slog.Attr {
	return []slog.Attr{slog.Int("waiting", s.Len()), slog.Group("disk", slog.Int64("bytes", 4096))}
}

func ExamplePipeline_State() {
	b := pipeline.New()
	pipeline.To(b, "out", &queueSink{}, pipeline.FromSource(b, "in", &source.Slice[ferry.Entry]{Items: make([]ferry.Entry, 3)}))
	p, _ := b.Build()
	p.Run(context.Background())
	st, _ := p.State("out")
	fmt.Println(st)
	_, err := p.State("in")
	fmt.Println(err)
	// Output:
	// [waiting=3 disk=[bytes=4096]]
	// pipeline: component does not report its state
}
