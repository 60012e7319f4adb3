package scrape_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/scrape"
)

func ExampleScraper() {
	// A target, standing in for node_exporter.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprint(w, "# TYPE node_load1 gauge\nnode_load1 0.5\n")
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")

	s := &scrape.Scraper{Job: "node", Interval: 100 * time.Millisecond}
	targets := make(chan []labels.Labels, 1)
	out := make(chan ferry.Batch[ferry.Sample], 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := s.Start(ctx, ferry.NopReporter()); err != nil { // a pipeline calls Start itself
		fmt.Println(err)
		return
	}
	ran := make(chan error, 1)
	go func() { ran <- s.Run(ctx, targets, out) }()
	defer func() {
		cancel()
		<-ran // Close comes after Run returned
		s.Close(context.Background())
	}()
	// Usually a discoverer sends these; relabel rules may set __scheme__,
	// __metrics_path__, __param_*, job and other labels.
	targets <- []labels.Labels{labels.FromStrings("__address__", addr, "env", "dev")}

	b := <-out // one batch per scrape
	var lines []string
	for _, smp := range b.Items {
		lines = append(lines, fmt.Sprintf("%s %s = %g", smp.Labels.Get("__name__"), smp.Labels.Get("env"), smp.V))
	}
	b.Done(nil)
	slices.Sort(lines)
	for _, l := range lines {
		if !strings.HasPrefix(l, "scrape_duration") { // varies
			fmt.Println(l)
		}
	}
	// Output:
	// node_load1 dev = 0.5
	// scrape_samples_post_metric_relabeling dev = 1
	// scrape_samples_scraped dev = 1
	// scrape_series_added dev = 1
	// up dev = 1
}
