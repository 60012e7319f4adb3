package scrape

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ferrydev/ferry/internal/conntest"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/ferrydev/ferry"
)

// TestRunClosesIdleConnections: when Run returns, the client it built
// keeps no keep-alive connection open (found by the faults soak test; a
// restarted scraper left one per target behind).
func TestRunClosesIdleConnections(t *testing.T) {
	srv := conntest.NewServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		io.WriteString(w, "x 1\n")
	}))
	ctx, cancel := context.WithCancel(context.Background())
	targets := make(chan []labels.Labels, 1)
	targets <- []labels.Labels{labels.FromStrings("__address__", strings.TrimPrefix(srv.URL, "http://"))}
	out := make(chan ferry.Batch[ferry.Sample], 4)
	s := &Scraper{Interval: 50 * time.Millisecond, Timeout: 40 * time.Millisecond}
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
	srv.WaitAllClosed(t, "Run returned")
}
