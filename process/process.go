// Package process defines Processor, the contract of the components that
// transform batches between sources and sinks, with Func, Filter and Map for
// processors that are one function. Log stages (parse, filter, rate limit,
// join lines) are in process/stage; relabeling is in package relabel.
package process

import (
	"context"

	"github.com/ferrydev/ferry"
)

// Processor transforms batches of T.
//
// Process takes ownership of b and returns the batch to pass on. It may
// modify b.Items in place, filter them (items it removes count as done) or
// return a different batch; whatever it returns must carry every
// acknowledgement of the items it holds (ferry.JoinAcks when merging,
// Ack.Retain when splitting). A returned batch with no items is acknowledged
// by the pipeline as done.
//
// A non-nil error means b could not be processed at all: the processor must
// not have acknowledged b, and the pipeline acknowledges it with the error
// and counts the items as dropped. Return ferry.Permanent errors for bad
// data, so that sources do not read it again.
//
// A pipeline calls Process from one goroutine at a time per node, in the
// order batches arrive, but a processor value wired into several nodes is
// called concurrently and must be safe for that.
type Processor[T any] interface {
	Process(ctx context.Context, b ferry.Batch[T]) (ferry.Batch[T], error)
}

// Flusher is implemented by processors that hold items across calls, such as
// one that joins the lines of a multi-line message. The pipeline calls Flush
// every flush interval, and once more when the input has ended, with a
// context for which IsFinal is true: then Flush must hand on everything it
// holds. Flush returns what should go on now (possibly nothing), with its
// acknowledgements.
type Flusher[T any] interface {
	Flush(ctx context.Context) (ferry.Batch[T], error)
}

type finalKey struct{}

// Final returns a context that marks a Flush call as the last one: the
// input has ended and nothing more will come.
func Final(ctx context.Context) context.Context { return context.WithValue(ctx, finalKey{}, true) }

// IsFinal reports whether ctx marks the last Flush call (see Final).
func IsFinal(ctx context.Context) bool {
	v, _ := ctx.Value(finalKey{}).(bool)
	return v
}

// Func adapts an ordinary function to the Processor interface. A nil Func
// passes batches through unchanged.
type Func[T any] func(ctx context.Context, b ferry.Batch[T]) (ferry.Batch[T], error)

// Process calls f.
func (f Func[T]) Process(ctx context.Context, b ferry.Batch[T]) (ferry.Batch[T], error) {
	if f == nil {
		return b, nil
	}
	return f(ctx, b)
}

// Filter returns a Processor that keeps the items for which keep returns
// true. It works in place and allocates nothing.
func Filter[T any](keep func(*T) bool) Processor[T] {
	return Func[T](func(_ context.Context, b ferry.Batch[T]) (ferry.Batch[T], error) {
		n := 0
		for i := range b.Items {
			if keep(&b.Items[i]) {
				b.Items[n] = b.Items[i]
				n++
			}
		}
		clear(b.Items[n:])
		b.Items = b.Items[:n]
		return b, nil
	})
}

// Map returns a Processor that calls fn on every item, in place.
func Map[T any](fn func(*T)) Processor[T] {
	return Func[T](func(_ context.Context, b ferry.Batch[T]) (ferry.Batch[T], error) {
		for i := range b.Items {
			fn(&b.Items[i])
		}
		return b, nil
	})
}
