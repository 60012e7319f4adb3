package syslog

import (
	"github.com/prometheus/client_golang/prometheus"
)

var _ prometheus.Collector = (*Source)(nil)

type descs struct {
	messages, parseErrors, dropped, open, accepted, rejected *prometheus.Desc
}

// name is the value of the "source" label.
func (s *Source) name() string {
	if s.Name != "" {
		return s.Name
	}
	return s.Protocol.String() + "://" + s.Addr
}

func (s *Source) metricDescs() *descs {
	s.descsOnce.Do(func() {
		cl := prometheus.Labels{"source": s.name()}
		n := func(name, help string, labels ...string) *prometheus.Desc {
			return prometheus.NewDesc("ferry_syslog_"+name, help, labels, cl)
		}
		s.descs = &descs{
			messages:    n("messages_received_total", "Syslog messages received, malformed and truncated ones included."),
			parseErrors: n("parse_errors_total", "Messages that could not be parsed (delivered raw or dropped)."),
			dropped:     n("dropped_messages_total", "Messages dropped, by reason (kernel_buffer_full: UDP datagrams the kernel dropped on a full receive buffer; too_long_truncated messages are delivered cut).", "reason"),
			open:        n("connections_open", "TCP and TLS connections open now."),
			accepted:    n("connections_accepted_total", "TCP and TLS connections accepted."),
			rejected:    n("connections_rejected_total", "TCP and TLS connections closed at once because MaxConnections were open."),
		}
	})
	return s.descs
}

// Describe implements prometheus.Collector. A pipeline collects the
// metrics of a Source given to it with its own; outside a pipeline,
// register the Source itself. Every metric carries the label
// source=Name.
func (s *Source) Describe(ch chan<- *prometheus.Desc) {
	d := s.metricDescs()
	for _, x := range []*prometheus.Desc{d.messages, d.parseErrors, d.dropped, d.open, d.accepted, d.rejected} {
		ch <- x
	}
}

// Collect implements prometheus.Collector.
func (s *Source) Collect(ch chan<- prometheus.Metric) {
	d := s.metricDescs()
	c := func(desc *prometheus.Desc, v int64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(v), lv...)
	}
	c(d.messages, s.stats.messages.Load())
	c(d.parseErrors, s.stats.malformed.Load())
	for i, r := range dropReasons {
		c(d.dropped, s.stats.dropped[i].Load(), r)
	}
	ch <- prometheus.MustNewConstMetric(d.open, prometheus.GaugeValue, float64(s.stats.open.Load()))
	c(d.accepted, s.stats.accepted.Load())
	c(d.rejected, s.stats.rejected.Load())
}
