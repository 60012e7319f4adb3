package loki

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/prometheus/prometheus/model/labels"
)

// TestChaos pushes through a receiver that answers 429 (with and without
// Retry-After), 5xx, resets connections, stalls past the timeout, or stores
// a request and then loses the answer. Every entry must arrive, every batch
// be acknowledged once with nil, and duplicates may only come from answers
// that were lost after storing.
func TestChaos(t *testing.T) {
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(7, 11))
	var lostAfterStore atomic.Int32
	f := newFakeLoki(t, nil)
	f.respond = func(attempt int, w http.ResponseWriter, r *http.Request) bool {
		mu.Lock()
		p := rng.IntN(100)
		mu.Unlock()
		switch {
		case p < 10:
			w.Header().Set("Retry-After", "0")
			http.Error(w, "rate limited", http.StatusTooManyRequests)
		case p < 15:
			http.Error(w, "rate limited", http.StatusTooManyRequests)
		case p < 25:
			http.Error(w, "ingester unavailable", 500+p%4)
		case p < 30:
			if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
				if tc, ok := conn.(*net.TCPConn); ok {
					tc.SetLinger(0)
				}
				conn.Close()
			}
		case p < 33:
			select {
			case <-r.Context().Done():
			case <-time.After(time.Second):
			}
		case p < 38:
			// Store, then lose the answer: the sink retries, Loki has it twice.
			f.serve(noWriter{w}, r.Clone(context.Background()))
			lostAfterStore.Add(1)
			if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
				conn.Close()
			}
		default:
			return false
		}
		return true
	}
	// serve is re-entered from respond for the store-then-lose case: the
	// recursion must not consult respond again.
	inner := f.respond
	f.respond = func(attempt int, w http.ResponseWriter, r *http.Request) bool {
		if _, ok := w.(noWriter); ok {
			return false
		}
		return inner(attempt, w, r)
	}

	rep := newTestReporter()
	ctx := ferry.WithReporter(context.Background(), rep)
	s := started(t, &Sink{
		URL: f.url(), BatchBytes: 600, BatchWait: 5 * time.Millisecond, Timeout: 200 * time.Millisecond,
		MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond, MaxRetries: -1, MaxBufferedBytes: 8000,
	}, rep)
	const batches, per = 60, 25
	var acked, failed atomic.Int32
	for i := range batches {
		items := make([]ferry.Entry, per)
		for j := range items {
			n := i*per + j
			items[j] = ferry.Entry{Labels: labels.FromStrings("app", fmt.Sprint("s", n%5)), Timestamp: t0.Add(time.Duration(n)), Line: fmt.Sprintf("entry %05d", n)}
		}
		if err := s.Send(ctx, ferry.NewBatch(items, func(err error) {
			if err != nil {
				failed.Add(1)
			}
			acked.Add(1)
		})); err != nil {
			t.Fatal(err)
		}
	}
	cctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := s.Close(cctx); err != nil {
		t.Fatal(err)
	}
	if acked.Load() != batches || failed.Load() != 0 {
		t.Fatalf("acked %d (%d with errors), want %d", acked.Load(), failed.Load(), batches)
	}
	seen := map[string]int{}
	for _, r := range f.received() {
		for _, st := range r.Req.Streams {
			for _, e := range st.Entries {
				seen[e.Line]++
			}
		}
	}
	dups := 0
	for n := range batches * per {
		c := seen[fmt.Sprintf("entry %05d", n)]
		if c == 0 {
			t.Fatalf("entry %d lost", n)
		}
		dups += c - 1
	}
	if dups > 0 && lostAfterStore.Load() == 0 {
		t.Errorf("%d duplicates without lost answers", dups)
	}
	t.Logf("%d requests tried, %d retries, %d answers lost after storing, %d duplicate entries", f.attemptCount(), rep.Retries(), lostAfterStore.Load(), dups)
}

// noWriter swallows a response.
type noWriter struct{ w http.ResponseWriter }

func (n noWriter) Header() http.Header         { return http.Header{} }
func (n noWriter) Write(p []byte) (int, error) { return len(p), nil }
func (n noWriter) WriteHeader(int)             {}
