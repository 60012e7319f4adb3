// Package inline lets the consumer of a source's channel take the batches
// sent to it on the sender's goroutine: source.Send looks in its context
// for a Consumer of the channel it was given and, when there is one, calls
// it instead of sending. The pipeline installs one for each source when
// built WithInlineChains, so that a source's fused chain of processors and
// sink runs without a cross-core hand-off per batch.
package inline

import (
	"context"
	"sync"

	"github.com/ferrydev/ferry"
)

// Consumer consumes the batches sent to one channel, one at a time: a
// source may send from several goroutines, and the consumer's own
// goroutine (which reads what is written to the channel directly, and
// flushes on a timer) takes the same lock with Do.
type Consumer[T any] struct {
	ch chan<- ferry.Batch[T]
	fn func(ferry.Batch[T])
	mu sync.Mutex
}

// New returns a Consumer that stands for ch and hands each batch to fn.
func New[T any](ch chan<- ferry.Batch[T], fn func(ferry.Batch[T])) *Consumer[T] {
	return &Consumer[T]{ch: ch, fn: fn}
}

type key[T any] struct{}

// With returns ctx carrying c.
func With[T any](ctx context.Context, c *Consumer[T]) context.Context {
	return context.WithValue(ctx, key[T]{}, c)
}

// Lookup returns the Consumer of out that ctx carries, or nil.
func Lookup[T any](ctx context.Context, out chan<- ferry.Batch[T]) *Consumer[T] {
	c, _ := ctx.Value(key[T]{}).(*Consumer[T])
	if c == nil || c.ch != out {
		return nil
	}
	return c
}

// Send is a channel send on the sender's goroutine: it consumes b and
// returns nil, blocking for as long as the consumer does (what a full
// channel would cost), or, when ctx is done first, gives b up with ctx's
// error and returns it.
func (c *Consumer[T]) Send(ctx context.Context, b ferry.Batch[T]) error {
	if err := ctx.Err(); err != nil {
		b.Done(err)
		return err
	}
	c.Do(func() { c.fn(b) })
	return nil
}

// Do runs fn under the consumer's lock.
func (c *Consumer[T]) Do(fn func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fn()
}
