package scrape

import (
	"testing"

	"github.com/ferrydev/ferry/internal/authtest"
)

// The Scraper's client, with its own transport for plain GETs, sends what
// Prometheus's client for the same configuration sends.
func TestClientAsPrometheus(t *testing.T) { authtest.AsPrometheus(t, newClient) }
