package remotewrite_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/sink/remotewrite"
)

// connCounter is a test server that counts its open connections.
func connCounter(t *testing.T, h http.Handler) (*httptest.Server, func() int) {
	var mu sync.Mutex
	open := 0
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		mu.Lock()
		defer mu.Unlock()
		switch s {
		case http.StateNew:
			open++
		case http.StateClosed, http.StateHijacked:
			open--
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, func() int { mu.Lock(); defer mu.Unlock(); return open }
}

// TestCloseClosesIdleConnections: a sink that built its own HTTP client
// leaves no keep-alive connection open after Close (found by the faults
// soak test).
func TestCloseClosesIdleConnections(t *testing.T) {
	srv, open := connCounter(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	s := &remotewrite.Sink{URL: srv.URL, BatchSendDeadline: 10 * time.Millisecond}
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
	deadline := time.Now().Add(5 * time.Second)
	for open() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections still open after Close", open())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
