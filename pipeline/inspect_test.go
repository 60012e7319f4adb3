package pipeline_test

import (
	"context"
	"fmt"

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
