package otlp

import (
	"testing"
	"time"

	"github.com/ferrydev/ferry/internal/otlpconv"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
)

// FuzzLogs feeds arbitrary bodies, as protobuf and as JSON, through the
// decode and conversion path of the logs receiver: errors are fine, panics
// are not, and every record that decodes is either an entry or rejected.
func FuzzLogs(f *testing.F) {
	f.Add(mustMarshal(f, testLogs()), false)
	f.Add([]byte(testLogsJSON), true)
	f.Add([]byte(`{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"traceId":"00","body":{"arrayValue":{"values":[{"kvlistValue":{}}]}}}]}]}]}`), true)
	f.Add([]byte{0x0a, 0x05, 0x01}, false)
	promote := map[string]bool{}
	for _, n := range otlpconv.DefaultResourceLabels {
		promote[n] = true
	}
	f.Fuzz(func(t *testing.T, body []byte, json bool) {
		enc := encProto
		if json {
			enc = encJSON
		}
		var ld logspb.LogsData
		if err := decodeLogs(body, enc, &ld); err != nil {
			return
		}
		records := 0
		for _, rl := range ld.ResourceLogs {
			for _, sl := range rl.GetScopeLogs() {
				records += len(sl.GetLogRecords())
			}
		}
		d := logsDecoder{promote: promote}
		entries := d.convert(&ld, nil)
		if len(entries)+int(d.rejected) != records {
			t.Fatalf("%d records became %d entries and %d rejections", records, len(entries), d.rejected)
		}
	})
}

// FuzzMetrics does the same for the metrics receiver.
func FuzzMetrics(f *testing.F) {
	f.Add(mustMarshal(f, testMetrics()), false)
	f.Add([]byte(`{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"a.b","histogram":{"aggregationTemporality":2,"dataPoints":[{"bucketCounts":["1"],"explicitBounds":[1,2]}]}}]}]}]}`), true)
	r := &MetricsReceiver{}
	if err := r.Start(t0Context(), nil); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte, json bool) {
		enc := encProto
		if json {
			enc = encJSON
		}
		var md metricspb.MetricsData
		if err := decodeMetrics(body, enc, &md); err != nil {
			return
		}
		d := r.decoder()
		samples, _ := d.convert(&md, time.Unix(0, 0))
		for _, s := range samples {
			if s.Labels.Get("__name__") == "" {
				t.Fatalf("sample without a name: %v", s.Labels)
			}
		}
	})
}
