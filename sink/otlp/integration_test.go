package otlp

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/internal/peers"
	"github.com/ferrydev/ferry/internal/poll"
	"github.com/prometheus/prometheus/model/labels"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	"google.golang.org/protobuf/proto"
)

// TestPrometheus3 sends samples over OTLP to Prometheus 3's OTLP receiver
// and queries them back.
func TestPrometheus3(t *testing.T) {
	bin := peers.Bin(t, "FERRY_PROMETHEUS3_BIN", "scripts/setup/prometheus3.sh")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte("global:\n  scrape_interval: 1m\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := peers.FreeAddr(t)
	peers.Start(t, bin, "http://"+addr+"/-/ready",
		"--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--web.enable-otlp-receiver")

	s := &MetricsSink{Config: Config{URL: "http://" + addr + "/api/v1/otlp/v1/metrics", BatchWait: 10 * time.Millisecond, Gzip: true}}
	if err := s.Start(context.Background(), ferry.NopReporter()); err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	now := time.Now().UnixMilli()
	samples := []ferry.Sample{
		{Labels: labels.FromStrings("__name__", "ferry_otlp_temperature_celsius", "job", "ferry", "instance", "host-1", "room", "lab"), T: now, V: 21.5},
		{Labels: labels.FromStrings("__name__", "ferry_otlp_requests_total", "job", "ferry", "instance", "host-1", "code", "200"), T: now, V: 42},
	}
	if err := send(t, s, samples); err != nil {
		t.Fatalf("outcome: %v", err)
	}
	for _, q := range []struct{ query, want string }{
		{"ferry_otlp_temperature_celsius", `{"__name__":"ferry_otlp_temperature_celsius","instance":"host-1","job":"ferry","room":"lab"} 21.5`},
		{"ferry_otlp_requests_total", `{"__name__":"ferry_otlp_requests_total","code":"200","instance":"host-1","job":"ferry"} 42`},
	} {
		got := promQuery(t, addr, q.query)
		if got != q.want {
			t.Errorf("%s: got %s, want %s", q.query, got, q.want)
		}
	}
}

// promQuery runs an instant query and returns its one series as
// "labels value", waiting for it to appear.
func promQuery(t *testing.T, addr, q string) string {
	t.Helper()
	var series string
	var n int
	found := poll.Wait(poll.Timeout, func() bool {
		resp, err := http.Get("http://" + addr + "/api/v1/query?query=" + url.QueryEscape(q))
		if err != nil {
			t.Fatal(err)
		}
		var r struct {
			Data struct {
				Result []struct {
					Metric json.RawMessage `json:"metric"`
					Value  [2]any          `json:"value"`
				} `json:"result"`
			} `json:"data"`
		}
		err = json.NewDecoder(resp.Body).Decode(&r)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if n = len(r.Data.Result); n == 1 {
			series = fmt.Sprintf("%s %v", r.Data.Result[0].Metric, r.Data.Result[0].Value[1])
		}
		return n == 1
	})
	if !found {
		t.Fatalf("%s: %d series", q, n)
	}
	return series
}

// TestVictoriaLogs sends entries over OTLP to VictoriaLogs and queries
// them back.
func TestVictoriaLogs(t *testing.T) {
	vl := peers.StartVictoriaLogs(t)
	s := &LogsSink{Config: Config{URL: vl.URL + "/insert/opentelemetry/v1/logs", BatchWait: 10 * time.Millisecond}}
	if err := s.Start(context.Background(), ferry.NopReporter()); err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	now := time.Now().Truncate(time.Millisecond)
	entries := []ferry.Entry{
		{Labels: labels.FromStrings("service_name", "ferry-otlp-test"), Timestamp: now, Line: "first otlp line",
			Metadata: labels.FromStrings("severity_text", "WARN", "user", "ann")},
		{Labels: labels.FromStrings("service_name", "ferry-otlp-test"), Timestamp: now.Add(time.Millisecond), Line: "second otlp line"},
	}
	if err := send(t, s, entries); err != nil {
		t.Fatalf("outcome: %v", err)
	}
	var rows []map[string]string
	poll.Wait(poll.Timeout, func() bool {
		rows = vl.Query(t, `"service.name":"ferry-otlp-test" | sort by (_time)`)
		return len(rows) >= 2
	})
	if len(rows) != 2 {
		t.Fatalf("got %d rows: %v", len(rows), rows)
	}
	if rows[0]["_msg"] != "first otlp line" || rows[1]["_msg"] != "second otlp line" {
		t.Errorf("messages %q, %q", rows[0]["_msg"], rows[1]["_msg"])
	}
	if rows[0]["user"] != "ann" || rows[0]["severity_text"] != "WARN" {
		t.Errorf("fields of the first row: %v", rows[0])
	}
	if ts, err := time.Parse(time.RFC3339Nano, rows[0]["_time"]); err != nil || !ts.Equal(now) {
		t.Errorf("_time %q, want %v", rows[0]["_time"], now)
	}
}

// TestCollector sends entries and samples to a real OpenTelemetry
// Collector, which exports them over OTLP/HTTP to a test server: what the
// Collector forwards is what Ferry sent.
func TestCollector(t *testing.T) {
	bin := peers.Bin(t, "FERRY_OTELCOL_BIN", "scripts/setup/otelcol.sh")
	f := newFake(t, nil)
	base := strings.TrimSuffix(f.url, "/v1/logs")
	in := peers.FreeAddr(t)
	telemetry := peers.FreeAddr(t)
	_, tport, _ := strings.Cut(telemetry, ":")
	cfg := fmt.Sprintf(`receivers:
  otlp:
    protocols:
      http:
        endpoint: %s
exporters:
  otlphttp:
    endpoint: %s
    compression: none
service:
  telemetry:
    metrics:
      readers:
        - pull:
            exporter:
              prometheus:
                host: 127.0.0.1
                port: %s
  pipelines:
    logs:
      receivers: [otlp]
      exporters: [otlphttp]
    metrics:
      receivers: [otlp]
      exporters: [otlphttp]
`, in, base, tport)
	path := filepath.Join(t.TempDir(), "otelcol.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	peers.Start(t, bin, "http://"+telemetry+"/metrics", "--config="+path)

	logs := &LogsSink{Config: Config{URL: "http://" + in + "/v1/logs", BatchWait: 10 * time.Millisecond, MinBackoff: 50 * time.Millisecond, Gzip: true}}
	metrics := &MetricsSink{Config: Config{URL: "http://" + in + "/v1/metrics", BatchWait: 10 * time.Millisecond, MinBackoff: 50 * time.Millisecond}}
	for _, s := range []ferry.Starter{logs, metrics} {
		if err := s.Start(context.Background(), ferry.NopReporter()); err != nil {
			t.Fatal(err)
		}
	}
	defer logs.Close(context.Background())
	defer metrics.Close(context.Background())
	if err := send(t, logs, testEntries()); err != nil {
		t.Fatalf("logs outcome: %v", err)
	}
	if err := send(t, metrics, testSamples()); err != nil {
		t.Fatalf("metrics outcome: %v", err)
	}
	var records []string
	var points []string
	poll.Wait(poll.Timeout, func() bool {
		records, points = nil, nil
		for _, b := range f.requests() {
			var ld logspb.LogsData
			if proto.Unmarshal(b, &ld) == nil {
				for _, rl := range ld.ResourceLogs {
					svc := ""
					for _, kv := range rl.GetResource().GetAttributes() {
						if kv.GetKey() == "service.name" {
							svc = kv.GetValue().GetStringValue()
						}
					}
					for _, sl := range rl.GetScopeLogs() {
						for _, r := range sl.GetLogRecords() {
							records = append(records, fmt.Sprintf("%s %d %s %s %x", svc, r.GetTimeUnixNano(), r.GetBody().GetStringValue(), r.GetSeverityText(), r.GetTraceId()))
						}
					}
				}
			}
			var md metricspb.MetricsData
			if proto.Unmarshal(b, &md) == nil {
				for _, rm := range md.ResourceMetrics {
					for _, sm := range rm.GetScopeMetrics() {
						for _, m := range sm.GetMetrics() {
							for _, p := range append(m.GetGauge().GetDataPoints(), m.GetSum().GetDataPoints()...) {
								points = append(points, fmt.Sprintf("%s %v", m.GetName(), p.GetAsDouble()))
							}
						}
					}
				}
			}
		}
		return len(records) >= 3 && len(points) >= 4
	})
	rec := func(svc string, ns int64, body, sev, trace string) string {
		return fmt.Sprintf("%s %d %s %s %s", svc, ns, body, sev, trace)
	}
	wantRecords := fmt.Sprint([]string{
		rec("checkout", t0.UnixNano(), "payment failed", "ERROR", "5b8efff798038103d269b633813fc60c"),
		rec("checkout", t0.Add(2*time.Second).UnixNano(), "same stream again", "", ""),
		rec("", t0.Add(time.Second).UnixNano(), "second stream", "", ""),
	})
	if fmt.Sprint(records) != wantRecords {
		t.Errorf("records the collector forwarded:\n%v\nwant\n%s", records, wantRecords)
	}
	if len(points) != 4 {
		t.Errorf("points the collector forwarded: %v", points)
	}
}
