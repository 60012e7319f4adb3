package lokipush

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/internal/receiver/receivertest"
)

// TestPushesRacingShutdown is the regression test for a Run that returned
// while pushes were still handing their batch to out: the caller closes out
// once Run returned, as a pipeline does, and a push that sent afterwards
// panicked with "send on closed channel". Many pushes race the cancellation
// of Run; none may panic, and every push answered 204 must have reached out.
func TestPushesRacingShutdown(t *testing.T) {
	for _, reject := range []bool{false, true} {
		for range 10 {
			r := &Receiver{RejectWhenFull: reject}
			if err := r.Start(context.Background(), ferry.NopReporter()); err != nil {
				t.Fatal(err)
			}
			receivertest.RaceRunReturn(t, receivertest.Receiver[ferry.Entry]{
				Run: r.Run,
				Push: func() (int, error) {
					switch w := do(r, "POST", "application/json", "", []byte(jsonBody)); w.Code {
					case http.StatusNoContent:
						return 3, nil // jsonBody holds 3 entries
					case http.StatusServiceUnavailable, http.StatusTooManyRequests:
						return 0, nil
					default:
						return 0, fmt.Errorf("status %d: %s", w.Code, w.Body)
					}
				},
			})
			r.Close(context.Background())
		}
	}
}
