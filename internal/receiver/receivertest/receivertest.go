// Package receivertest checks, for tests, the promise of a push receiver
// that no request sends on its output after its Run returned.
package receivertest

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/internal/poll"
)

// Receiver is a started receiver under test, run once by RaceRunReturn.
type Receiver[T any] struct {
	// Run runs the receiver until ctx is done.
	Run func(ctx context.Context, out chan<- ferry.Batch[T]) error
	// Push makes one request and returns how many items the answer says
	// were taken (0 when it was refused with 429 or 503), or an error for
	// any other answer.
	Push func() (int, error)
}

// Pushers is how many goroutines push at once.
const Pushers = 8

// RaceRunReturn pushes to r from Pushers goroutines while Run is
// cancelled, and closes Run's output channel as soon as Run returned, as
// a pipeline does; the pushes go on for a while after. A push that sent
// after Run returned panics with "send on closed channel"; RaceRunReturn
// also fails t when an item answered as taken did not reach the output.
func RaceRunReturn[T any](t *testing.T, r Receiver[T]) {
	t.Helper()
	out := make(chan ferry.Batch[T], 2)
	var received atomic.Int64
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for b := range out {
			received.Add(int64(len(b.Items)))
			b.Done(nil)
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan struct{})
	go func() {
		defer close(runDone)
		if err := r.Run(ctx, out); err != nil {
			t.Error(err)
		}
		close(out)
	}()
	var taken, answered atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range Pushers {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				n, err := r.Push()
				answered.Add(1)
				if err != nil {
					t.Error(err)
				}
				taken.Add(int64(n))
			}
		})
	}
	// Cancel while pushes are in full swing, push on after Run returned,
	// then stop.
	poll.Until(t, func() bool { return answered.Load() >= 50 }, "50 answers")
	cancel()
	<-runDone
	after := answered.Load()
	poll.Until(t, func() bool { return answered.Load() >= after+50 }, "50 answers after Run returned")
	close(stop)
	wg.Wait()
	<-readerDone
	if got, want := received.Load(), taken.Load(); got != want {
		t.Fatalf("%d items answered as taken, %d reached the output", want, got)
	}
}
