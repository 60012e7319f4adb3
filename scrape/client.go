package scrape

import (
	"net/http"

	"github.com/ferrydev/ferry/httpconf"
	"github.com/ferrydev/ferry/internal/httpclient"
)

// newClient builds the Scraper's HTTP client from cfg as every component
// builds its own (internal/httpclient), on a transport tuned for scraping:
// its buffers are 1 KB each way, not 4 (a scrape's request is a few hundred
// bytes, and fetch reads a body in chunks larger than 1 KB, gzip's own
// buffer or bytes.Buffer's, which bypass the transport's), and plain GETs
// go through httpclient.NewDirect, which needs no goroutines of its own for
// a connection.
func newClient(cfg httpconf.Config) (*http.Client, error) {
	return httpclient.New(cfg, httpclient.Options{Transport: func(t *http.Transport) http.RoundTripper {
		t.WriteBufferSize, t.ReadBufferSize = 1<<10, 1<<10
		return httpclient.NewDirect(t)
	}})
}
