// Package source defines Source and TargetSource, the contracts of the
// components that produce data, and holds Reader (lines of an io.Reader)
// and Slice (fixed items, for tests). The others are in its subpackages:
// dockerlogs (container logs), filetail (files), lokipush (the Loki push
// API), gather (a program's own metrics) and sourcetest (a conformance
// harness); scrape.Scraper is a source of samples too.
// Sources emit batches; the pipeline carries them to processors and sinks and
// brings the acknowledgements back.
package source

import (
	"context"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/internal/inline"
	"github.com/prometheus/prometheus/model/labels"
)

// Source produces batches of T (ferry.Entry or ferry.Sample).
//
// Run sends batches on out until its input is exhausted or ctx is done, and
// then returns. Once sent, a batch belongs to the receiver, which reports its
// outcome through the batch's Ack; a source that keeps positions advances
// them only on outcomes for which ferry.Settled is true, so that data is
// delivered at least once. Sends block when the pipeline is full: that is the
// backpressure, and a source must stop reading rather than buffer without
// bound. A source that gives up a batch it could not send (ctx done) calls
// its Done with the context's error.
//
// Run returns nil when the input is exhausted (a finite source) or ctx is
// done. It never closes out, and it never sends on out after it returned:
// goroutines it started (per file, per container, per request) have stopped
// sending by then, since the caller may close out or stop reading it as soon
// as Run returned. A non-nil error means the source failed; a pipeline
// restarts it with backoff, unless the error is permanent.
//
// A source that holds resources implements ferry.Starter: Start is called
// once before the first Run (a pipeline restarts Run without a new Start),
// and Run without Start returns an error saying so rather than starting
// anything itself.
//
// Acknowledgements can arrive after Run returned. A source that persists
// state may also implement Closer; the pipeline calls Close after everything
// downstream has drained, so the last acknowledged position is the one saved.
type Source[T any] interface {
	Run(ctx context.Context, out chan<- ferry.Batch[T]) error
}

// TargetSource produces batches of T for a changing set of targets, such as
// the containers a Docker discoverer finds or the endpoints to scrape.
//
// Run behaves as Source.Run and in addition receives complete target sets on
// targets, each replacing the one before: the source starts reading for new
// targets and stops for vanished ones. The first set arrives shortly after
// Run starts, and again after every restart. Run never closes out, and when
// it returns, the readers it started for targets have stopped sending on
// out: none sends after Run returned. The pipeline never closes targets
// while Run is running.
type TargetSource[T any] interface {
	Run(ctx context.Context, targets <-chan []labels.Labels, out chan<- ferry.Batch[T]) error
}

// Closer is implemented by sources and discoverers that hold state to save or
// resources to free. The pipeline calls Close once, after every sink has
// flushed, so that positions reflect the last acknowledgements. The context
// carries the drain deadline.
type Closer interface {
	Close(ctx context.Context) error
}

// Send sends b on out, or, if ctx ends first, reports ctx's error as b's
// outcome and returns it. It is the usual way for a source to emit.
//
// When ctx is (derived from) the context a pipeline built with
// pipeline.WithInlineChains gave the source's Run, Send runs the batch
// through what consumes out (processors, and a sink fused with them) on
// the calling goroutine instead, and returns when they have taken it. b's
// acknowledgement may then run before Send returns, on the same goroutine,
// as it does when ctx ends: a source must not hold a lock across Send that
// its acknowledgement takes.
func Send[T any](ctx context.Context, out chan<- ferry.Batch[T], b ferry.Batch[T]) error {
	if c := inline.Lookup(ctx, out); c != nil {
		return c.Send(ctx, b)
	}
	select {
	case out <- b:
		return nil
	case <-ctx.Done():
		b.Done(ctx.Err())
		return ctx.Err()
	}
}

// PositionReporter is implemented by sources that keep read positions
// (file offsets, container log timestamps), so that a pipeline can show
// them. Positions returns a copy, keyed as in the positions file, of the
// positions acknowledged so far.
type PositionReporter interface {
	Positions() map[string]string
}
