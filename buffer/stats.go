package buffer

import (
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Stats is a snapshot of a Disk, for a debug page or a test. Gauges
// describe the moment; counters count since Start.
type Stats struct {
	Name     string
	Dir      string
	Policy   Policy
	MaxBytes int64

	// Bytes is the size of the segment files; Segments their number.
	Bytes    int64
	Segments int
	// Records and Items wait for the inner sink's acknowledgement.
	Records, Items int64
	// OldestAge is the age of the oldest record being replayed and not yet
	// acknowledged, 0 if there is none.
	OldestAge time.Duration

	// ReplayRate is the items per second the inner sink acknowledged
	// (delivered, or dropped for good) over the last ReplayRateWindow, or
	// since Start if that was more recent: the rate at which a backlog
	// drains.
	ReplayRate float64

	// Written counts records written; Replayed records handed to the inner
	// sink (retries included); Acked records it settled and AckedItems
	// their items; Retries records it failed that were sent again.
	Written, Replayed, Acked, Retries int64
	AckedItems                        int64
	// FromMemory counts records replayed from memory, as Send wrote them,
	// rather than read back from the file: while the replay keeps up with
	// the writer, it need not read.
	FromMemory int64
	// DroppedItems and DroppedRecords count what DropOldest deleted: the
	// records of a deleted segment that the inner sink had not
	// acknowledged. They are an upper bound of what was lost: a record the
	// replay had already handed to the inner sink is counted too, and may
	// still be delivered (at most MaxInFlight records a deletion).
	DroppedItems, DroppedRecords int64
	// Corruptions counts records or segments skipped as unreadable, torn
	// tails cut at start and corrupt read markers.
	Corruptions int64
	// WriteErrors counts failed writes and fsyncs (a full disk).
	WriteErrors int64
}

// Stats returns a snapshot of the buffer. It is safe to call at any time,
// concurrently with everything else, Start and Close included.
func (d *Disk[T]) Stats() Stats {
	st := Stats{
		Name: d.name(), Dir: d.Dir, Policy: d.Policy, MaxBytes: d.MaxBytes,
		Written:        d.stats.written.Load(),
		Replayed:       d.stats.replayed.Load(),
		Acked:          d.stats.acked.Load(),
		AckedItems:     d.stats.ackedItems.Load(),
		FromMemory:     d.stats.fromMemory.Load(),
		ReplayRate:     d.ackRate.rate(time.Now()),
		Retries:        d.stats.retries.Load(),
		DroppedItems:   d.stats.droppedItems.Load(),
		DroppedRecords: d.stats.droppedRecords.Load(),
		Corruptions:    d.stats.corruptions.Load(),
		WriteErrors:    d.stats.writeErrors.Load(),
	}
	d.mu.Lock()
	st.Bytes = d.totalBytes
	st.Segments = len(d.segs)
	for _, s := range d.segs {
		st.Records += s.records - s.ackedRecords
		st.Items += s.items - s.ackedItems
	}
	oldest := d.oldest
	d.mu.Unlock()
	if oldest != 0 {
		st.OldestAge = max(0, time.Since(time.Unix(0, oldest)))
	}
	return st
}

type descs struct {
	bytes, maxBytes, segments, records, items, oldest      *prometheus.Desc
	written, replayed, acked, ackedItems, retries, dropped *prometheus.Desc
	corrupt, werrors                                       *prometheus.Desc
}

func (d *Disk[T]) metricDescs() *descs {
	d.descsMu.Do(func() {
		cl := prometheus.Labels{"buffer": d.name()}
		n := func(name, help string) *prometheus.Desc {
			return prometheus.NewDesc("ferry_buffer_"+name, help, nil, cl)
		}
		d.descs = &descs{
			bytes:      n("bytes", "Bytes in the buffer's segment files."),
			maxBytes:   n("max_bytes", "The buffer's MaxBytes."),
			segments:   n("segments", "Segment files in the buffer."),
			records:    n("records", "Records waiting for the inner sink's acknowledgement."),
			items:      n("items", "Items (entries or samples) waiting for the inner sink's acknowledgement."),
			oldest:     n("oldest_record_age_seconds", "Age of the oldest record being replayed and not yet acknowledged."),
			written:    n("written_records_total", "Records written to the buffer."),
			replayed:   n("replayed_records_total", "Records sent to the inner sink, retries included."),
			acked:      n("acked_records_total", "Records the inner sink acknowledged (delivered or dropped for good)."),
			ackedItems: n("acked_items_total", "Items (entries or samples) of the records the inner sink acknowledged."),
			retries:    n("retries_total", "Records the inner sink failed and that were sent again."),
			dropped:    n("dropped_items_total", "Items deleted by the DropOldest policy."),
			corrupt:    n("corruptions_total", "Corrupt records, segments and markers skipped or cut."),
			werrors:    n("write_errors_total", "Failed writes and fsyncs."),
		}
	})
	return d.descs
}

// Describe implements prometheus.Collector. A pipeline collects the
// metrics of a Disk given to pipeline.To with its own; outside a pipeline,
// register the Disk itself. Every metric carries the label buffer=Name.
func (d *Disk[T]) Describe(ch chan<- *prometheus.Desc) {
	m := d.metricDescs()
	for _, x := range []*prometheus.Desc{m.bytes, m.maxBytes, m.segments, m.records, m.items, m.oldest,
		m.written, m.replayed, m.acked, m.ackedItems, m.retries, m.dropped, m.corrupt, m.werrors} {
		ch <- x
	}
}

// Collect implements prometheus.Collector.
func (d *Disk[T]) Collect(ch chan<- prometheus.Metric) {
	m := d.metricDescs()
	s := d.Stats()
	g := func(desc *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v)
	}
	c := func(desc *prometheus.Desc, v int64) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(v))
	}
	g(m.bytes, float64(s.Bytes))
	g(m.maxBytes, float64(s.MaxBytes))
	g(m.segments, float64(s.Segments))
	g(m.records, float64(s.Records))
	g(m.items, float64(s.Items))
	g(m.oldest, s.OldestAge.Seconds())
	c(m.written, s.Written)
	c(m.replayed, s.Replayed)
	c(m.acked, s.Acked)
	c(m.ackedItems, s.AckedItems)
	c(m.retries, s.Retries)
	c(m.dropped, s.DroppedItems)
	c(m.corrupt, s.Corruptions)
	c(m.werrors, s.WriteErrors)
}

var _ prometheus.Collector = (*Disk[struct{}])(nil)

// State returns the Stats of the buffer as attributes, for a view of a
// running pipeline: it implements pipeline.StateReporter, so that the
// debug page of package debugui shows them on the buffer's page. Like
// Stats it is safe to call at any time.
func (d *Disk[T]) State() []slog.Attr {
	s := d.Stats()
	// The first six are those the index page of debugui shows in the
	// buffer's row.
	return []slog.Attr{
		slog.Int64("bytes", s.Bytes),
		slog.Int64("records", s.Records),
		slog.Duration("oldest_record_age", s.OldestAge),
		slog.Float64("replay_items_per_second", s.ReplayRate),
		slog.Int64("dropped_items", s.DroppedItems),
		slog.Int64("corruptions", s.Corruptions),
		slog.Int64("items", s.Items),
		slog.Int64("max_bytes", s.MaxBytes),
		slog.Int("segments", s.Segments),
		slog.Int64("written_records", s.Written),
		slog.Int64("replayed_records", s.Replayed),
		slog.Int64("acked_records", s.Acked),
		slog.Int64("acked_items", s.AckedItems),
		slog.Int64("replayed_from_memory", s.FromMemory),
		slog.Int64("retries", s.Retries),
		slog.Int64("dropped_records", s.DroppedRecords),
		slog.Int64("write_errors", s.WriteErrors),
		slog.String("policy", s.Policy.String()),
		slog.String("dir", s.Dir),
	}
}

// ReplayRateWindow is the span over which Stats.ReplayRate is averaged.
const ReplayRateWindow = 10 * time.Second

// rateWindow counts events in one-second buckets over the last
// ReplayRateWindow. Its zero value is ready; since is set by Start.
type rateWindow struct {
	mu    sync.Mutex
	since time.Time // no events before: the rate's span starts here
	n     [rateBuckets]int64
	sec   [rateBuckets]int64 // the Unix second each bucket counts
}

const rateBuckets = int(ReplayRateWindow / time.Second)

func (r *rateWindow) reset(now time.Time) {
	r.mu.Lock()
	r.since, r.n, r.sec = now, [rateBuckets]int64{}, [rateBuckets]int64{}
	r.mu.Unlock()
}

func (r *rateWindow) add(now time.Time, n int64) {
	sec := now.Unix()
	i := int(sec % int64(rateBuckets))
	r.mu.Lock()
	if r.sec[i] != sec {
		r.sec[i], r.n[i] = sec, 0
	}
	r.n[i] += n
	r.mu.Unlock()
}

// rate returns the events per second in the window ending at now: the
// buckets of its last rateBuckets seconds (the current one partial),
// over the time they span, or over the time since since if shorter.
func (r *rateWindow) rate(now time.Time) float64 {
	sec := now.Unix()
	from := time.Unix(sec-int64(rateBuckets)+1, 0)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.since.IsZero() {
		return 0
	}
	if r.since.After(from) {
		from = r.since
	}
	var sum int64
	for i, s := range r.sec {
		if s > sec-int64(rateBuckets) && s <= sec {
			sum += r.n[i]
		}
	}
	span := now.Sub(from)
	if sum == 0 || span <= 0 {
		return 0
	}
	// A span under a second would make a burst look like a high rate.
	return float64(sum) / max(span, time.Second).Seconds()
}
