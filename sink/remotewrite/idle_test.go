package remotewrite_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/internal/conntest"
	"github.com/ferrydev/ferry/sink/remotewrite"
)

// TestCloseClosesIdleConnections: a sink that built its own HTTP client
// leaves no keep-alive connection open after Close (found by the faults
// soak test).
func TestCloseClosesIdleConnections(t *testing.T) {
	srv := conntest.NewServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	s := &remotewrite.Sink{URL: srv.URL, BatchSendDeadline: 10 * time.Millisecond}
	if err := s.Start(context.Background(), ferry.NopReporter()); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	b := ferry.NewBatch([]ferry.Sample{{Labels: labels.FromStrings("__name__", "x"), T: time.Now().UnixMilli(), V: 1}}, func(err error) { done <- err })
	if err := s.Send(context.Background(), b); err != nil {
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
