// Package gather is a source of a program's own metrics: it reads a
// prometheus.Gatherer every interval and emits what it holds as samples, so
// that a pipeline's self-metrics enter a metrics stream (to remote write,
// say) the way Alloy scrapes itself, without HTTP and without a round trip
// through the text format.
//
//	reg := prometheus.NewRegistry()
//	b := pipeline.New()
//	self := pipeline.FromSource(b, "self", &gather.Source{Gatherer: reg, Job: "ferry"})
//	pipeline.To(b, "remote_write", rw, self)
//	p, _ := b.Build()
//	reg.MustRegister(p)
package gather

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/internal/lifecycle"
	"github.com/ferrydev/ferry/source"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
)

// Source gathers a prometheus.Gatherer every Interval and emits one batch
// of samples per gather, as a scrape of the same registry would store them:
// counters, gauges and untyped metrics as one series each; summaries as
// their quantiles (quantile label) plus _sum and _count; histograms as
// classic _bucket series (le label, +Inf included) plus _sum and _count.
// Native histograms are emitted as their _sum, _count and +Inf bucket
// until ferry.Sample carries native histograms. Label values of le and
// quantile are written as Prometheus 3 normalizes them ("1.0", "+Inf").
//
// Every series gets the target labels job and instance, and Labels. As in
// Prometheus with honor_labels false, a metric's own label of the same name
// is kept as exported_<name>; with HonorLabels the metric's label wins.
// Like a scrape, every gather also emits up (0 when the gatherer returned
// nothing but an error), scrape_duration_seconds and
// scrape_samples_scraped, and series that vanish between gathers get a
// staleness marker.
//
// The zero value, apart from Gatherer, is all defaults. Samples carry the
// time of the gather, or the metric's own timestamp if it has one. Batches
// carry no acknowledgement: there is no position to advance.
type Source struct {
	// Gatherer is what to read: usually the program's registry, with the
	// pipeline (a prometheus.Collector) registered on it. Required.
	Gatherer prometheus.Gatherer
	// Interval is the time between gathers (default 15s). The first
	// gather happens when Run starts.
	Interval time.Duration
	// Job is the value of the job label (default "ferry").
	Job string
	// Instance is the value of the instance label (default the host name).
	Instance string
	// Labels are added to every series, after job and instance, which
	// they may replace.
	Labels labels.Labels
	// HonorLabels keeps a metric's own labels over the target labels on a
	// conflict, instead of renaming them exported_<name>.
	HonorLabels bool

	now func() time.Time // for tests

	life   lifecycle.State
	rep    ferry.Reporter // from Start
	target labels.Labels  // from Start
}

// ErrNotStarted is returned by Run before Start.
var ErrNotStarted = fmt.Errorf("gather: Run before Start: %w", ferry.ErrNotStarted)

var _ source.Source[ferry.Sample] = (*Source)(nil)

// DefaultInterval is the time between gathers when Source.Interval is zero.
const DefaultInterval = 15 * time.Second

// maxBatch bounds the samples of one batch; a larger gather is split.
const maxBatch = 2000

// Validate checks the configuration; the pipeline's Build calls it.
func (s *Source) Validate() error {
	switch {
	case s.Gatherer == nil:
		return errors.New("gather: Gatherer is nil")
	case s.Interval < 0:
		return errors.New("gather: negative Interval")
	}
	return nil
}

// Start validates the configuration and keeps r, which Run reports the
// health of each gather to. A pipeline calls it; a direct user calls it
// before Run. Start is a no-op on a started Source.
func (s *Source) Start(_ context.Context, r ferry.Reporter) error {
	if err := s.Validate(); err != nil {
		return err
	}
	if r == nil {
		r = ferry.NopReporter()
	}
	return s.life.Start(nil, func() error {
		s.rep, s.target = r, s.targetLabels()
		return nil
	})
}

// Run gathers every Interval until ctx is done, and then returns nil. It
// returns ErrNotStarted before Start.
func (s *Source) Run(ctx context.Context, out chan<- ferry.Batch[ferry.Sample]) error {
	if err := s.life.Err(ErrNotStarted, nil); err != nil {
		return err
	}
	rep, target := s.rep, s.target
	interval := s.Interval
	if interval == 0 {
		interval = DefaultInterval
	}
	g := &gatherer{s: s, rep: rep, target: target, prev: map[uint64]labels.Labels{}}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := g.once(ctx, out); err != nil {
			return nil // ctx is done
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return nil
		}
	}
}

func (s *Source) targetLabels() labels.Labels {
	job, inst := s.Job, s.Instance
	if job == "" {
		job = "ferry"
	}
	if inst == "" {
		inst, _ = os.Hostname()
		if inst == "" {
			inst = "localhost"
		}
	}
	b := labels.NewBuilder(labels.FromStrings("job", job, "instance", inst))
	s.Labels.Range(func(l labels.Label) { b.Set(l.Name, l.Value) })
	return b.Labels()
}

// gatherer is the state of one Run: the target labels and the series of
// the previous gather, for staleness markers.
type gatherer struct {
	s      *Source
	rep    ferry.Reporter
	target labels.Labels
	prev   map[uint64]labels.Labels
	cur    map[uint64]labels.Labels
	b      *labels.Builder
	items  []ferry.Sample
	t      int64
}

// once gathers, converts and sends. It returns an error only when ctx
// ended while sending.
func (g *gatherer) once(ctx context.Context, out chan<- ferry.Batch[ferry.Sample]) error {
	now := time.Now
	if g.s.now != nil {
		now = g.s.now
	}
	start := now()
	mfs, err := g.s.Gatherer.Gather()
	dur := now().Sub(start)
	g.t = start.UnixMilli()
	g.cur = make(map[uint64]labels.Labels, len(g.prev))
	g.items = make([]ferry.Sample, 0, len(g.prev)+3)
	if g.b == nil {
		g.b = labels.NewBuilder(labels.EmptyLabels())
	}
	for _, mf := range mfs {
		g.family(mf)
	}
	scraped := len(g.items)

	rep := g.rep
	up := 1.0
	switch {
	case err != nil && len(mfs) == 0:
		up = 0
		rep.SetHealth(ferry.Failing, err)
	case err != nil:
		rep.SetHealth(ferry.Degraded, err)
	default:
		rep.SetHealth(ferry.Healthy, nil)
	}
	g.auto("up", up)
	g.auto("scrape_duration_seconds", dur.Seconds())
	g.auto("scrape_samples_scraped", float64(scraped))

	for h, ls := range g.prev {
		if _, ok := g.cur[h]; !ok {
			g.items = append(g.items, ferry.Sample{Labels: ls, T: g.t, V: math.Float64frombits(value.StaleNaN)})
		}
	}
	g.prev = g.cur
	items := g.items
	g.items = nil
	for len(items) > 0 {
		n := min(len(items), maxBatch)
		if err := source.Send(ctx, out, ferry.NewBatch(items[:n:n], nil)); err != nil {
			return err
		}
		items = items[n:]
	}
	return nil
}

// auto adds one of the series every gather emits, with the target labels
// only.
func (g *gatherer) auto(name string, v float64) {
	g.b.Reset(g.target)
	g.b.Set(labels.MetricName, name)
	g.add(g.b.Labels(), g.t, v)
}

func (g *gatherer) add(ls labels.Labels, t int64, v float64) {
	g.cur[ls.Hash()] = ls
	g.items = append(g.items, ferry.Sample{Labels: ls, T: t, V: v})
}

// family converts one metric family.
func (g *gatherer) family(mf *dto.MetricFamily) {
	name := mf.GetName()
	for _, m := range mf.GetMetric() {
		t := g.t
		if m.TimestampMs != nil {
			t = m.GetTimestampMs()
		}
		base := g.base(m)
		series := func(suffix, extraName, extraValue string, v float64) {
			g.b.Reset(base)
			g.b.Set(labels.MetricName, name+suffix)
			if extraName != "" {
				g.b.Set(extraName, extraValue)
			}
			g.add(g.b.Labels(), t, v)
		}
		switch mf.GetType() {
		case dto.MetricType_COUNTER:
			series("", "", "", m.GetCounter().GetValue())
		case dto.MetricType_GAUGE:
			series("", "", "", m.GetGauge().GetValue())
		case dto.MetricType_UNTYPED:
			series("", "", "", m.GetUntyped().GetValue())
		case dto.MetricType_SUMMARY:
			sm := m.GetSummary()
			for _, q := range sm.GetQuantile() {
				series("", "quantile", formatFloat(q.GetQuantile()), q.GetValue())
			}
			series("_sum", "", "", sm.GetSampleSum())
			series("_count", "", "", float64(sm.GetSampleCount()))
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			h := m.GetHistogram()
			count := float64(h.GetSampleCount())
			if h.SampleCountFloat != nil {
				count = h.GetSampleCountFloat()
			}
			inf := false
			for _, b := range h.GetBucket() {
				c := float64(b.GetCumulativeCount())
				if b.CumulativeCountFloat != nil {
					c = b.GetCumulativeCountFloat()
				}
				if math.IsInf(b.GetUpperBound(), +1) {
					inf = true
				}
				series("_bucket", "le", formatFloat(b.GetUpperBound()), c)
			}
			if !inf {
				series("_bucket", "le", "+Inf", count)
			}
			series("_sum", "", "", h.GetSampleSum())
			series("_count", "", "", count)
		}
	}
}

// base returns the labels of m with the target labels applied.
func (g *gatherer) base(m *dto.Metric) labels.Labels {
	g.b.Reset(labels.EmptyLabels())
	for _, lp := range m.GetLabel() {
		g.b.Set(lp.GetName(), lp.GetValue())
	}
	g.target.Range(func(l labels.Label) {
		mv := g.b.Get(l.Name)
		switch {
		case mv == "":
			g.b.Set(l.Name, l.Value)
		case g.s.HonorLabels:
		default:
			// As Prometheus: exported_<name>, prefixed again while taken.
			n := "exported_" + l.Name
			for g.b.Get(n) != "" {
				n = "exported_" + n
			}
			g.b.Set(n, mv)
			g.b.Set(l.Name, l.Value)
		}
	})
	return g.b.Labels()
}

// formatFloat writes a bucket bound or quantile as Prometheus 3 normalizes
// them: always with a decimal point or exponent, and +Inf, -Inf, NaN.
func formatFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, +1):
		return "+Inf"
	case math.IsInf(f, -1):
		return "-Inf"
	}
	s := strconv.FormatFloat(f, 'g', -1, 64)
	if !strings.ContainsAny(s, "e.") {
		s += ".0"
	}
	return s
}
