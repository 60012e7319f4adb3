package docker

import (
	"context"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/docker/docker/api/types/container"

	"github.com/ferrydev/ferry/internal/poll"
)

// The client of NewClient reads log streams on the caller's goroutine:
// holding a stream open costs no goroutine of its own, where net/http's
// Transport keeps two for each connection. The engine here is an
// in-process HTTP server on a Unix socket, as the real one listens.
func TestClientStreamsWithoutGoroutines(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "docker.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var open atomic.Int32
	done := make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/_ping") {
			w.Header().Set("Api-Version", "1.45")
			return
		}
		if !strings.HasSuffix(r.URL.Path, "/logs") {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/vnd.docker.raw-stream")
		io.WriteString(w, "hello\n")
		w.(http.Flusher).Flush()
		open.Add(1)
		defer open.Add(-1)
		select {
		case <-r.Context().Done():
		case <-done:
		}
	})}
	go srv.Serve(ln)
	defer srv.Close()
	defer close(done)

	c, err := NewClient("unix://"+sock, TLSFiles{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream := func() io.ReadCloser {
		t.Helper()
		rc, err := c.ContainerLogs(ctx, "c1", container.LogsOptions{ShowStdout: true, Follow: true})
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 6)
		if _, err := io.ReadFull(rc, buf); err != nil || string(buf) != "hello\n" {
			t.Fatalf("read %q, %v", buf, err)
		}
		return rc
	}
	// The first call negotiates the API version; then count.
	stream().Close()
	poll.Until(t, func() bool { return open.Load() == 0 }, "the first stream to end")
	before := runtime.NumGoroutine()
	const n = 10
	var streams []io.ReadCloser
	for range n {
		streams = append(streams, stream())
	}
	poll.Until(t, func() bool { return open.Load() == n }, "the streams to be open")
	// The server has two goroutines for each connection with a request
	// in progress (net/http's server reads ahead on its own); the client
	// none.
	if extra := runtime.NumGoroutine() - before; extra > 2*n+n/2 {
		t.Errorf("%d goroutines more with %d streams open, want about %d (the server's)", extra, n, 2*n)
	}
	for _, rc := range streams {
		rc.Close()
	}
	poll.Until(t, func() bool { return open.Load() == 0 }, "the server to see the streams closed")
}

// CloseClient closes the connections the client keeps for its next
// requests; the Docker client's own Close knows only net/http's and left
// them open until they timed out (30 s), a file descriptor each.
func TestCloseClientClosesIdleConnections(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "docker.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var open atomic.Int32
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Api-Version", "1.45")
			io.WriteString(w, `{"Version":"28.0.0","ApiVersion":"1.45"}`)
		}),
		ConnState: func(_ net.Conn, s http.ConnState) {
			switch s {
			case http.StateNew:
				open.Add(1)
			case http.StateClosed, http.StateHijacked:
				open.Add(-1)
			}
		},
	}
	go srv.Serve(ln)
	defer srv.Close()

	c, err := NewClient("unix://"+sock, TLSFiles{})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := c.ServerVersion(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if n := open.Load(); n == 0 {
		t.Fatal("no connection kept for the next request")
	}
	if err := CloseClient(c); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, func() bool { return open.Load() == 0 }, "every connection closed after CloseClient (%d open)", open.Load())
}
