package httpclient

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"testing"
)

// wrote returns what write makes of req, or its error.
func wrote(t *testing.T, req *http.Request, write func(*bufio.Writer, *http.Request) error) (string, error) {
	t.Helper()
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	err := write(w, req)
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	return buf.String(), err
}

// sameAsRequestWrite fails t unless writeGET and Request.Write give req
// the same bytes, or both fail.
func sameAsRequestWrite(t *testing.T, req *http.Request) {
	t.Helper()
	got, err := wrote(t, req, writeGET)
	want, werr := wrote(t, req, func(w *bufio.Writer, r *http.Request) error { return r.Write(w) })
	if (err == nil) != (werr == nil) || got != want {
		t.Fatalf("writeGET:\n%q, %v\nRequest.Write:\n%q, %v", got, err, want, werr)
	}
}

// The requests a scrape sends, and the ones writeGET leaves to
// Request.Write, come out as Request.Write writes them.
func TestWriteGET(t *testing.T) {
	get := func(u string, h map[string][]string) *http.Request {
		req, err := http.NewRequest(http.MethodGet, u, nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range h {
			req.Header[k] = v
		}
		return req
	}
	scrape := map[string][]string{
		"Accept":                              {"application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1"},
		"Accept-Encoding":                     {"gzip"},
		"User-Agent":                          {"Ferry/0.1"},
		"X-Prometheus-Scrape-Timeout-Seconds": {"10"},
	}
	for name, req := range map[string]*http.Request{
		"scrape":           get("http://127.0.0.1:9100/metrics", scrape),
		"query":            get("http://[::1]:9100/metrics?collect[]=cpu&x=%20y", scrape),
		"no user agent":    get("http://h/m", map[string][]string{"User-Agent": {""}}),
		"user agent nil":   get("http://h/m", map[string][]string{"User-Agent": nil}),
		"default agent":    get("http://h/m", nil),
		"two values":       get("http://h/m", map[string][]string{"X-A": {"1", "2"}, "A-B": {""}}),
		"excluded":         get("http://h/m", map[string][]string{"Host": {"other"}, "Content-Length": {"5"}, "Trailer": {"x"}, "Transfer-Encoding": {"chunked"}}),
		"bad name":         get("http://h/m", map[string][]string{"Bad Name": {"v"}, "Ok": {"v"}}),
		"value to trim":    get("http://h/m", map[string][]string{"X": {" v\t"}}),
		"value with CRLF":  get("http://h/m", map[string][]string{"X": {"a\r\nInjected: 1"}}),
		"agent with LF":    get("http://h/m", map[string][]string{"User-Agent": {"a\nb"}}),
		"unicode host":     get("http://bücher.example/m", nil),
		"zone":             get("http://[fe80::1%25eth0]:9100/m", nil),
		"underscore host":  get("http://my_host:80/m", nil),
		"many headers":     get("http://h/m", map[string][]string{"A": {"1"}, "B": {"1"}, "C": {"1"}, "D": {"1"}, "E": {"1"}, "F": {"1"}, "G": {"1"}, "H": {"1"}, "I": {"1"}, "J": {"1"}, "K": {"1"}, "L": {"1"}, "M": {"1"}, "N": {"1"}, "O": {"1"}, "P": {"1"}, "Q": {"1"}, "R": {"1"}}),
		"opaque":           {Method: http.MethodGet, URL: &url.URL{Scheme: "http", Opaque: "//h/a%2Fb", Host: "h"}, Header: http.Header{}},
		"control in path":  {Method: http.MethodGet, URL: &url.URL{Scheme: "http", Host: "h", Path: "/a\x01"}, Header: http.Header{}},
		"host field":       func() *http.Request { r := get("http://h/m", nil); r.Host = "virtual:8080"; return r }(),
		"close":            func() *http.Request { r := get("http://h/m", nil); r.Close = true; return r }(),
		"host with space":  func() *http.Request { r := get("http://h/m", nil); r.Host = "a b"; return r }(),
		"traced":           get("http://h/m", nil).WithContext(httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{})),
		"empty header map": {Method: http.MethodGet, URL: &url.URL{Scheme: "http", Host: "h", Path: "/"}},
	} {
		t.Run(name, func(t *testing.T) { sameAsRequestWrite(t, req) })
	}

	// A scrape's request takes writeGET's own path, which allocates
	// nothing (Request.Write allocates 5 times).
	req := get("http://127.0.0.1:9100/metrics", scrape)
	w := bufio.NewWriter(io.Discard)
	if n := testing.AllocsPerRun(100, func() { writeGET(w, req) }); n != 0 {
		t.Errorf("writeGET allocated %v times: not its own path", n)
	}
}

// FuzzWriteGET holds writeGET to Request.Write for any host, path, header
// and user agent.
func FuzzWriteGET(f *testing.F) {
	f.Add("127.0.0.1:9100", "/metrics", "Accept", "text/plain", "Ferry/0.1", "q=1")
	f.Add("[::1]", "/a b", "X-Y", " v ", "", "")
	f.Add("h", "/", "Bad Name", "a\r\nb", "\tua", "x\x00y")
	f.Fuzz(func(t *testing.T, host, path, key, value, ua, query string) {
		req := &http.Request{
			Method: http.MethodGet,
			URL:    &url.URL{Scheme: "http", Host: host, Path: path, RawQuery: query},
			Header: http.Header{key: {value}, "User-Agent": {ua}, "Accept": {"x"}},
		}
		sameAsRequestWrite(t, req)
	})
}
