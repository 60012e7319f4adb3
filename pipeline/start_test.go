package pipeline_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/pipeline"
	"github.com/ferrydev/ferry/sink/sinktest"
	"github.com/ferrydev/ferry/source"
)

// startingSink records its lifecycle: Start must come before any Send, with
// the component's own Reporter, and a failed Start must stop the Run.
type startingSink struct {
	sinktest.Sink[ferry.Entry]
	startErr  error
	started   atomic.Bool
	sendEarly atomic.Bool
	rep       ferry.Reporter
	closed    atomic.Int32
}

func (s *startingSink) Start(ctx context.Context, r ferry.Reporter) error {
	s.rep = r
	if s.startErr != nil {
		return s.startErr
	}
	s.started.Store(true)
	return nil
}

func (s *startingSink) Send(ctx context.Context, b ferry.Batch[ferry.Entry]) error {
	if !s.started.Load() {
		s.sendEarly.Store(true)
	}
	return s.Sink.Send(ctx, b)
}

func (s *startingSink) Close(ctx context.Context) error {
	s.closed.Add(1)
	return s.Sink.Close(ctx)
}

func TestStartBeforeSend(t *testing.T) {
	s := &startingSink{}
	b := pipeline.New()
	pipeline.To(b, "out", s, pipeline.FromSource(b, "in", &source.Slice[ferry.Entry]{Items: []ferry.Entry{{Line: "a"}, {Line: "b"}}}))
	p, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s.sendEarly.Load() || !s.started.Load() {
		t.Fatalf("started=%v, sent before start=%v", s.started.Load(), s.sendEarly.Load())
	}
	if s.rep == nil || s.rep.Logger() == nil {
		t.Fatal("Start got no Reporter")
	}
	if got := s.Len(); got != 2 {
		t.Fatalf("delivered %d entries, want 2", got)
	}
}

func TestFailedStartRunsNothing(t *testing.T) {
	first := &startingSink{}
	second := &startingSink{startErr: errors.New("cannot open /nonexistent")}
	b := pipeline.New()
	in := pipeline.FromSource(b, "in", &source.Slice[ferry.Entry]{Items: []ferry.Entry{{Line: "a"}}})
	pipeline.To(b, "first", first, in)
	pipeline.To(b, "second", second, in)
	p, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	err = p.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), `"second": start: cannot open`) {
		t.Fatalf("Run: %v", err)
	}
	if first.Len() != 0 || second.Len() != 0 {
		t.Fatalf("data flowed after a failed start: %d, %d", first.Len(), second.Len())
	}
	if first.closed.Load() != 1 {
		t.Fatalf("the started sink was closed %d times, want 1", first.closed.Load())
	}
}
