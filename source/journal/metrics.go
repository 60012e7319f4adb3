package journal

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// stats are the counters behind a Source's metrics.
type stats struct {
	entries   atomic.Int64 // entries read from journalctl
	noMessage atomic.Int64 // skipped without MESSAGE
	lastUs    atomic.Int64 // __REALTIME_TIMESTAMP of the last entry read, µs

	descsOnce sync.Once
	descs     *descs
}

// read counts an entry read, with its __REALTIME_TIMESTAMP (decimal
// microseconds; ignored if malformed).
func (st *stats) read(ts []byte) {
	st.entries.Add(1)
	var us int64
	for i, c := range ts {
		if c < '0' || c > '9' || i >= 18 {
			return
		}
		us = us*10 + int64(c-'0')
	}
	if len(ts) > 0 {
		st.lastUs.Store(us)
	}
}

// Stats are counters of a Source since it was created.
type Stats struct {
	// Entries read from the journal (skipped ones included).
	Entries int64
	// NoMessage counts entries skipped for want of MESSAGE.
	NoMessage int64
	// LastEntry is the journal time of the last entry read; zero before
	// the first.
	LastEntry time.Time
}

// Stats returns the Source's counters.
func (s *Source) Stats() Stats {
	st := Stats{Entries: s.stats.entries.Load(), NoMessage: s.stats.noMessage.Load()}
	if us := s.stats.lastUs.Load(); us != 0 {
		st.LastEntry = time.UnixMicro(us)
	}
	return st
}

var _ prometheus.Collector = (*Source)(nil)

type descs struct {
	entries, noMessage, lastTS, lastAge *prometheus.Desc
}

func (s *Source) metricDescs() *descs {
	s.stats.descsOnce.Do(func() {
		name := s.Name
		if name == "" {
			name = s.key()
		}
		cl := prometheus.Labels{"source": name}
		n := func(name, help string) *prometheus.Desc {
			return prometheus.NewDesc("ferry_journal_"+name, help, nil, cl)
		}
		s.stats.descs = &descs{
			entries:   n("entries_read_total", "Journal entries read from journalctl, skipped ones included."),
			noMessage: n("entries_without_message_total", "Entries skipped because they had no MESSAGE field (FormatMessage)."),
			lastTS:    n("last_entry_timestamp_seconds", "Journal time (__REALTIME_TIMESTAMP) of the last entry read."),
			lastAge:   n("last_entry_age_seconds", "How far the Source is behind the journal: now minus the journal time of the last entry read (it grows while the journal is quiet too)."),
		}
	})
	return s.stats.descs
}

// Describe implements prometheus.Collector. A pipeline collects the
// metrics of a Source given to it with its own; outside a pipeline,
// register the Source itself. Every metric carries the label
// source=Name. The last-entry metrics are absent before the first entry.
func (s *Source) Describe(ch chan<- *prometheus.Desc) {
	d := s.metricDescs()
	for _, x := range []*prometheus.Desc{d.entries, d.noMessage, d.lastTS, d.lastAge} {
		ch <- x
	}
}

// Collect implements prometheus.Collector.
func (s *Source) Collect(ch chan<- prometheus.Metric) {
	d := s.metricDescs()
	st := s.Stats()
	ch <- prometheus.MustNewConstMetric(d.entries, prometheus.CounterValue, float64(st.Entries))
	ch <- prometheus.MustNewConstMetric(d.noMessage, prometheus.CounterValue, float64(st.NoMessage))
	if !st.LastEntry.IsZero() {
		ch <- prometheus.MustNewConstMetric(d.lastTS, prometheus.GaugeValue, float64(st.LastEntry.UnixMicro())/1e6)
		ch <- prometheus.MustNewConstMetric(d.lastAge, prometheus.GaugeValue, max(0, time.Since(st.LastEntry).Seconds()))
	}
}
