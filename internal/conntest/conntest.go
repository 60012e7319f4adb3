// Package conntest provides test HTTP servers: one that counts its open
// connections, to check that clients close what they opened, and a null
// receiver for benchmarks.
package conntest

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Server is an httptest.Server that counts its open connections. It is
// closed when the test ends.
type Server struct {
	*httptest.Server

	mu   sync.Mutex
	open int
}

// NewServer starts h on a loopback address.
func NewServer(t testing.TB, h http.Handler) *Server {
	s := &Server{Server: httptest.NewUnstartedServer(h)}
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		s.mu.Lock()
		defer s.mu.Unlock()
		switch st {
		case http.StateNew:
			s.open++
		case http.StateClosed, http.StateHijacked:
			s.open--
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

// Open returns the number of connections open now.
func (s *Server) Open() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.open
}

// WaitAllClosed fails the test unless every connection closes within 5s;
// after says what should have closed them, for the message.
func (s *Server) WaitAllClosed(t testing.TB, after string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := s.Open()
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections still open after %s", n, after)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Null is a receiver that reads and discards each request's body and
// answers 204 No Content, counting requests and body bytes: the far end of
// end-to-end benchmarks.
type Null struct {
	*httptest.Server
	Requests, Bytes atomic.Int64
}

// NewNull starts a Null on a loopback address; it is closed when the test
// ends.
func NewNull(t testing.TB) *Null {
	n := &Null{}
	n.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k, _ := io.Copy(io.Discard, r.Body)
		n.Bytes.Add(k)
		n.Requests.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(n.Close)
	return n
}
