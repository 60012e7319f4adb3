package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/pipeline"
	"github.com/ferrydev/ferry/sink/sinktest"
	"github.com/ferrydev/ferry/source"
)

// A stop past the drain deadline is not a failure: Run's error wraps
// ferry.ErrUndelivered, and the source saw its batch acknowledged with an
// error that is not settled, so it would read it again on the next start.
func ExamplePipeline_Run_undelivered() {
	stuck := &sinktest.Sink[ferry.Entry]{}
	stuck.Block() // a receiver that never answers
	b := pipeline.New(pipeline.WithDrainTimeout(100*time.Millisecond), pipeline.WithLogger(slog.New(slog.DiscardHandler)))
	src := &source.Slice[ferry.Entry]{
		Items: []ferry.Entry{{Line: "hello"}},
		Acked: func(err error) { fmt.Println("acked, settled:", ferry.Settled(err)) },
	}
	pipeline.To(b, "stuck", stuck, pipeline.FromSource(b, "lines", src))
	p, err := b.Build()
	if err != nil {
		fmt.Println(err)
		return
	}
	err = p.Run(context.Background())
	fmt.Println("undelivered:", errors.Is(err, ferry.ErrUndelivered))
	fmt.Println(err)
	// Output:
	// acked, settled: false
	// undelivered: true
	// pipeline: drain deadline of 100ms passed with 1 batch not delivered: stopped with undelivered data that will be read again on the next start
}
