package sinktest_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/sink"
	"github.com/ferrydev/ferry/sink/sinktest"
)

// startedSink is a sink with the full lifecycle: Send before Start refuses.
type startedSink struct {
	sinktest.Sink[ferry.Entry]
	started atomic.Bool
}

func (s *startedSink) Start(context.Context, ferry.Reporter) error {
	s.started.Store(true)
	return nil
}

func (s *startedSink) Send(ctx context.Context, b ferry.Batch[ferry.Entry]) error {
	if !s.started.Load() {
		err := fmt.Errorf("startedSink: Send before Start: %w", ferry.ErrNotStarted)
		b.Done(err)
		return err
	}
	return s.Sink.Send(ctx, b)
}

func TestConformanceOfFakes(t *testing.T) {
	item := func(i int) ferry.Entry { return ferry.Entry{Line: fmt.Sprint(i)} }
	t.Run("fake", func(t *testing.T) {
		var last *sinktest.Sink[ferry.Entry]
		sinktest.Run(t, sinktest.Harness[ferry.Entry]{
			New:       func(*testing.T) sink.Sink[ferry.Entry] { last = &sinktest.Sink[ferry.Entry]{}; return last },
			Item:      item,
			Delivered: func() []ferry.Entry { return last.Items() },
		})
	})
	t.Run("starter", func(t *testing.T) {
		sinktest.Run(t, sinktest.Harness[ferry.Entry]{
			New:  func(*testing.T) sink.Sink[ferry.Entry] { return &startedSink{} },
			Item: item,
		})
	})
}
