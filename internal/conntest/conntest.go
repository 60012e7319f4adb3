// Package conntest provides a test HTTP server that counts its open
// connections, to check that clients close what they opened.
package conntest

import (
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
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
