package otlp

import (
	"fmt"
	"testing"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/prometheus/prometheus/model/labels"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/protobuf/proto"
)

// benchEntries is a realistic request: 5000 entries of 200-byte lines
// over 20 streams, every fourth with a trace and span ID and an attribute,
// all with a severity.
func benchEntries() []ferry.Entry {
	base := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	var out []ferry.Entry
	for s := range 20 {
		ls := labels.FromStrings("service_name", fmt.Sprintf("service-%d", s%5), "k8s_namespace_name", "prod",
			"k8s_pod_name", fmt.Sprintf("pod-%02d", s), "host_name", "node-1")
		for i := range 250 {
			line := fmt.Sprintf("ts=%s level=info caller=handler.go:%d method=GET path=/api/v1/users status=200 duration=%dus user=%08x msg=\"request served\"",
				base.Add(time.Duration(i)*time.Millisecond).Format(time.RFC3339Nano), i, i*37, i*7919)
			for len(line) < 200 {
				line += " pad=x"
			}
			md := labels.FromStrings("severity_text", "INFO", "severity_number", "9")
			if i%4 == 0 {
				md = labels.FromStrings("severity_text", "INFO", "severity_number", "9", "http_route", "/api/v1/users",
					"trace_id", "5b8efff798038103d269b633813fc60c", "span_id", "eee19b7ec3c1b174")
			}
			out = append(out, ferry.Entry{Labels: ls, Timestamp: base.Add(time.Duration(i) * time.Millisecond), Line: line[:200], Metadata: md})
		}
	}
	return out
}

// toLogsData builds the generated message the sink's encoding stands for.
func toLogsData(entries []ferry.Entry) *logspb.LogsData {
	ld := &logspb.LogsData{}
	var rl *logspb.ResourceLogs
	var prev labels.Labels
	sv := func(s string) *commonpb.AnyValue {
		return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: s}}
	}
	for i, e := range entries {
		if rl == nil || !labels.Equal(prev, e.Labels) {
			rl = &logspb.ResourceLogs{Resource: &resourcepb.Resource{}, ScopeLogs: []*logspb.ScopeLogs{{}}}
			e.Labels.Range(func(l labels.Label) {
				rl.Resource.Attributes = append(rl.Resource.Attributes, &commonpb.KeyValue{Key: resourceAttr(l.Name), Value: sv(l.Value)})
			})
			ld.ResourceLogs = append(ld.ResourceLogs, rl)
			prev = e.Labels
		}
		r := &logspb.LogRecord{TimeUnixNano: uint64(e.Timestamp.UnixNano()), Body: sv(e.Line),
			SeverityText: "INFO", SeverityNumber: logspb.SeverityNumber_SEVERITY_NUMBER_INFO}
		if i%250%4 == 0 {
			r.Attributes = []*commonpb.KeyValue{{Key: "http_route", Value: sv("/api/v1/users")}}
			r.TraceId = []byte{0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03, 0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f, 0xc6, 0x0c}
			r.SpanId = []byte{0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74}
		}
		rl.ScopeLogs[0].LogRecords = append(rl.ScopeLogs[0].LogRecords, r)
	}
	return ld
}

// BenchmarkEncodeLogs measures entries encoded into an OTLP logs request,
// next to proto.Marshal of the same message (prebuilt from the entries
// outside the loop) and to building that message and marshalling it, in
// the same run.
func BenchmarkEncodeLogs(b *testing.B) {
	entries := benchEntries()
	ld := toLogsData(entries)
	n := len(entries)
	var enc logsEncoder
	check := enc.encode(nil, entries, time.Now())
	var back logspb.LogsData
	if err := proto.Unmarshal(check, &back); err != nil || !proto.Equal(&back, ld) {
		b.Fatalf("the encoding is not the prebuilt message: %v", err)
	}
	report := func(b *testing.B) {
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
	}
	b.Run("ferry", func(b *testing.B) {
		var buf []byte
		b.ReportAllocs()
		b.SetBytes(int64(len(check)))
		for b.Loop() {
			buf = enc.encode(buf[:0], entries, time.Time{})
		}
		report(b)
	})
	b.Run("baseline-proto-marshal-prebuilt", func(b *testing.B) {
		var buf []byte
		b.ReportAllocs()
		b.SetBytes(int64(len(check)))
		for b.Loop() {
			var err error
			buf, err = proto.MarshalOptions{}.MarshalAppend(buf[:0], ld)
			if err != nil {
				b.Fatal(err)
			}
		}
		report(b)
	})
	b.Run("baseline-build-and-proto-marshal", func(b *testing.B) {
		var buf []byte
		b.ReportAllocs()
		b.SetBytes(int64(len(check)))
		for b.Loop() {
			var err error
			buf, err = proto.MarshalOptions{}.MarshalAppend(buf[:0], toLogsData(entries))
			if err != nil {
				b.Fatal(err)
			}
		}
		report(b)
	})
}
