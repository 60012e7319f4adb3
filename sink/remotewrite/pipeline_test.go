package remotewrite_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/ferrydev/ferry/discovery"
	"github.com/ferrydev/ferry/internal/poll"
	"github.com/ferrydev/ferry/pipeline"
	"github.com/ferrydev/ferry/relabel"
	"github.com/ferrydev/ferry/scrape"
	"github.com/ferrydev/ferry/sink/remotewrite"
)

// TestPipelineScrapeToRemoteWrite wires the scraper and the sink the way
// examples/agent does (Alloy's prometheus.scrape → prometheus.remote_write)
// and checks that samples, with their relabeled target labels and the
// automatic series, reach a receiver, and that Run drains cleanly.
func TestPipelineScrapeToRemoteWrite(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		io.WriteString(w, "# TYPE app_requests_total counter\napp_requests_total{code=\"200\"} 42\n")
	}))
	defer target.Close()
	var mu sync.Mutex
	seen := map[string]float64{}
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := decodeV1(r)
		if err != nil {
			w.WriteHeader(400)
			return
		}
		mu.Lock()
		for _, ts := range req.Timeseries {
			var name, team string
			for _, l := range ts.Labels {
				switch l.Name {
				case "__name__":
					name = l.Value
				case "team":
					team = l.Value
				}
			}
			if team == "web" {
				seen[name] = ts.Samples[0].Value
			}
		}
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer recv.Close()

	b := pipeline.New(pipeline.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))), pipeline.WithDrainTimeout(5*time.Second))
	static := pipeline.Discover(b, "static", discovery.Func(func(ctx context.Context, up chan<- []labels.Labels) error {
		select {
		case up <- []labels.Labels{labels.FromStrings("__address__", strings.TrimPrefix(target.URL, "http://"), "__meta_team", "web")}:
		case <-ctx.Done():
		}
		<-ctx.Done()
		return nil
	}))
	targets := pipeline.RelabelTargets(b, "teams", []relabel.Rule{relabel.Replace([]string{"__meta_team"}, "(.*)", "team", "$1")}, static)
	samples := pipeline.FromTargets(b, "app", &scrape.Scraper{Job: "app", Interval: 100 * time.Millisecond}, targets)
	pipeline.To(b, "prometheus", &remotewrite.Sink{URL: recv.URL + "/api/v1/write", BatchSendDeadline: 20 * time.Millisecond}, samples)
	p, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	poll.Until(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return seen["app_requests_total"] == 42 && seen["up"] == 1
	}, "the receiver to see app_requests_total 42 and up 1")
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}
