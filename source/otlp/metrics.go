package otlp

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/internal/otlpconv"
	"github.com/ferrydev/ferry/source"
	"github.com/prometheus/otlptranslator"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
)

// MetricsPath is the path of OTLP/HTTP metrics.
const MetricsPath = "/v1/metrics"

// Reasons the metrics receiver passes to ferry.Reporter.Dropped (and
// names in partial_success) for points it does not convert.
const (
	ReasonDelta                = "delta_temporality"
	ReasonExponentialHistogram = "exponential_histogram"
	ReasonInvalidPoint         = "invalid_point"
)

// MetricsReceiver receives OTLP metrics and emits them as samples, named
// and labelled the way Prometheus 3's OTLP endpoint stores them (it uses
// the same otlptranslator rules). Its zero value is ready to use (as an
// http.Handler, after Start); fields must not change once it is started.
//
// # Mapping
//
//   - Names: the metric name with every character other than
//     [a-zA-Z0-9_:] replaced by "_", then the unit's suffix ("s" gives
//     _seconds, "By" _bytes, "1" on a gauge _ratio, "{request}" nothing),
//     then _total for monotonic sums (WithoutSuffixes leaves both off).
//   - Labels: the point's attributes (names made label names; values of
//     attributes whose names collide are joined with ";"), then the
//     resource attributes named in PromoteResourceAttributes and Labels,
//     then job (service.namespace/service.name, or service.name) and
//     instance (service.instance.id), which win.
//   - target_info: one sample of value 1 per resource and request, at the
//     latest point's time, labelled with job, instance and every other
//     resource attribute, when there is one (WithoutTargetInfo turns it
//     off).
//   - Gauges and cumulative sums: one sample per point; a non-monotonic
//     sum is a gauge (no _total).
//   - Cumulative histograms: classic histograms: NAME_bucket{le="..."}
//     with cumulative counts, le="+Inf" equal to the count, NAME_sum (when
//     the point has a sum) and NAME_count.
//   - Summaries: NAME{quantile="..."}, NAME_sum and NAME_count.
//   - A point flagged "no recorded value" becomes a Prometheus staleness
//     marker.
//   - A point without a timestamp gets the time of receipt.
//
// Points of delta (or unspecified) temporality and exponential histograms
// are dropped: ferry.Sample carries neither deltas nor native histograms.
// They are counted through the Reporter ("delta_temporality",
// "exponential_histogram") and in the answer's partial_success, so the
// client knows they were not stored; so are histogram points whose bucket
// counts do not match their bounds and metrics whose name is empty
// ("invalid_point").
type MetricsReceiver struct {
	Limits
	// Server, when set, serves the receiver at /v1/metrics from Start to
	// Close. Without it, mount the receiver on a mux of your own.
	Server *Server
	// PromoteResourceAttributes are resource attributes added as labels
	// to every sample of their resource, as Prometheus's
	// otlp.promote_resource_attributes (default none).
	PromoteResourceAttributes []string
	// WithoutSuffixes leaves unit and type suffixes off metric names.
	WithoutSuffixes bool
	// WithoutTargetInfo leaves out the target_info samples.
	WithoutTargetInfo bool
	// ScopeLabels adds otel_scope_name and otel_scope_version labels.
	ScopeLabels bool
	// Labels are added to every sample.
	Labels labels.Labels

	c       core[ferry.Sample]
	promote map[string]bool
	namer   otlptranslator.MetricNamer
}

var (
	_ source.Source[ferry.Sample] = (*MetricsReceiver)(nil)
	_ source.Closer               = (*MetricsReceiver)(nil)
	_ ferry.Starter               = (*MetricsReceiver)(nil)
	_ http.Handler                = (*MetricsReceiver)(nil)
)

// Validate reports configuration errors: negative limits, invalid label
// names in Labels, a Server without an address.
func (r *MetricsReceiver) Validate() error {
	return validateReceiver("metrics", &r.Limits, r.Labels, r.Server)
}

// Start validates the configuration, keeps rep for the receiver's life
// and, with a Server, starts serving /v1/metrics there. Requests before the
// first Run wait for it up to FullWait, and are answered 503 then. Start
// is a no-op on a started receiver and returns ErrClosed after Close.
func (r *MetricsReceiver) Start(ctx context.Context, rep ferry.Reporter) error {
	if err := r.Validate(); err != nil {
		return err
	}
	return r.c.start(rep, "metrics", &r.Limits, r.Server, r, MetricsPath, func() {
		r.promote = make(map[string]bool, len(r.PromoteResourceAttributes))
		for _, n := range r.PromoteResourceAttributes {
			r.promote[n] = true
		}
		strategy := otlptranslator.UnderscoreEscapingWithSuffixes
		if r.WithoutSuffixes {
			strategy = otlptranslator.UnderscoreEscapingWithoutSuffixes
		}
		r.namer = otlptranslator.NewMetricNamer("", strategy)
	})
}

// Run emits the samples of the requests received until ctx is done, and
// returns once no request can send any more. It returns ErrNotStarted
// before Start, ErrClosed after Close, and an error if it already runs.
func (r *MetricsReceiver) Run(ctx context.Context, out chan<- ferry.Batch[ferry.Sample]) error {
	return r.c.run(ctx, out)
}

// Close stops serving on the Server (the last receiver of a Server shuts
// it down, waiting for requests in progress). It is safe without Start and
// safe twice.
func (r *MetricsReceiver) Close(ctx context.Context) error {
	return r.c.close(ctx, MetricsPath)
}

// ServeHTTP handles one export request.
func (r *MetricsReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.c.serve(w, req, "metrics", "rejectedDataPoints", r.decode)
}

// decode returns the samples of a request's body, reporting the points
// it drops.
func (r *MetricsReceiver) decode(bp *[]byte, body []byte, enc encoding) (decoded[ferry.Sample], error) {
	var md metricspb.MetricsData
	err := decodeMetrics(body, enc, &md)
	r.c.bufs.Put(bp)
	if err != nil {
		return decoded[ferry.Sample]{}, err
	}
	d := r.decoder()
	samples, points := d.convert(&md, time.Now())
	rep := r.c.outlet.Reporter()
	for reason, n := range d.dropped {
		rep.Dropped(reason, n)
	}
	return decoded[ferry.Sample]{items: samples, n: points, rejected: d.rejected, msg: d.msg}, nil
}

func (r *MetricsReceiver) decoder() *metricsDecoder {
	return &metricsDecoder{
		namer:       r.namer,
		promote:     r.promote,
		extra:       r.Labels,
		targetInfo:  !r.WithoutTargetInfo,
		scopeLabels: r.ScopeLabels,
		lb:          labels.NewBuilder(labels.EmptyLabels()),
	}
}

// decodeMetrics decodes body into md.
func decodeMetrics(body []byte, enc encoding, md *metricspb.MetricsData) error {
	if enc == encProto {
		return protoUnmarshal.Unmarshal(body, md)
	}
	return jsonUnmarshal.Unmarshal(body, md)
}

// metricsDecoder converts one request's MetricsData into samples.
type metricsDecoder struct {
	namer       otlptranslator.MetricNamer
	promote     map[string]bool
	extra       labels.Labels
	targetInfo  bool
	scopeLabels bool
	names       otlpconv.Namer
	lb          *labels.Builder
	base        []labels.Label // labels every sample of the resource gets
	samples     []ferry.Sample
	rejected    int64
	msg         string
	dropped     map[string]int
	now         int64 // ms, for points without a time
}

var staleNaN = math.Float64frombits(value.StaleNaN)

// convert returns the samples of md and the number of points they came
// from.
func (d *metricsDecoder) convert(md *metricspb.MetricsData, now time.Time) ([]ferry.Sample, int64) {
	d.now = now.UnixMilli()
	var points int64
	for _, rm := range md.ResourceMetrics {
		attrs := rm.GetResource().GetAttributes()
		var svc, ns, inst string
		for _, kv := range attrs {
			switch kv.GetKey() {
			case "service.name":
				svc = otlpconv.ValueString(kv.GetValue())
			case "service.namespace":
				ns = otlpconv.ValueString(kv.GetValue())
			case "service.instance.id":
				inst = otlpconv.ValueString(kv.GetValue())
			}
		}
		job := svc
		if ns != "" && svc != "" {
			job = ns + "/" + svc
		}
		d.base = d.base[:0]
		for _, kv := range attrs {
			if d.promote[kv.GetKey()] {
				if name := d.names.Name(kv.GetKey()); name != "" {
					d.base = append(d.base, labels.Label{Name: name, Value: otlpconv.ValueString(kv.GetValue())})
				}
			}
		}
		d.extra.Range(func(l labels.Label) { d.base = append(d.base, l) })
		if job != "" {
			d.base = append(d.base, labels.Label{Name: "job", Value: job})
		}
		if inst != "" {
			d.base = append(d.base, labels.Label{Name: "instance", Value: inst})
		}
		first := len(d.samples)
		var latest int64
		for _, sm := range rm.GetScopeMetrics() {
			nb := len(d.base)
			if d.scopeLabels {
				if n := sm.GetScope().GetName(); n != "" {
					d.base = append(d.base, labels.Label{Name: "otel_scope_name", Value: n})
				}
				if v := sm.GetScope().GetVersion(); v != "" {
					d.base = append(d.base, labels.Label{Name: "otel_scope_version", Value: v})
				}
			}
			for _, m := range sm.GetMetrics() {
				points += d.metric(m)
			}
			d.base = d.base[:nb]
		}
		for _, s := range d.samples[first:] {
			latest = max(latest, s.T)
		}
		if d.targetInfo && len(d.samples) > first {
			d.lb.Reset(labels.EmptyLabels())
			others := false
			for _, kv := range attrs {
				switch kv.GetKey() {
				case "service.name", "service.namespace", "service.instance.id":
					continue
				}
				if name := d.names.Name(kv.GetKey()); name != "" {
					d.lb.Set(name, otlpconv.ValueString(kv.GetValue()))
					others = true
				}
			}
			if others {
				if job != "" {
					d.lb.Set("job", job)
				}
				if inst != "" {
					d.lb.Set("instance", inst)
				}
				d.lb.Set(labels.MetricName, "target_info")
				d.samples = append(d.samples, ferry.Sample{Labels: d.lb.Labels(), T: latest, V: 1})
			}
		}
	}
	return d.samples, points
}

func (d *metricsDecoder) drop(reason, why string, n int) {
	if n <= 0 {
		return
	}
	if d.dropped == nil {
		d.dropped = make(map[string]int)
	}
	d.dropped[reason] += n
	d.rejected += int64(n)
	if d.msg == "" {
		d.msg = why
	}
}

// metric converts the points of m and returns how many there were.
func (d *metricsDecoder) metric(m *metricspb.Metric) int64 {
	switch data := m.GetData().(type) {
	case *metricspb.Metric_Gauge:
		return convertPoints(d, m, otlptranslator.MetricTypeGauge, data.Gauge.GetDataPoints(), (*metricsDecoder).number)
	case *metricspb.Metric_Sum:
		pts := data.Sum.GetDataPoints()
		if !d.cumulative(m, data.Sum.GetAggregationTemporality(), "sums", len(pts)) {
			return int64(len(pts))
		}
		typ := otlptranslator.MetricType(otlptranslator.MetricTypeNonMonotonicCounter)
		if data.Sum.GetIsMonotonic() {
			typ = otlptranslator.MetricTypeMonotonicCounter
		}
		return convertPoints(d, m, typ, pts, (*metricsDecoder).number)
	case *metricspb.Metric_Histogram:
		pts := data.Histogram.GetDataPoints()
		if !d.cumulative(m, data.Histogram.GetAggregationTemporality(), "histograms", len(pts)) {
			return int64(len(pts))
		}
		return convertPoints(d, m, otlptranslator.MetricTypeHistogram, pts, (*metricsDecoder).histogram)
	case *metricspb.Metric_Summary:
		return convertPoints(d, m, otlptranslator.MetricTypeSummary, data.Summary.GetDataPoints(), (*metricsDecoder).summary)
	case *metricspb.Metric_ExponentialHistogram:
		n := len(data.ExponentialHistogram.GetDataPoints())
		d.drop(ReasonExponentialHistogram, fmt.Sprintf("metric %q: exponential histograms are not supported", m.GetName()), n)
		return int64(n)
	}
	return 0
}

// convertPoints converts pts, the points of m, with conv under m's name as
// a metric of typ, and returns how many there were.
func convertPoints[P any](d *metricsDecoder, m *metricspb.Metric, typ otlptranslator.MetricType, pts []P, conv func(*metricsDecoder, string, P)) int64 {
	if name, ok := d.name(m, typ, len(pts)); ok {
		for _, p := range pts {
			conv(d, name, p)
		}
	}
	return int64(len(pts))
}

// cumulative reports whether the n points of m, a metric of kind (sums or
// histograms), have cumulative temporality; it drops them otherwise.
func (d *metricsDecoder) cumulative(m *metricspb.Metric, t metricspb.AggregationTemporality, kind string, n int) bool {
	if t == metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE {
		return true
	}
	d.drop(ReasonDelta, fmt.Sprintf("metric %q: only cumulative %s are accepted", m.GetName(), kind), n)
	return false
}

func (d *metricsDecoder) name(m *metricspb.Metric, typ otlptranslator.MetricType, points int) (string, bool) {
	name, err := d.namer.Build(otlptranslator.Metric{Name: m.GetName(), Unit: m.GetUnit(), Type: typ})
	if err != nil || name == "" {
		d.drop(ReasonInvalidPoint, fmt.Sprintf("metric %q: no valid Prometheus name", m.GetName()), points)
		return "", false
	}
	return name, true
}

// start sets the labels every series of a point shares in d.lb.
func (d *metricsDecoder) start(attrs []*commonpb.KeyValue) {
	d.lb.Reset(labels.EmptyLabels())
	for _, kv := range attrs {
		name := d.names.Name(kv.GetKey())
		if name == "" {
			continue
		}
		v := otlpconv.ValueString(kv.GetValue())
		if old := d.lb.Get(name); old != "" {
			v = old + ";" + v
		}
		d.lb.Set(name, v)
	}
	for _, l := range d.base {
		d.lb.Set(l.Name, l.Value)
	}
}

func (d *metricsDecoder) ts(ns uint64) int64 {
	if ns == 0 {
		return d.now
	}
	return int64(ns / 1e6)
}

func (d *metricsDecoder) add(name, extraName, extraValue string, t int64, v float64) {
	d.lb.Set(labels.MetricName, name)
	if extraName != "" {
		d.lb.Set(extraName, extraValue)
	}
	d.samples = append(d.samples, ferry.Sample{Labels: d.lb.Labels(), T: t, V: v})
	if extraName != "" {
		d.lb.Del(extraName)
	}
}

func noValue(flags uint32) bool {
	return flags&uint32(metricspb.DataPointFlags_DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK) != 0
}

// orStale returns v, or a staleness marker for a point flagged stale (no
// recorded value).
func orStale(stale bool, v float64) float64 {
	if stale {
		return staleNaN
	}
	return v
}

func (d *metricsDecoder) number(name string, p *metricspb.NumberDataPoint) {
	d.start(p.GetAttributes())
	var v float64
	switch x := p.GetValue().(type) {
	case *metricspb.NumberDataPoint_AsDouble:
		v = x.AsDouble
	case *metricspb.NumberDataPoint_AsInt:
		v = float64(x.AsInt)
	}
	d.add(name, "", "", d.ts(p.GetTimeUnixNano()), orStale(noValue(p.GetFlags()), v))
}

func formatFloat(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "+Inf"
	case math.IsInf(f, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(f, 'f', -1, 64)
}

func (d *metricsDecoder) histogram(name string, p *metricspb.HistogramDataPoint) {
	bounds, counts := p.GetExplicitBounds(), p.GetBucketCounts()
	if len(counts) != 0 && len(counts) != len(bounds)+1 {
		d.drop(ReasonInvalidPoint, fmt.Sprintf("histogram %q: %d bucket counts for %d bounds", name, len(counts), len(bounds)), 1)
		return
	}
	d.start(p.GetAttributes())
	t := d.ts(p.GetTimeUnixNano())
	stale := noValue(p.GetFlags())
	var cum uint64
	for i, b := range bounds {
		if len(counts) > 0 {
			cum += counts[i]
		}
		d.add(name+"_bucket", labels.BucketLabel, formatFloat(b), t, orStale(stale, float64(cum)))
	}
	d.add(name+"_bucket", labels.BucketLabel, "+Inf", t, orStale(stale, float64(p.GetCount())))
	if p.Sum != nil {
		d.add(name+"_sum", "", "", t, orStale(stale, p.GetSum()))
	}
	d.add(name+"_count", "", "", t, orStale(stale, float64(p.GetCount())))
}

func (d *metricsDecoder) summary(name string, p *metricspb.SummaryDataPoint) {
	d.start(p.GetAttributes())
	t := d.ts(p.GetTimeUnixNano())
	stale := noValue(p.GetFlags())
	for _, q := range p.GetQuantileValues() {
		d.add(name, "quantile", formatFloat(q.GetQuantile()), t, orStale(stale, q.GetValue()))
	}
	d.add(name+"_sum", "", "", t, orStale(stale, p.GetSum()))
	d.add(name+"_count", "", "", t, orStale(stale, float64(p.GetCount())))
}
