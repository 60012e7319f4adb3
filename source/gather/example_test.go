package gather_test

import (
	"context"
	"fmt"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/source/gather"
	"github.com/prometheus/client_golang/prometheus"
)

// The samples of one gather of a registry.
func ExampleSource() {
	reg := prometheus.NewRegistry()
	sent := prometheus.NewCounter(prometheus.CounterOpts{Name: "app_sent_total", Help: "Sent."})
	sent.Add(42)
	reg.MustRegister(sent)

	src := &gather.Source{Gatherer: reg, Interval: time.Minute, Job: "app", Instance: "web-1"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := make(chan ferry.Batch[ferry.Sample])
	if err := src.Start(ctx, ferry.NopReporter()); err != nil { // a pipeline calls Start itself
		fmt.Println(err)
		return
	}
	go src.Run(ctx, out)

	b := <-out
	for _, s := range b.Items {
		if s.Labels.Get("__name__") == "scrape_duration_seconds" {
			continue // varies
		}
		fmt.Println(s.Labels, s.V)
	}
	b.Done(nil)
	// Output:
	// {__name__="app_sent_total", instance="web-1", job="app"} 42
	// {__name__="up", instance="web-1", job="app"} 1
	// {__name__="scrape_samples_scraped", instance="web-1", job="app"} 1
}
