package receiver

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestStatus(t *testing.T) {
	for _, tc := range []struct {
		err    error
		status int
		retry  bool
	}{
		{Errorf(413, "too big"), 413, false},
		{fmt.Errorf("wrapped: %w", retryf(429, "full")), 429, true},
		{context.Canceled, 0, false},
		{fmt.Errorf("request: %w", context.DeadlineExceeded), 0, false},
		{errors.New("malformed"), 400, false},
	} {
		if s, r := Status(tc.err); s != tc.status || r != tc.retry {
			t.Errorf("Status(%v) = %d, %v; want %d, %v", tc.err, s, r, tc.status, tc.retry)
		}
	}
	h := http.Header{}
	for d, want := range map[time.Duration]string{0: "1", 1500 * time.Millisecond: "2", 3 * time.Second: "3"} {
		SetRetryAfter(h, d)
		if got := h.Get("Retry-After"); got != want {
			t.Errorf("SetRetryAfter(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestReadBody(t *testing.T) {
	read := func(body string, limit int64) ([]byte, error) {
		req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
		return ReadBody(httptest.NewRecorder(), req, limit, nil, "test")
	}
	if b, err := read("hello", 5); err != nil || string(b) != "hello" {
		t.Errorf("within the limit: %q, %v", b, err)
	}
	_, err := read("hello!", 5)
	wantStatus(t, err, 413, false)

	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	zw.Write(bytes.Repeat([]byte("x"), 1000))
	zw.Close()
	zr, _ := gzip.NewReader(bytes.NewReader(zb.Bytes()))
	if b, err := ReadDecoded(zr, "gzip", 1000, nil, "test"); err != nil || len(b) != 1000 {
		t.Errorf("decoded within the limit: %d bytes, %v", len(b), err)
	}
	zr, _ = gzip.NewReader(bytes.NewReader(zb.Bytes()))
	_, err = ReadDecoded(zr, "gzip", 999, nil, "test")
	wantStatus(t, err, 413, false)
	zr, _ = gzip.NewReader(bytes.NewReader(zb.Bytes()[:zb.Len()-10]))
	_, err = ReadDecoded(zr, "gzip", 1000, nil, "test")
	wantStatus(t, err, 400, false)

	// Gunzip gives the same answers for a body held whole.
	if b, err := Gunzip(zb.Bytes(), 1000, []byte("p"), "test"); err != nil || len(b) != 1001 {
		t.Errorf("Gunzip within the limit: %d bytes, %v", len(b), err)
	}
	_, err = Gunzip(zb.Bytes(), 999, nil, "test")
	wantStatus(t, err, 413, false)
	_, err = Gunzip(zb.Bytes()[:zb.Len()-10], 1000, nil, "test")
	wantStatus(t, err, 400, false)
}

func TestBuffers(t *testing.T) {
	var p Buffers
	bp := p.Get()
	*bp = append(*bp, "data"...)
	p.Put(bp)
	if got := p.Get(); len(*got) != 0 {
		t.Errorf("a buffer from the pool holds %q", *got)
	}
	big := make([]byte, 0, MaxPooled+1)
	p.Put(&big) // not kept; nothing to observe but that it does not fail
	p.Put(nil)
}

func TestServe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	arrived, release := make(chan struct{}), make(chan struct{})
	s, err := Serve("", ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(arrived)
			<-release
		}
		io.WriteString(w, "ok")
	}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Err() != nil {
		t.Errorf("Err while serving: %v", s.Err())
	}
	resp, err := http.Get("http://" + s.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// A request in progress makes Shutdown give up at its timeout and
	// close the connection.
	slow := make(chan error, 1)
	go func() {
		resp, err := http.Get("http://" + s.Addr().String() + "/slow")
		if err == nil {
			resp.Body.Close()
		}
		slow <- err
	}()
	<-arrived
	if err := s.Shutdown(context.Background(), time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown with a request in progress: %v, want the deadline", err)
	}
	select {
	case <-s.Done():
	default:
		t.Error("Shutdown returned before serving stopped")
	}
	if !errors.Is(s.Err(), http.ErrServerClosed) {
		t.Errorf("Err after Shutdown: %v", s.Err())
	}
	close(release)
	if err := <-slow; err == nil {
		t.Error("the request in progress was answered after Shutdown closed it")
	}
	if _, err := Serve("256.0.0.1:1", nil, http.NotFoundHandler(), nil); err == nil {
		t.Error("no listen error")
	}
}
