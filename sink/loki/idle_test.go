package loki

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/prometheus/prometheus/model/labels"
)

// TestCloseClosesIdleConnections: a sink that built its own HTTP client
// leaves no keep-alive connection open after Close (found by the faults
// soak test: two goroutines and an FD per connection outlived the sink).
func TestCloseClosesIdleConnections(t *testing.T) {
	var mu sync.Mutex
	open := 0
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
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
	defer srv.Close()
	s := &Sink{URL: srv.URL, BatchWait: 10 * time.Millisecond}
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
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := open
		mu.Unlock()
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections still open after Close", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
