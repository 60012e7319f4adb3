package lokipush

import (
	"sync"
	"testing"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/source"
	"github.com/ferrydev/ferry/source/sourcetest"
)

// TestConformance runs the source harness on a Receiver that a pusher keeps
// busy: Run without Start must refuse, and no push may send after Run
// returned.
func TestConformance(t *testing.T) {
	for _, reject := range []bool{false, true} {
		sourcetest.Run(t, sourcetest.Harness[ferry.Entry]{
			New: func(t *testing.T) source.Source[ferry.Entry] {
				r := &Receiver{RejectWhenFull: reject}
				stop := make(chan struct{})
				var wg sync.WaitGroup
				for range 4 {
					wg.Go(func() {
						for {
							select {
							case <-stop:
								return
							default:
							}
							if do(r, "POST", "application/json", "", []byte(jsonBody)).Code != 204 {
								time.Sleep(time.Millisecond) // not running or full: push again soon
							}
						}
					})
				}
				t.Cleanup(func() { close(stop); wg.Wait() })
				return r
			},
			Want: 30,
		})
	}
}
