package httpclient

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrydev/ferry/httpconf"
	"github.com/ferrydev/ferry/internal/poll"
)

// directServer serves h and counts the connections it accepted.
func directServer(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int32) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &conns
}

// rawServer serves each connection it accepts on a loopback port with
// serve, which may answer in ways net/http's server would not, then closes
// it; it returns the address and a count of the connections accepted.
func rawServer(t *testing.T, serve func(net.Conn)) (string, *atomic.Int32) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	var accepted atomic.Int32
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			go func() {
				defer conn.Close()
				serve(conn)
			}()
		}
	}()
	return l.Addr().String(), &accepted
}

func directClient(t *testing.T) (*http.Client, *direct) {
	c, err := New(httpconf.Config{}, Options{Transport: NewDirect})
	if err != nil {
		t.Fatal(err)
	}
	d, ok := c.Transport.(*direct)
	if !ok {
		t.Fatalf("transport is %T, want *direct", c.Transport)
	}
	t.Cleanup(d.CloseIdleConnections)
	return c, d
}

func get(ctx context.Context, c *http.Client, url string, limit int64) (string, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	return string(b), err
}

// TestDirectKeepsConnections: plain GETs, with a length or chunked, use one
// connection; a body not read to its end, or a response that closes the
// connection, does not go back to the pool.
func TestDirectKeepsConnections(t *testing.T) {
	srv, conns := directServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/chunked":
			for i := range 3 {
				fmt.Fprintf(w, "part%d ", i)
				w.(http.Flusher).Flush()
			}
		case "/big":
			w.Write([]byte(strings.Repeat("x", 100000)))
		case "/close":
			w.Header().Set("Connection", "close")
			w.Write([]byte("bye"))
		default:
			w.Write([]byte("ok " + r.Header.Get("User-Agent")))
		}
	})
	c, d := directClient(t)
	ctx := context.Background()
	for i := range 20 {
		path := "/"
		if i%2 == 1 {
			path = "/chunked"
		}
		body, err := get(ctx, c, srv.URL+path, 1<<20)
		if err != nil || body == "" {
			t.Fatalf("GET %s: %q, %v", path, body, err)
		}
		// An idle connection gives its read buffer back.
		d.mu.Lock()
		for _, list := range d.idle {
			for _, pc := range list {
				if pc.br != nil {
					t.Errorf("GET %s: an idle connection holds a read buffer", path)
				}
			}
		}
		d.mu.Unlock()
	}
	if body, _ := get(ctx, c, srv.URL+"/chunked", 1<<20); body != "part0 part1 part2 " {
		t.Errorf("chunked body %q", body)
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("21 GETs used %d connections, want 1", n)
	}
	if _, err := get(ctx, c, srv.URL+"/big", 10); err != nil {
		t.Fatal(err)
	}
	get(ctx, c, srv.URL+"/", 1<<20)
	if n := conns.Load(); n != 2 {
		t.Fatalf("after a body left unread: %d connections, want 2", n)
	}
	get(ctx, c, srv.URL+"/close", 1<<20)
	get(ctx, c, srv.URL+"/", 1<<20)
	if n := conns.Load(); n != 3 {
		t.Fatalf("after Connection: close: %d connections, want 3", n)
	}
}

// TestDirectRetriesClosedConnection: a server that closes each connection
// after one answer, without saying so, costs a retry, not a failed scrape.
func TestDirectRetriesClosedConnection(t *testing.T) {
	addr, accepted := rawServer(t, func(conn net.Conn) {
		if _, err := http.ReadRequest(bufio.NewReader(conn)); err == nil {
			io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	c, _ := directClient(t)
	for i := range 3 {
		if body, err := get(context.Background(), c, "http://"+addr+"/", 100); err != nil || body != "ok" {
			t.Fatalf("GET %d: %q, %v", i, body, err)
		}
	}
	if n := accepted.Load(); n != 3 {
		t.Errorf("%d connections, want 3", n)
	}
}

// TestDirectDropsConnectionWithLeftover: bytes after a whole response (a
// server that wrote more than its Content-Length) would be read as the
// start of the next response; the connection is closed instead of reused.
func TestDirectDropsConnectionWithLeftover(t *testing.T) {
	addr, accepted := rawServer(t, func(conn net.Conn) {
		br := bufio.NewReader(conn)
		for {
			if _, err := http.ReadRequest(br); err != nil {
				return
			}
			// One write: the extra bytes arrive with the response.
			io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 500 Junk\r\n\r\n")
		}
	})
	c, d := directClient(t)
	for i := range 3 {
		if body, err := get(context.Background(), c, "http://"+addr+"/", 100); err != nil || body != "ok" {
			t.Fatalf("GET %d: %q, %v", i, body, err)
		}
	}
	if n := accepted.Load(); n != 3 {
		t.Errorf("%d connections, want 3: one with bytes left over was reused", n)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.idle) != 0 {
		t.Errorf("idle connections kept: %v", d.idle)
	}
}

// TestDirectTimeout: the request's context ends a slow answer, in the
// header or in the body, with the context's error.
func TestDirectTimeout(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	srv, _ := directServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/x":
			w.Write([]byte("x"))
			return
		case "/body":
			w.Write([]byte("start"))
			w.(http.Flusher).Flush()
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	c, _ := directClient(t)
	for _, path := range []string{"/head", "/body"} {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		start := time.Now()
		_, err := get(ctx, c, srv.URL+path, 1<<20)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s: err %v, want the deadline", path, err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("%s: took %v", path, d)
		}
	}
	// The connections were closed, not pooled: the next GET works.
	if body, err := get(context.Background(), c, srv.URL+"/x", 1); err != nil || body != "x" {
		t.Errorf("after timeouts: %q, %v", body, err)
	}
}

// TestDirectIdleTimeout: an idle connection is closed after the transport's
// idle timeout.
func TestDirectIdleTimeout(t *testing.T) {
	srv, conns := directServer(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
	c, d := directClient(t)
	d.std.IdleConnTimeout = 50 * time.Millisecond
	get(context.Background(), c, srv.URL, 10)
	poll.Until(t, func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		return len(d.idle) == 0
	}, "the idle connection to close after the idle timeout")
	get(context.Background(), c, srv.URL, 10)
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

// TestDirectRoute: what direct sends itself and what it leaves to
// net/http's Transport.
func TestDirectRoute(t *testing.T) {
	h1 := newDirect(&http.Transport{})
	h2 := newDirect(&http.Transport{Protocols: new(http.Protocols)})
	h2.std.Protocols.SetHTTP2(true)
	proxied := newDirect(&http.Transport{Proxy: http.ProxyURL(mustURL(t, "http://proxy:3128"))})
	for _, tc := range []struct {
		d      *direct
		method string
		url    string
		key    string
	}{
		{h1, "GET", "http://h:9100/metrics", "http://h:9100"},
		{h1, "GET", "http://h/metrics", "http://h:80"},
		{h1, "GET", "https://h/metrics", "https://h:443"},
		{h1, "GET", "http://[::1]:9100/metrics", "http://[::1]:9100"},
		{h1, "POST", "http://h:9100/", ""},
		{h2, "GET", "https://h:9100/", ""},
		{h2, "GET", "http://h:9100/", "http://h:9100"},
		{proxied, "GET", "http://h:9100/", ""},
	} {
		req, _ := http.NewRequest(tc.method, tc.url, nil)
		key, _, ok := tc.d.route(req)
		if ok != (tc.key != "") || key != tc.key {
			t.Errorf("%s %s: key %q ok %v, want %q", tc.method, tc.url, key, ok, tc.key)
		}
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
