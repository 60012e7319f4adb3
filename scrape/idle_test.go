package scrape

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrydev/ferry/internal/conntest"
	"github.com/ferrydev/ferry/internal/poll"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/ferrydev/ferry"
)

// TestCloseClosesIdleConnections: after Run returned and Close, the client
// Start built keeps no keep-alive connection open (found by the faults soak
// test; a restarted scraper left one per target behind, when every Run
// built a client).
func TestCloseClosesIdleConnections(t *testing.T) {
	srv := conntest.NewServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		io.WriteString(w, "x 1\n")
	}))
	ctx, cancel := context.WithCancel(context.Background())
	targets := make(chan []labels.Labels, 1)
	targets <- []labels.Labels{labels.FromStrings("__address__", strings.TrimPrefix(srv.URL, "http://"))}
	out := make(chan ferry.Batch[ferry.Sample], 4)
	s := started(t, &Scraper{Interval: 50 * time.Millisecond, Timeout: 40 * time.Millisecond})
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, targets, out) }()
	b := <-out
	b.Done(nil)
	cancel()
	go func() {
		for b := range out {
			b.Done(nil)
		}
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	close(out)
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv.WaitAllClosed(t, "Close")
}

// An idle target holds no goroutine, only a timer: 200 targets between
// scrapes add none, and removing them all sends their end-of-run markers.
func TestIdleTargetsHoldNoGoroutine(t *testing.T) {
	p := &page{}
	p.set("m 1\n", textType)
	srv := httptest.NewServer(p)
	defer srv.Close()
	s := &Scraper{Interval: time.Hour}
	h := start(t, s)
	g0 := runtime.NumGoroutine()
	var set []labels.Labels
	for i := range 200 {
		set = append(set, labels.FromStrings("__address__", addr(srv), "__param_i", strconv.Itoa(i)))
	}
	h.targets <- set
	poll.Until(t, func() bool { return len(s.Targets()) >= 200 }, "200 targets")
	if g := runtime.NumGoroutine(); g > g0+5 {
		t.Errorf("%d goroutines for 200 idle targets, %d before", g, g0)
	}
	h.targets <- nil
	poll.Until(t, func() bool { return len(s.Targets()) == 0 }, "no targets")
	select {
	case b := <-h.out:
		t.Errorf("a batch from targets never scraped: %d samples", len(b.Items))
	case <-time.After(50 * time.Millisecond):
	}
}

// Scrapes keep their phase: one an interval, and a scrape held up (here by
// a consumer that stops reading) skips the ticks it missed instead of
// catching up in a burst.
func TestScheduleSkipsMissedTicks(t *testing.T) {
	var mu sync.Mutex
	var at []time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		at = append(at, time.Now())
		mu.Unlock()
		w.Header().Set("Content-Type", textType)
		io.WriteString(w, "m 1\n")
	}))
	defer srv.Close()
	// Unbuffered: a scrape waits for the reader.
	h := startOut(t, &Scraper{Interval: 50 * time.Millisecond}, make(chan ferry.Batch[ferry.Sample]))
	h.targets <- []labels.Labels{labels.FromStrings("__address__", addr(srv))}
	for i := range 12 {
		b := <-h.out
		b.Done(nil)
		if i == 4 {
			time.Sleep(300 * time.Millisecond) // six ticks missed
		}
	}
	h.stop()
	mu.Lock()
	defer mu.Unlock()
	// A late timer may bring one scrape close to the next tick; a burst
	// brings several together.
	bunched := 0
	for i := 1; i < len(at); i++ {
		if at[i].Sub(at[i-1]) < 5*time.Millisecond {
			bunched++
		}
	}
	if bunched > 1 {
		t.Errorf("%d scrapes within 5ms of the one before, interval 50ms: %v", bunched, at)
	}
}
