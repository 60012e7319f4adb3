package pipeline_test

import (
	"context"
	"fmt"
	"testing"
	"time"

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

// waitUntil polls cond every few milliseconds until it holds, and fails the
// test if it does not within 10 seconds.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
