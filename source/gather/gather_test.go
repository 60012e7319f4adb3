package gather

import (
	"context"
	"errors"
	"math"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/internal/poll"
	"github.com/ferrydev/ferry/pipeline"
	"github.com/ferrydev/ferry/sink/sinktest"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
)

func render(ss []ferry.Sample) string {
	var b strings.Builder
	for _, s := range ss {
		v := strconv.FormatFloat(s.V, 'g', -1, 64)
		if value.IsStaleNaN(s.V) {
			v = "stale"
		}
		b.WriteString(s.Labels.String() + " " + v + " @" + strconv.FormatInt(s.T, 10) + "\n")
	}
	return b.String()
}

// collect runs src until it has sent n batches and returns their samples,
// one slice per batch.
func collect(t *testing.T, src *Source, n int, between func(i int)) [][]ferry.Sample {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := make(chan ferry.Batch[ferry.Sample])
	done := make(chan error, 1)
	if err := src.Start(ctx, ferry.NopReporter()); err != nil {
		t.Fatal(err)
	}
	go func() { done <- src.Run(ctx, out) }()
	var got [][]ferry.Sample
	for i := range n {
		select {
		case b := <-out:
			got = append(got, b.Items)
			b.Done(nil)
		case <-time.After(5 * time.Second):
			t.Fatalf("no batch %d", i)
		}
		if between != nil {
			between(i)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return got
}

func TestGatherAllKinds(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "req_total", Help: "r"}, []string{"code", "job"})
	c.WithLabelValues("200", "web").Add(3)
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "temp", Help: "t", ConstLabels: prometheus.Labels{"room": "a"}})
	g.Set(21.5)
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "lat_seconds", Help: "l", Buckets: []float64{0.1, 1}})
	h.Observe(0.05)
	h.Observe(0.5)
	h.Observe(5)
	s := prometheus.NewSummary(prometheus.SummaryOpts{Name: "size_bytes", Help: "s", Objectives: map[float64]float64{0.5: 0.05}})
	s.Observe(10)
	u := prometheus.NewUntypedFunc(prometheus.UntypedOpts{Name: "untyped", Help: "u"}, func() float64 { return 7 })
	reg.MustRegister(c, g, h, s, u)

	at := time.UnixMilli(1_700_000_000_000)
	src := &Source{Gatherer: reg, Interval: time.Hour, Job: "self", Instance: "host:1", Labels: labels.FromStrings("env", "test"),
		now: func() time.Time { return at }}
	got := collect(t, src, 1, nil)
	want := `{__name__="lat_seconds_bucket", env="test", instance="host:1", job="self", le="0.1"} 1 @1700000000000
{__name__="lat_seconds_bucket", env="test", instance="host:1", job="self", le="1.0"} 2 @1700000000000
{__name__="lat_seconds_bucket", env="test", instance="host:1", job="self", le="+Inf"} 3 @1700000000000
{__name__="lat_seconds_sum", env="test", instance="host:1", job="self"} 5.55 @1700000000000
{__name__="lat_seconds_count", env="test", instance="host:1", job="self"} 3 @1700000000000
{__name__="req_total", code="200", env="test", exported_job="web", instance="host:1", job="self"} 3 @1700000000000
{__name__="size_bytes", env="test", instance="host:1", job="self", quantile="0.5"} 10 @1700000000000
{__name__="size_bytes_sum", env="test", instance="host:1", job="self"} 10 @1700000000000
{__name__="size_bytes_count", env="test", instance="host:1", job="self"} 1 @1700000000000
{__name__="temp", env="test", instance="host:1", job="self", room="a"} 21.5 @1700000000000
{__name__="untyped", env="test", instance="host:1", job="self"} 7 @1700000000000
{__name__="up", env="test", instance="host:1", job="self"} 1 @1700000000000
{__name__="scrape_duration_seconds", env="test", instance="host:1", job="self"} 0 @1700000000000
{__name__="scrape_samples_scraped", env="test", instance="host:1", job="self"} 11 @1700000000000
`
	if r := render(got[0]); r != want {
		t.Errorf("got\n%s\nwant\n%s", r, want)
	}

	src.HonorLabels = true
	got = collect(t, src, 1, nil)
	if r := render(got[0]); !strings.Contains(r, `{__name__="req_total", code="200", env="test", instance="host:1", job="web"} 3`) {
		t.Errorf("honor labels:\n%s", r)
	}
}

func TestGatherStalenessAndErrors(t *testing.T) {
	reg := prometheus.NewRegistry()
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "g", Help: "g"}, []string{"k"})
	g.WithLabelValues("a").Set(1)
	g.WithLabelValues("b").Set(2)
	reg.MustRegister(g)
	// The second gather waits until the series is deleted: with a 1ms
	// interval it could otherwise run before the test deletes it.
	deleted := make(chan struct{})
	var calls atomic.Int32
	gatherer := prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		if calls.Add(1) == 2 {
			<-deleted
		}
		return reg.Gather()
	})
	src := &Source{Gatherer: gatherer, Interval: time.Millisecond, Job: "j", Instance: "i"}
	got := collect(t, src, 2, func(i int) {
		if i == 0 {
			g.DeleteLabelValues("b")
			close(deleted)
		}
	})
	r := render(got[1])
	if !strings.Contains(r, `{__name__="g", instance="i", job="j", k="a"} 1`) || !strings.Contains(r, `{__name__="g", instance="i", job="j", k="b"} stale`) {
		t.Errorf("second gather:\n%s", r)
	}

	// A gatherer that fails: up is 0 and the source reports failing.
	failing := prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) { return nil, errors.New("boom") })
	src = &Source{Gatherer: failing, Interval: time.Hour, Job: "j", Instance: "i"}
	got = collect(t, src, 1, nil)
	if len(got[0]) != 3 || got[0][0].Labels.Get("__name__") != "up" || got[0][0].V != 0 || math.IsNaN(got[0][1].V) {
		t.Errorf("failed gather:\n%s", render(got[0]))
	}

	if err := (&Source{}).Validate(); err == nil {
		t.Error("nil Gatherer accepted")
	}
	if err := (&Source{}).Start(context.Background(), ferry.NopReporter()); err == nil {
		t.Error("Start without Gatherer succeeded")
	}
	if err := (&Source{}).Run(context.Background(), nil); !errors.Is(err, ErrNotStarted) || ferry.IsPermanent(err) {
		t.Errorf("Run before Start: %v, want ErrNotStarted", err)
	}
}

// The pipeline's own metrics, gathered by a source of the same pipeline.
func TestGatherSelfScrape(t *testing.T) {
	reg := prometheus.NewRegistry()
	fake := &sinktest.Sink[ferry.Sample]{}
	b := pipeline.New()
	pipeline.To(b, "metrics", fake, pipeline.FromSource(b, "self", &Source{Gatherer: reg, Interval: 10 * time.Millisecond, Job: "ferry", Instance: "me"}))
	p, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	reg.MustRegister(p)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	// The second gather sees what the first delivered.
	poll.Until(t, func() bool {
		for _, s := range fake.Items() {
			if s.Labels.Get("__name__") == "ferry_component_items_in_total" && s.Labels.Get("component") == "metrics" && s.V > 0 {
				return true
			}
		}
		return false
	}, "self-metrics of the sink")
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if st, _ := p.Component("self"); st.Health != ferry.Healthy {
		t.Errorf("self is %s", st.Health)
	}
}
