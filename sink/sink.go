// Package sink defines Sink, the contract of the components that deliver
// data, and holds the simplest ones: Console and Discard. The others are
// in its subpackages: loki (the Loki push API), remotewrite (Prometheus
// remote write) and sinktest (a recording fake and a conformance harness).
package sink

import (
	"context"

	"github.com/ferrydev/ferry"
)

// Sink delivers batches of T.
//
// Send takes ownership of b whatever it returns, and reports b's outcome
// exactly once through b.Done: nil after the receiver accepted every item, a
// ferry.Permanent error after items were dropped for good (counted with
// Reporter.Dropped, on the Reporter given to Start or, for a sink without
// Start, the one in ctx), or another error when the sink gave up on them
// (it was closed, the drain deadline passed) and they may be read again.
// Send may return before delivery (queueing the batch) or block until there
// is room: blocking is the backpressure that stops sources from reading. It
// must return when ctx is done. A non-nil error from Send says the sink is in
// trouble and is shown in its health; the batch is still the sink's to
// acknowledge.
//
// Close flushes what the sink holds, within ctx's deadline, and acknowledges
// everything not delivered by then with an error. After Close, Send
// acknowledges batches with an error. Close may be called more than once,
// without any Send, and without Start.
//
// A sink that holds resources (clients, goroutines, files) implements
// ferry.Starter and opens them in Start, which a pipeline calls once before
// the first Send; a program using the sink directly calls it itself. Send
// before Start starts nothing: it acknowledges the batch with an error that
// is not permanent (the data may be read again) and returns an error saying
// Start is required.
//
// The pipeline calls Send from one goroutine per node; sinks used directly
// may be called concurrently and must be safe for that.
type Sink[T any] interface {
	Send(ctx context.Context, b ferry.Batch[T]) error
	Close(ctx context.Context) error
}
