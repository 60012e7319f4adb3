package filetail

import (
	"context"
	"sync/atomic"
	"time"
)

// pollClock ticks for all the readers of a Run: one timer wakes every
// waiting reader at once, where a ticker in each reader woke the process
// once for each. The readers are polled in one burst an interval, and
// polling is most of what a Source following many files that rarely grow
// does (BenchmarkIdleFiles).
type pollClock struct {
	tick atomic.Pointer[chan struct{}] // closed at the next tick
}

func newPollClock() *pollClock {
	c := &pollClock{}
	ch := make(chan struct{})
	c.tick.Store(&ch)
	return c
}

// next returns a channel that is closed at the next tick.
func (c *pollClock) next() <-chan struct{} { return *c.tick.Load() }

// run ticks every d until ctx ends.
func (c *pollClock) run(ctx context.Context, d time.Duration) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.advance()
		}
	}
}

// advance ticks: it wakes every reader waiting on next.
func (c *pollClock) advance() {
	ch := make(chan struct{})
	close(*c.tick.Swap(&ch))
}
