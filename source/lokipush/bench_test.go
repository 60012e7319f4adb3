package lokipush

import (
	"fmt"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/grafana/loki/pkg/push"
)

// benchRequest is a realistic push: 5000 entries of 200-byte lines over 20
// streams, every fourth with structured metadata.
func benchRequest() push.PushRequest {
	var req push.PushRequest
	base := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	for s := range 20 {
		st := push.Stream{Labels: fmt.Sprintf(`{app="service-%d", container="c-%02d", host="node-1", level="info"}`, s%5, s)}
		for i := range 250 {
			line := fmt.Sprintf("ts=%s level=info caller=handler.go:%d method=GET path=/api/v1/users status=200 duration=%dus user=%08x req=%016x msg=\"request served\"",
				base.Add(time.Duration(i)*time.Millisecond).Format(time.RFC3339Nano), i, i*37, i*7919, uint64(i)*0x9e3779b97f4a7c15)
			for len(line) < 200 {
				line += " pad=x"
			}
			e := push.Entry{Timestamp: base.Add(time.Duration(i) * time.Millisecond), Line: line[:200]}
			if i%4 == 0 {
				e.StructuredMetadata = push.LabelsAdapter{{Name: "trace_id", Value: fmt.Sprintf("%016x", i)}}
			}
			st.Entries = append(st.Entries, e)
		}
		req.Streams = append(req.Streams, st)
	}
	return req
}

// BenchmarkDecode measures snappy decode + protobuf decode of a push body
// into ferry entries, next to the official gogo-generated Unmarshal of the
// same body in the same run.
func BenchmarkDecode(b *testing.B) {
	req := benchRequest()
	raw, err := req.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	body := snappy.Encode(nil, raw)
	const n = 5000
	report := func(b *testing.B) {
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
	}
	b.Run("ferry", func(b *testing.B) {
		var d decoder
		b.ReportAllocs()
		b.SetBytes(int64(len(raw)))
		for b.Loop() {
			dec, err := snappy.Decode(nil, body)
			if err != nil {
				b.Fatal(err)
			}
			entries, err := d.decodeProto(dec, nil)
			if err != nil || len(entries) != n {
				b.Fatal(err, len(entries))
			}
		}
		report(b)
	})
	b.Run("baseline-grafana-push-unmarshal", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(raw)))
		for b.Loop() {
			dec, err := snappy.Decode(nil, body)
			if err != nil {
				b.Fatal(err)
			}
			var r push.PushRequest
			if err := r.Unmarshal(dec); err != nil {
				b.Fatal(err)
			}
		}
		report(b)
	})
	b.Run("baseline-snappy-decode-only", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(raw)))
		for b.Loop() {
			if _, err := snappy.Decode(nil, body); err != nil {
				b.Fatal(err)
			}
		}
		report(b)
	})
}
