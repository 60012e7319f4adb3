package scrape

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/ferrydev/ferry/httpconf"
	"github.com/ferrydev/ferry/internal/httpclient"
)

// BenchmarkScrapeTransport: GETs of the gzipped node_exporter page from a
// local server, read to the end, through the Scraper's client (httpclient.NewDirect) and, as the baseline in
// the same run, through net/http's Transport with the same settings.
func BenchmarkScrapeTransport(b *testing.B) {
	page, err := os.ReadFile("testdata/node_exporter.txt")
	if err != nil {
		b.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(page)
	zw.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Encoding", "gzip")
		w.Write(gz.Bytes())
	}))
	defer srv.Close()
	c, err := newClient(httpconf.Config{})
	if err != nil {
		b.Fatal(err)
	}
	// The same settings, on net/http's Transport alone.
	std, err := httpclient.New(httpconf.Config{}, httpclient.Options{Transport: func(t *http.Transport) http.RoundTripper {
		t.WriteBufferSize, t.ReadBufferSize = 1<<10, 1<<10
		return t
	}})
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		c    *http.Client
	}{{"direct", c}, {"net-http", std}} {
		b.Run(bc.name, func(b *testing.B) {
			buf := make([]byte, 32<<10)
			for b.Loop() {
				req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
				req.Header.Set("Accept-Encoding", "gzip")
				resp, err := bc.c.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				io.CopyBuffer(io.Discard, resp.Body, buf)
				resp.Body.Close()
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "requests/s")
		})
	}
}
