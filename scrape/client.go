package scrape

import (
	"net/http"

	"github.com/ferrydev/ferry/httpconf"
	"github.com/ferrydev/ferry/internal/httpclient"
)

// newClient builds the Scraper's HTTP client from cfg as every component
// builds its own (internal/httpclient), on a transport tuned for scraping
// (httpclient.SmallGETs): 1 KB buffers each way, and plain GETs through
// httpclient.NewDirect, which needs no goroutines of its own for a
// connection.
func newClient(cfg httpconf.Config) (*http.Client, error) {
	return httpclient.New(cfg, httpclient.Options{Transport: httpclient.SmallGETs})
}
