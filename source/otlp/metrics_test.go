package otlp

import (
	"fmt"
	"math"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/internal/reptest"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
)

var tns = uint64(t0.UnixNano())

func num(v float64, attrs ...string) *metricspb.NumberDataPoint {
	return &metricspb.NumberDataPoint{TimeUnixNano: tns, Value: &metricspb.NumberDataPoint_AsDouble{AsDouble: v}, Attributes: kvs(attrs...)}
}

func testMetrics() *metricspb.MetricsData {
	sum := 4.2
	cum := metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE
	delta := metricspb.AggregationTemporality_AGGREGATION_TEMPORALITY_DELTA
	return &metricspb.MetricsData{ResourceMetrics: []*metricspb.ResourceMetrics{{
		Resource: &resourcepb.Resource{Attributes: kvs("service.name", "api", "service.namespace", "shop", "service.instance.id", "pod-1", "host.name", "n1")},
		ScopeMetrics: []*metricspb.ScopeMetrics{{Metrics: []*metricspb.Metric{
			{Name: "memory.usage", Unit: "By", Data: &metricspb.Metric_Gauge{Gauge: &metricspb.Gauge{DataPoints: []*metricspb.NumberDataPoint{
				{TimeUnixNano: tns, Value: &metricspb.NumberDataPoint_AsInt{AsInt: 100}, Attributes: kvs("state", "used")},
			}}}},
			{Name: "http.requests", Unit: "{request}", Data: &metricspb.Metric_Sum{Sum: &metricspb.Sum{
				AggregationTemporality: cum, IsMonotonic: true, DataPoints: []*metricspb.NumberDataPoint{num(5, "http.method", "GET")}}}},
			{Name: "queue.depth", Data: &metricspb.Metric_Sum{Sum: &metricspb.Sum{
				AggregationTemporality: cum, DataPoints: []*metricspb.NumberDataPoint{num(3)}}}},
			{Name: "delta.count", Data: &metricspb.Metric_Sum{Sum: &metricspb.Sum{
				AggregationTemporality: delta, IsMonotonic: true, DataPoints: []*metricspb.NumberDataPoint{num(1), num(2)}}}},
			{Name: "http.server.duration", Unit: "s", Data: &metricspb.Metric_Histogram{Histogram: &metricspb.Histogram{
				AggregationTemporality: cum, DataPoints: []*metricspb.HistogramDataPoint{{
					TimeUnixNano: tns, Count: 6, Sum: &sum, ExplicitBounds: []float64{0.1, 1}, BucketCounts: []uint64{1, 2, 3}}}}}},
			{Name: "rpc.latency", Unit: "ms", Data: &metricspb.Metric_Summary{Summary: &metricspb.Summary{DataPoints: []*metricspb.SummaryDataPoint{{
				TimeUnixNano: tns, Count: 5, Sum: 100, QuantileValues: []*metricspb.SummaryDataPoint_ValueAtQuantile{{Quantile: 0.5, Value: 10}, {Quantile: 0.99, Value: 50}}}}}}},
			{Name: "exp", Data: &metricspb.Metric_ExponentialHistogram{ExponentialHistogram: &metricspb.ExponentialHistogram{
				AggregationTemporality: cum, DataPoints: []*metricspb.ExponentialHistogramDataPoint{{TimeUnixNano: tns, Count: 1}}}}},
			{Name: "gone", Data: &metricspb.Metric_Gauge{Gauge: &metricspb.Gauge{DataPoints: []*metricspb.NumberDataPoint{
				{TimeUnixNano: tns, Flags: 1}}}}},
		}}},
	}}}
}

const ms = "1796378400123"

var wantSamples = []string{
	`gone{instance="pod-1", job="shop/api"} ` + ms + ` stale`,
	`http_requests_total{http_method="GET", instance="pod-1", job="shop/api"} ` + ms + ` 5`,
	`http_server_duration_seconds_bucket{instance="pod-1", job="shop/api", le="+Inf"} ` + ms + ` 6`,
	`http_server_duration_seconds_bucket{instance="pod-1", job="shop/api", le="0.1"} ` + ms + ` 1`,
	`http_server_duration_seconds_bucket{instance="pod-1", job="shop/api", le="1"} ` + ms + ` 3`,
	`http_server_duration_seconds_count{instance="pod-1", job="shop/api"} ` + ms + ` 6`,
	`http_server_duration_seconds_sum{instance="pod-1", job="shop/api"} ` + ms + ` 4.2`,
	`memory_usage_bytes{instance="pod-1", job="shop/api", state="used"} ` + ms + ` 100`,
	`queue_depth{instance="pod-1", job="shop/api"} ` + ms + ` 3`,
	`rpc_latency_milliseconds_count{instance="pod-1", job="shop/api"} ` + ms + ` 5`,
	`rpc_latency_milliseconds_sum{instance="pod-1", job="shop/api"} ` + ms + ` 100`,
	`rpc_latency_milliseconds{instance="pod-1", job="shop/api", quantile="0.5"} ` + ms + ` 10`,
	`rpc_latency_milliseconds{instance="pod-1", job="shop/api", quantile="0.99"} ` + ms + ` 50`,
	`target_info{host_name="n1", instance="pod-1", job="shop/api"} ` + ms + ` 1`,
}

func formatSamples(ss []ferry.Sample) []string {
	var out []string
	for _, s := range ss {
		v := fmt.Sprint(s.V)
		if value.IsStaleNaN(s.V) {
			v = "stale"
		} else if math.IsNaN(s.V) {
			v = "NaN"
		}
		name := s.Labels.Get(labels.MetricName)
		rest := labels.NewBuilder(s.Labels).Del(labels.MetricName).Labels()
		out = append(out, fmt.Sprintf("%s%s %d %s", name, rest, s.T, v))
	}
	sort.Strings(out)
	return out
}

func startMetrics(t *testing.T, r *MetricsReceiver, rep ferry.Reporter) string {
	t.Helper()
	return startReceiver(t, r, rep, MetricsPath)
}

func TestMetricsMapping(t *testing.T) {
	rec := &reptest.Reporter{}
	r := &MetricsReceiver{}
	url := startMetrics(t, r, rec)
	c, _ := runSource(t, &r.c, r.Run, 1, true, nil)
	resp := post(t, url, "application/x-protobuf", "", mustMarshal(t, testMetrics()))
	if resp.status != http.StatusOK {
		t.Fatalf("status %d: %s", resp.status, resp.body)
	}
	got := formatSamples(c.got())
	if strings.Join(got, "\n") != strings.Join(wantSamples, "\n") {
		t.Errorf("samples:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantSamples, "\n"))
	}
	rejected, msg := decodePartial(t, resp.body)
	if rejected != 3 || !strings.Contains(msg, "delta.count") {
		t.Errorf("partial success (%d, %q), want 3 rejected naming delta.count", rejected, msg)
	}
	if rec.Drops(ReasonDelta) != 2 || rec.Drops(ReasonExponentialHistogram) != 1 {
		t.Errorf("drops %v", rec.AllDrops())
	}
}

func TestMetricsJSON(t *testing.T) {
	r := &MetricsReceiver{WithoutTargetInfo: true}
	url := startMetrics(t, r, nil)
	c, _ := runSource(t, &r.c, r.Run, 1, true, nil)
	body := `{"resourceMetrics":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"api"}}]},
	  "scopeMetrics":[{"metrics":[{"name":"jobs.done","unit":"1","sum":{"aggregationTemporality":2,"isMonotonic":true,
	  "dataPoints":[{"timeUnixNano":"1796378400123456789","asInt":"7","attributes":[{"key":"queue","value":{"stringValue":"q1"}}]}]}}]}]}]}`
	resp := post(t, url, "application/json", "", []byte(body))
	if resp.status != 200 || string(resp.body) != "{}" {
		t.Fatalf("status %d: %s", resp.status, resp.body)
	}
	want := `jobs_done_total{job="api", queue="q1"} ` + ms + ` 7`
	if got := formatSamples(c.got()); len(got) != 1 || got[0] != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestMetricsRejectedJSON(t *testing.T) {
	r := &MetricsReceiver{}
	url := startMetrics(t, r, nil)
	runSource(t, &r.c, r.Run, 1, true, nil)
	body := `{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"d","sum":{"aggregationTemporality":1,"dataPoints":[{"asInt":"1"}]}}]}]}]}`
	resp := post(t, url, "application/json", "", []byte(body))
	if resp.status != 200 || !strings.HasPrefix(string(resp.body), `{"partialSuccess":{"rejectedDataPoints":"1","errorMessage":`) {
		t.Fatalf("status %d: %s", resp.status, resp.body)
	}
}
