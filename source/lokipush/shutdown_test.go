package lokipush

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrydev/ferry"
)

// TestPushesRacingShutdown is the regression test for a Run that returned
// while pushes were still handing their batch to out: the caller closes out
// once Run returned, as a pipeline does, and a push that sent afterwards
// panicked with "send on closed channel". Many pushes race the cancellation
// of Run; none may panic, and every push answered 204 must have reached out.
func TestPushesRacingShutdown(t *testing.T) {
	for _, reject := range []bool{false, true} {
		for trial := range 10 {
			r := &Receiver{RejectWhenFull: reject}
			if err := r.Start(context.Background(), ferry.NopReporter()); err != nil {
				t.Fatal(err)
			}
			out := make(chan ferry.Batch[ferry.Entry], 2)
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
				close(out) // what a pipeline does once Run returned
			}()

			var accepted, answered atomic.Int64
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for range 16 {
				wg.Go(func() {
					for {
						select {
						case <-stop:
							return
						default:
						}
						w := do(r, "POST", "application/json", "", []byte(jsonBody))
						answered.Add(1)
						switch w.Code {
						case http.StatusNoContent:
							accepted.Add(3) // jsonBody holds 3 entries
						case http.StatusServiceUnavailable, http.StatusTooManyRequests:
						default:
							t.Errorf("status %d: %s", w.Code, w.Body)
						}
					}
				})
			}
			// Cancel while pushes are in full swing, keep pushing after
			// Run returned, then stop.
			for answered.Load() < 50 {
				time.Sleep(100 * time.Microsecond)
			}
			cancel()
			<-runDone
			after := answered.Load()
			for answered.Load() < after+50 {
				time.Sleep(100 * time.Microsecond)
			}
			close(stop)
			wg.Wait()
			<-readerDone
			if got, want := received.Load(), accepted.Load(); got != want {
				t.Fatalf("reject=%v trial %d: %d entries answered 204, %d reached out", reject, trial, want, got)
			}
			r.Close(context.Background())
		}
	}
}
