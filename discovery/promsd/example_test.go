package promsd_test

import (
	"context"
	"fmt"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/discovery"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/discovery/promsd"
)

// A Prometheus discovery configuration run as a Ferry discoverer. Any
// mechanism works the same way, e.g. &http.SDConfig{URL: ...} from
// github.com/prometheus/prometheus/discovery/http.
func ExampleDiscoverer() {
	d := &promsd.Discoverer{Config: discovery.StaticConfig{{
		Source:  "0",
		Labels:  model.LabelSet{"job": "node"},
		Targets: []model.LabelSet{{"__address__": "10.0.0.1:9100"}, {"__address__": "10.0.0.2:9100", "job": "other"}},
	}}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := d.Start(ctx, ferry.NopReporter()); err != nil {
		fmt.Println(err)
		return
	}
	up := make(chan []labels.Labels)
	go d.Run(ctx, up)
	for _, t := range <-up {
		fmt.Println(t)
	}
	// Output:
	// {__address__="10.0.0.1:9100", job="node"}
	// {__address__="10.0.0.2:9100", job="other"}
}
