package loki

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/ferrydev/ferry/internal/conntest"

	"github.com/ferrydev/ferry"
	"github.com/prometheus/prometheus/model/labels"
)

// TestCloseClosesIdleConnections: a sink that built its own HTTP client
// leaves no keep-alive connection open after Close (found by the faults
// soak test: two goroutines and an FD per connection outlived the sink).
func TestCloseClosesIdleConnections(t *testing.T) {
	srv := conntest.NewServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	s := started(t, &Sink{URL: srv.URL, BatchWait: 10 * time.Millisecond}, nil)
	done := make(chan error, 1)
	err := s.Send(context.Background(), ferry.NewBatch([]ferry.Entry{{Labels: labels.FromStrings("a", "b"), Timestamp: time.Now(), Line: "x"}}, func(err error) { done <- err }))
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv.WaitAllClosed(t, "Close")
}
