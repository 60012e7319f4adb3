package otlp

import (
	"fmt"
	"testing"
	"time"

	"github.com/ferrydev/ferry/internal/otlpconv"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/protobuf/proto"
)

// benchLogs is a realistic export: 5000 records of 200-byte lines over 20
// resources, every fourth with a trace and span ID and an attribute.
func benchLogs() *logspb.LogsData {
	ld := &logspb.LogsData{}
	base := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	for s := range 20 {
		rl := &logspb.ResourceLogs{Resource: &resourcepb.Resource{Attributes: kvs(
			"service.name", fmt.Sprintf("service-%d", s%5), "k8s.namespace.name", "prod",
			"k8s.pod.name", fmt.Sprintf("pod-%02d", s), "host.name", "node-1")}}
		sl := &logspb.ScopeLogs{}
		for i := range 250 {
			line := fmt.Sprintf("ts=%s level=info caller=handler.go:%d method=GET path=/api/v1/users status=200 duration=%dus user=%08x msg=\"request served\"",
				base.Add(time.Duration(i)*time.Millisecond).Format(time.RFC3339Nano), i, i*37, i*7919)
			for len(line) < 200 {
				line += " pad=x"
			}
			r := &logspb.LogRecord{TimeUnixNano: uint64(base.Add(time.Duration(i) * time.Millisecond).UnixNano()),
				SeverityNumber: logspb.SeverityNumber_SEVERITY_NUMBER_INFO, SeverityText: "INFO", Body: str(line[:200])}
			if i%4 == 0 {
				r.TraceId, r.SpanId = traceID, spanID
				r.Attributes = kvs("http.route", "/api/v1/users")
			}
			sl.LogRecords = append(sl.LogRecords, r)
		}
		rl.ScopeLogs = append(rl.ScopeLogs, sl)
		ld.ResourceLogs = append(ld.ResourceLogs, rl)
	}
	return ld
}

// BenchmarkDecodeLogs measures an OTLP logs body decoded into ferry
// entries, next to proto.Unmarshal of the same body into the generated
// types in the same run.
func BenchmarkDecodeLogs(b *testing.B) {
	body := mustMarshal(b, benchLogs())
	const n = 5000
	report := func(b *testing.B) {
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
	}
	promote := map[string]bool{}
	for _, a := range otlpconv.DefaultResourceLabels {
		promote[a] = true
	}
	b.Run("ferry", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			d := logsDecoder{promote: promote}
			entries, err := d.decodeProto(body, nil, true)
			if err != nil || len(entries) != n {
				b.Fatal(err, len(entries))
			}
		}
		report(b)
	})
	b.Run("generated-unmarshal-then-convert", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			var ld logspb.LogsData
			if err := decodeLogs(body, encProto, &ld); err != nil {
				b.Fatal(err)
			}
			d := logsDecoder{promote: promote}
			if entries := d.convert(&ld, nil); len(entries) != n {
				b.Fatal(len(entries))
			}
		}
		report(b)
	})
	b.Run("baseline-proto-unmarshal", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			var ld logspb.LogsData
			if err := proto.Unmarshal(body, &ld); err != nil {
				b.Fatal(err)
			}
		}
		report(b)
	})
}
