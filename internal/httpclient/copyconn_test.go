package httpclient

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/ferrydev/ferry/httpconf"
)

// A POST of a body of known length delivers it whole and does not make a
// copy buffer a request: before copyConn, net/http's io.Copy made one of
// 32 KiB for each (BENCHMARKS.md, 2026-12-06 evening).
func TestPostReusesCopyBuffers(t *testing.T) {
	var got atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body) // io.Discard copies through pooled buffers
		got.Add(n)
	}))
	defer srv.Close()
	c, err := New(httpconf.Config{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdleConnections()
	body := bytes.Repeat([]byte("0123456789abcdef"), 2<<10) // 32 KiB, as a remote-write request
	post := func() {
		resp, err := c.Post(srv.URL, "application/x-protobuf", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	for range 20 {
		post() // connections and pools warm
	}
	const n = 200
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range n {
		post()
	}
	runtime.ReadMemStats(&after)
	if want := int64(n+20) * int64(len(body)); got.Load() != want {
		t.Fatalf("server read %d bytes, want %d", got.Load(), want)
	}
	// Client and server in this process together allocate some 6 KiB a
	// request in their structures (5.7 KiB measured); a copy buffer would
	// add 32.
	per := (after.TotalAlloc - before.TotalAlloc) / n
	t.Logf("%d bytes allocated a request", per)
	if raceEnabled {
		return
	}
	if per >= 24<<10 {
		t.Errorf("%d bytes allocated a request, want under 24 KiB: a body copy buffer a request?", per)
	}
}
