package otlp

import (
	"testing"
	"time"

	"github.com/ferrydev/ferry/internal/otlpconv"
	"github.com/prometheus/prometheus/model/labels"
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

// FuzzDecodeProto checks that the protowire decoder of logs agrees with
// proto.Unmarshal and convert on every input: both fail, or both give the
// same entries.
func FuzzDecodeProto(f *testing.F) {
	f.Add(mustMarshal(f, testLogs()))
	f.Add(mustMarshal(f, benchLogs()))
	f.Add([]byte{0x0a, 0x05, 0x01})
	scoped := testLogs()
	scoped.ResourceLogs[0].ScopeLogs[0].Scope.Attributes = kvs("scope.team", "payments", "scope.other", "x")
	f.Add(mustMarshal(f, scoped))
	promote := map[string]bool{}
	for _, n := range otlpconv.DefaultResourceLabels {
		promote[n] = true
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		checkDecodeProto(t, body, promote)
	})
}

func checkDecodeProto(t *testing.T, body []byte, promote map[string]bool) {
	t.Helper()
	var ld logspb.LogsData
	uerr := decodeLogs(body, encProto, &ld)
	scopePromote := map[string]bool{"scope.team": true}
	d := logsDecoder{promote: promote, scopePromote: scopePromote}
	got, err := d.decodeProto(body, nil, false)
	if (err != nil) != (uerr != nil) {
		t.Fatalf("decodeProto error %v, proto.Unmarshal error %v", err, uerr)
	}
	if err != nil {
		return
	}
	d2 := logsDecoder{promote: promote, scopePromote: scopePromote}
	want := d2.convert(&ld, nil)
	if len(got) != len(want) || d.rejected != d2.rejected {
		t.Fatalf("decodeProto: %d entries (%d rejected), convert: %d (%d)", len(got), d.rejected, len(want), d2.rejected)
	}
	for i := range want {
		g, w := got[i], want[i]
		if !labels.Equal(g.Labels, w.Labels) || !g.Timestamp.Equal(w.Timestamp) || g.Line != w.Line || !labels.Equal(g.Metadata, w.Metadata) {
			t.Fatalf("entry %d:\n got %v %v %q %v\nwant %v %v %q %v", i, g.Labels, g.Timestamp, g.Line, g.Metadata, w.Labels, w.Timestamp, w.Line, w.Metadata)
		}
	}
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
