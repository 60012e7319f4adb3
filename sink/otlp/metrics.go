package otlp

import (
	"context"
	"math"
	"strings"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/sink"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"google.golang.org/protobuf/encoding/protowire"
)

// MetricsSink exports samples as OTLP metrics. Its zero value with a URL
// is ready to use after Start; fields must not change after Start.
//
// # Mapping
//
// Samples are grouped by resource and by metric name. The resource is
// given by the job and instance labels: job becomes service.name and
// instance service.instance.id, which Prometheus's OTLP translation turns
// back into job and instance. Every sample is one NumberDataPoint (a
// double) of a metric named by __name__; its other labels (without those
// whose names start with "__") are the point's attributes. A name ending in
// "_total" is a monotonic cumulative Sum, every other name a Gauge:
// histograms and summaries travel as the gauges of their _bucket, _sum,
// _count and quantile series, since ferry.Sample does not say which series
// belong together. A Prometheus staleness marker is sent as a point flagged
// "no recorded value".
type MetricsSink struct {
	Config
	e exporter[ferry.Sample]
}

var (
	_ sink.Sink[ferry.Sample] = (*MetricsSink)(nil)
	_ ferry.Starter           = (*MetricsSink)(nil)
)

// Validate reports configuration errors: no or an invalid URL, negative
// sizes or durations, an invalid HTTP client configuration.
func (s *MetricsSink) Validate() error { return s.Config.validate("metrics") }

// Start validates the configuration, builds the HTTP client and starts the
// sending goroutines, which report through rep.
func (s *MetricsSink) Start(ctx context.Context, rep ferry.Reporter) error {
	return s.e.start(&s.Config, "metrics", metricsCodec{}, rep)
}

// Send queues the samples of b and returns; it blocks while the queue of
// sealed requests is full, until ctx is done. b is acknowledged once all
// its samples were delivered or dropped. Before Start it acknowledges b
// with ErrNotStarted and returns it; after Close, ErrClosed.
func (s *MetricsSink) Send(ctx context.Context, b ferry.Batch[ferry.Sample]) error {
	return s.e.send(ctx, b)
}

// Close sends everything held within ctx's deadline and acknowledges what
// could not be sent by then with ErrClosed. It is safe without Start and
// safe twice.
func (s *MetricsSink) Close(ctx context.Context) error { return s.e.close(ctx) }

type metricsCodec struct{}

func (metricsCodec) size(s *ferry.Sample) int          { return s.Size() }
func (metricsCodec) newEncoder() encoder[ferry.Sample] { return &metricsEncoder{} }

// Field numbers of the OTLP metrics messages.
const (
	fResourceMetrics = 1 // MetricsData
	fScopeMetrics    = 2 // ResourceMetrics
	fMetrics         = 2 // ScopeMetrics
	fName            = 1 // Metric
	fGauge           = 5
	fSum             = 7
	fDataPoints      = 1 // Gauge, Sum
	fTemporality     = 2 // Sum
	fMonotonic       = 3 // Sum
	fPointTime       = 3 // NumberDataPoint
	fAsDouble        = 4
	fPointAttributes = 7
	fPointFlags      = 8

	cumulative = 2
)

type resKey struct{ job, instance string }

type metricGroup struct {
	name  string
	items []int
	size  int // bytes of the data points
}

type resGroup struct {
	key     resKey
	metrics []int // indexes into metricsEncoder.metrics
	resSize int
	smSize  int // bytes of the metrics
}

// metricsEncoder encodes samples as an ExportMetricsServiceRequest.
type metricsEncoder struct {
	res      []resGroup
	metrics  []metricGroup
	nres     int
	nmetrics int
	resIdx   map[resKey]int
	metIdx   map[metricKey]int
	sizes    []int
}

type metricKey struct {
	res  int
	name string
}

func pointAttr(name string) bool {
	return name != labels.MetricName && name != "job" && name != "instance" && !strings.HasPrefix(name, "__")
}

func pointSize(s *ferry.Sample) int {
	n := 1 + 8 + 1 + 8 // time, value
	s.Labels.Range(func(l labels.Label) {
		if pointAttr(l.Name) {
			n += 1 + protowire.SizeBytes(sizeKV(l.Name, l.Value))
		}
	})
	if value.IsStaleNaN(s.V) {
		n += 1 + 1
	}
	return n
}

func appendPoint(b []byte, s *ferry.Sample, size int) []byte {
	b = protowire.AppendTag(b, fDataPoints, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(size))
	b = protowire.AppendTag(b, fPointTime, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, uint64(s.T)*1e6)
	v := s.V
	stale := value.IsStaleNaN(v)
	if stale {
		v = 0
	}
	b = protowire.AppendTag(b, fAsDouble, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, math.Float64bits(v))
	s.Labels.Range(func(l labels.Label) {
		if pointAttr(l.Name) {
			b = appendKV(b, fPointAttributes, l.Name, l.Value)
		}
	})
	if stale {
		b = protowire.AppendTag(b, fPointFlags, protowire.VarintType)
		b = protowire.AppendVarint(b, 1)
	}
	return b
}

func resourceSize(k resKey) int {
	n := 0
	if k.job != "" {
		n += 1 + protowire.SizeBytes(sizeKV("service.name", k.job))
	}
	if k.instance != "" {
		n += 1 + protowire.SizeBytes(sizeKV("service.instance.id", k.instance))
	}
	return n
}

func isCounter(name string) bool { return strings.HasSuffix(name, "_total") }

// metricSize is the size of a Metric holding points bytes of points.
func metricSize(name string, points int) int {
	data := points
	if isCounter(name) {
		data += 1 + 1 + 1 + 1 // temporality, monotonic
	}
	return sizeString(name) + 1 + protowire.SizeBytes(data)
}

func (me *metricsEncoder) encode(dst []byte, items []ferry.Sample, _ time.Time) []byte {
	me.group(items)
	if cap(me.sizes) < len(items) {
		me.sizes = make([]int, len(items))
	}
	sizes := me.sizes[:len(items)]
	res, metrics := me.res[:me.nres], me.metrics[:me.nmetrics]
	for mi := range metrics {
		m := &metrics[mi]
		m.size = 0
		for _, i := range m.items {
			sizes[i] = pointSize(&items[i])
			m.size += 1 + protowire.SizeBytes(sizes[i])
		}
	}
	for ri := range res {
		r := &res[ri]
		r.resSize = resourceSize(r.key)
		r.smSize = 0
		for _, mi := range r.metrics {
			r.smSize += 1 + protowire.SizeBytes(metricSize(metrics[mi].name, metrics[mi].size))
		}
	}
	for ri := range res {
		r := &res[ri]
		rmSize := 1 + protowire.SizeBytes(r.resSize) + 1 + protowire.SizeBytes(r.smSize)
		dst = protowire.AppendTag(dst, fResourceMetrics, protowire.BytesType)
		dst = protowire.AppendVarint(dst, uint64(rmSize))
		dst = protowire.AppendTag(dst, fResource, protowire.BytesType)
		dst = protowire.AppendVarint(dst, uint64(r.resSize))
		if r.key.job != "" {
			dst = appendKV(dst, fAttributes, "service.name", r.key.job)
		}
		if r.key.instance != "" {
			dst = appendKV(dst, fAttributes, "service.instance.id", r.key.instance)
		}
		dst = protowire.AppendTag(dst, fScopeMetrics, protowire.BytesType)
		dst = protowire.AppendVarint(dst, uint64(r.smSize))
		for _, mi := range r.metrics {
			m := &metrics[mi]
			dst = protowire.AppendTag(dst, fMetrics, protowire.BytesType)
			dst = protowire.AppendVarint(dst, uint64(metricSize(m.name, m.size)))
			dst = appendString(dst, fName, m.name)
			data := m.size
			field := protowire.Number(fGauge)
			if isCounter(m.name) {
				field = fSum
				data += 4
			}
			dst = protowire.AppendTag(dst, field, protowire.BytesType)
			dst = protowire.AppendVarint(dst, uint64(data))
			for _, i := range m.items {
				dst = appendPoint(dst, &items[i], sizes[i])
			}
			if field == fSum {
				dst = protowire.AppendTag(dst, fTemporality, protowire.VarintType)
				dst = protowire.AppendVarint(dst, cumulative)
				dst = protowire.AppendTag(dst, fMonotonic, protowire.VarintType)
				dst = protowire.AppendVarint(dst, 1)
			}
		}
	}
	return dst
}

// group sorts the samples into resources and metrics, in order of first
// appearance.
func (me *metricsEncoder) group(items []ferry.Sample) {
	if me.resIdx == nil {
		me.resIdx = make(map[resKey]int)
		me.metIdx = make(map[metricKey]int)
	}
	clear(me.resIdx)
	clear(me.metIdx)
	for i := range me.res[:me.nres] {
		me.res[i].metrics = me.res[i].metrics[:0]
	}
	for i := range me.metrics[:me.nmetrics] {
		me.metrics[i].items = me.metrics[i].items[:0]
	}
	me.nres, me.nmetrics = 0, 0
	for i := range items {
		ls := items[i].Labels
		k := resKey{job: ls.Get("job"), instance: ls.Get("instance")}
		ri, isNew := group(me.resIdx, &me.res, &me.nres, k)
		if isNew {
			me.res[ri].key = k
		}
		mk := metricKey{res: ri, name: ls.Get(labels.MetricName)}
		mi, isNew := group(me.metIdx, &me.metrics, &me.nmetrics, mk)
		if isNew {
			me.metrics[mi].name = mk.name
			me.res[ri].metrics = append(me.res[ri].metrics, mi)
		}
		me.metrics[mi].items = append(me.metrics[mi].items, i)
	}
}

// group returns the index of k's group among groups[:*n], found through
// idx. When k has none yet, it takes the next group (whose storage is
// reused from an earlier request, or appended) and reports it new.
func group[K comparable, G any](idx map[K]int, groups *[]G, n *int, k K) (int, bool) {
	if i, ok := idx[k]; ok {
		return i, false
	}
	if *n == len(*groups) {
		var g G
		*groups = append(*groups, g)
	}
	i := *n
	*n++
	idx[k] = i
	return i, true
}
