package scrape

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/ferrydev/ferry/httpconf"
	"github.com/ferrydev/ferry/internal/httpclient"
)

// BenchmarkScrapeTransport: GETs of the gzipped node_exporter page from a
// local server, read to the end: by a loop's fetch (its request made once,
// its body read into a pooled buffer), and, as baselines in the same run,
// with a new request a GET through the Scraper's client
// (httpclient.NewDirect) and through net/http's Transport with the same
// settings.
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
	s := &Scraper{Interval: time.Hour, Client: c}
	if err := s.Start(context.Background(), nil); err != nil {
		b.Fatal(err)
	}
	defer s.Close(context.Background())
	tg, err := s.resolve(labels.FromStrings(model.AddressLabel, strings.TrimPrefix(srv.URL, "http://")))
	if err != nil {
		b.Fatal(err)
	}
	// The loop's fetch, and as it was before a loop kept its request.
	for _, reuse := range []bool{true, false} {
		name := "loop-fetch"
		if !reuse {
			name += "-new-request"
		}
		b.Run(name, func(b *testing.B) {
			l := newLoop(s, tg)
			b.ReportAllocs()
			for b.Loop() {
				if !reuse {
					l.req = nil
				}
				body, gz, _, err := l.fetch(context.Background())
				if err != nil || !gz {
					b.Fatal(err, gz)
				}
				put(&rawPool, body)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "requests/s")
		})
	}
	for _, bc := range []struct {
		name string
		c    *http.Client
	}{{"direct", c}, {"net-http", std}} {
		b.Run(bc.name, func(b *testing.B) {
			buf := make([]byte, 32<<10)
			b.ReportAllocs()
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
