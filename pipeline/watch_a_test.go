package pipeline

import (
	"context"
	"testing"
	"time"

	"github.com/ferrydev/ferry/internal/poll"
	"github.com/prometheus/prometheus/model/labels"
)

// TestWatchInputsStopsWithSlowCallback is the regression test for a
// watchInputs that sent its wake-ups unconditionally: with the callback
// busy, an input's goroutine blocked on the full wake-up channel, and
// watchInputs waited for it forever after ctx was done.
func TestWatchInputsStopsWithSlowCallback(t *testing.T) {
	for trial := range 10 {
		in := []*mailbox{newMailbox(), newMailbox()}
		ctx, cancel := context.WithCancel(context.Background())
		entered := make(chan struct{}, 1)
		release := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			watchInputs(ctx, in, func([]labels.Labels) {
				select {
				case entered <- struct{}{}:
				default:
				}
				<-release
			})
		}()
		in[0].put([]labels.Labels{labels.FromStrings("n", "0")})
		select {
		case <-entered:
		case <-time.After(10 * time.Second):
			t.Fatal("callback never called")
		}
		// Keep changing the input while the callback is busy, until the
		// input's goroutine stops taking sets: it is then blocked.
		for i := 1; i < 100; i++ {
			in[0].put([]labels.Labels{labels.FromStrings("n", "x")})
			if !poll.Wait(20*time.Millisecond, func() bool { return len(in[0].ch) == 0 }) {
				break
			}
		}
		cancel()
		close(release)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("trial %d: watchInputs did not return after ctx was done", trial)
		}
	}
}
