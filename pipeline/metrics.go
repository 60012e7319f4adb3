package pipeline

import (
	"slices"

	"github.com/ferrydev/ferry"
	"github.com/prometheus/client_golang/prometheus"
)

var (
	componentLabels = []string{"component", "kind"}

	descHealth     = prometheus.NewDesc("ferry_component_health", "Health of the component: 1 for its current state, 0 for the others.", append(componentLabels, "state"), nil)
	descItemsIn    = prometheus.NewDesc("ferry_component_items_in_total", "Items (entries, samples or targets) the component received.", componentLabels, nil)
	descItemsOut   = prometheus.NewDesc("ferry_component_items_out_total", "Items the component passed on.", componentLabels, nil)
	descBytesIn    = prometheus.NewDesc("ferry_component_bytes_in_total", "Payload bytes the component received.", componentLabels, nil)
	descBytesOut   = prometheus.NewDesc("ferry_component_bytes_out_total", "Payload bytes the component passed on.", componentLabels, nil)
	descBatchesIn  = prometheus.NewDesc("ferry_component_batches_in_total", "Batches the component received.", componentLabels, nil)
	descBatchesOut = prometheus.NewDesc("ferry_component_batches_out_total", "Batches the component passed on.", componentLabels, nil)
	descDropped    = prometheus.NewDesc("ferry_component_dropped_items_total", "Items the component dropped for good, by reason.", append(componentLabels, "reason"), nil)
	descRetries    = prometheus.NewDesc("ferry_component_retries_total", "Retries of failed attempts.", componentLabels, nil)
	descRestarts   = prometheus.NewDesc("ferry_component_restarts_total", "Restarts of the component after it failed.", componentLabels, nil)
	descQueueLen   = prometheus.NewDesc("ferry_component_queue_batches", "Batches waiting in the component's input.", componentLabels, nil)
	descQueueCap   = prometheus.NewDesc("ferry_component_queue_capacity_batches", "Bound of the component's input, in batches.", componentLabels, nil)

	healthStates = []ferry.Health{ferry.HealthUnknown, ferry.Healthy, ferry.Degraded, ferry.Failing}
)

var _ prometheus.Collector = (*Pipeline)(nil)

// Describe implements prometheus.Collector, so that a program can register
// the pipeline on its own registry: registry.MustRegister(p). Components
// that implement prometheus.Collector themselves are described and
// collected with it.
func (p *Pipeline) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descHealth, descItemsIn, descItemsOut, descBytesIn, descBytesOut,
		descBatchesIn, descBatchesOut, descDropped, descRetries, descRestarts, descQueueLen, descQueueCap} {
		ch <- d
	}
	for _, n := range p.nodes {
		if c, ok := n.value.(prometheus.Collector); ok {
			c.Describe(ch)
		}
	}
}

// Collect implements prometheus.Collector.
func (p *Pipeline) Collect(ch chan<- prometheus.Metric) {
	for _, n := range p.nodes {
		s := n.c.status()
		lv := []string{s.Name, string(s.Kind)}
		for _, h := range healthStates {
			v := 0.0
			if h == s.Health {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(descHealth, prometheus.GaugeValue, v, s.Name, string(s.Kind), h.String())
		}
		counter := func(d *prometheus.Desc, v uint64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), lv...)
		}
		counter(descItemsIn, s.ItemsIn)
		counter(descItemsOut, s.ItemsOut)
		counter(descBytesIn, s.BytesIn)
		counter(descBytesOut, s.BytesOut)
		counter(descBatchesIn, s.BatchesIn)
		counter(descBatchesOut, s.BatchesOut)
		counter(descRetries, s.Retries)
		counter(descRestarts, s.Restarts)
		reasons := make([]string, 0, len(s.Dropped))
		for r := range s.Dropped {
			reasons = append(reasons, r)
		}
		slices.Sort(reasons)
		for _, r := range reasons {
			ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(s.Dropped[r]), s.Name, string(s.Kind), r)
		}
		if s.QueueCap > 0 {
			ch <- prometheus.MustNewConstMetric(descQueueLen, prometheus.GaugeValue, float64(s.QueueLen), lv...)
			ch <- prometheus.MustNewConstMetric(descQueueCap, prometheus.GaugeValue, float64(s.QueueCap), lv...)
		}
		if c, ok := n.value.(prometheus.Collector); ok {
			c.Collect(ch)
		}
	}
}
