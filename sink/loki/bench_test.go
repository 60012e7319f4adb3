package loki

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/internal/cpuclock"
	"github.com/golang/snappy"
	"github.com/grafana/loki/pkg/push"
	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/protobuf/encoding/protowire"
)

const (
	benchStreams = 20
	benchLineLen = 200
)

// benchEntries returns n realistic entries: 200-byte logfmt lines over 20
// streams, every fourth with structured metadata.
func benchEntries(n int) []ferry.Entry {
	r := rand.New(rand.NewPCG(1, 2))
	streams := make([]labels.Labels, benchStreams)
	for i := range streams {
		streams[i] = labels.FromStrings("app", fmt.Sprintf("service-%d", i%5), "container", fmt.Sprintf("c-%02d", i),
			"host", "node-1", "level", []string{"info", "warn", "error", "debug"}[i%4])
	}
	paths := []string{"/api/v1/users", "/api/v1/orders", "/healthz", "/metrics", "/api/v2/search"}
	base := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	out := make([]ferry.Entry, n)
	for i := range out {
		line := fmt.Sprintf("ts=%s level=info caller=handler.go:%d method=GET path=%s status=%d duration=%dus user=%08x req=%016x msg=\"request served\"",
			base.Add(time.Duration(i)*time.Millisecond).Format(time.RFC3339Nano), r.IntN(500), paths[r.IntN(len(paths))],
			[]int{200, 200, 200, 404, 500}[r.IntN(5)], r.IntN(100000), r.Uint32(), r.Uint64())
		for len(line) < benchLineLen {
			line += " pad=" + fmt.Sprint(r.IntN(1000))
		}
		e := ferry.Entry{Labels: streams[i%benchStreams], Timestamp: base.Add(time.Duration(i) * time.Millisecond), Line: line[:benchLineLen]}
		if i%4 == 0 {
			e.Metadata = labels.FromStrings("trace_id", fmt.Sprintf("%016x", r.Uint64()))
		}
		out[i] = e
	}
	return out
}

// benchBatch builds the push batch the sink would send for entries.
func benchBatch(entries []ferry.Entry) *pushBatch {
	c := newStreamCache(limits{tenantLabel: DefaultTenantLabel, maxNames: 15})
	ss := make([]*stream, len(entries))
	c.resolve(func(i int) labels.Labels { return entries[i].Labels }, len(entries), ss)
	pb := &pushBatch{index: map[*stream]int{}}
	for i, e := range entries {
		pb.add(ss[i], entry{sec: e.Timestamp.Unix(), nsec: int32(e.Timestamp.Nanosecond()), line: e.Line, md: e.Metadata}, e.Size())
	}
	for _, sb := range pb.streams {
		sb.sortEntries()
	}
	return pb
}

func reportPerEntry(b *testing.B, entries, outBytes int) {
	b.ReportMetric(float64(entries)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
	b.ReportMetric(float64(outBytes)/float64(entries), "B/entry")
}

// BenchmarkLokiEncode measures encode+compress of a realistic 1 MiB-class
// batch (5000 entries of 200-byte lines, 20 streams) against baselines in
// the same run: snappy.Encode of the raw line bytes, snappy.Encode of the
// same protobuf bytes, and the official gogo-generated push types.
func BenchmarkLokiEncode(b *testing.B) {
	const n = 5000
	entries := benchEntries(n)
	pb := benchBatch(entries)
	proto := appendProto(nil, pb.streams)

	b.Run("ferry-protobuf+snappy", func(b *testing.B) {
		var buf, zbuf []byte
		b.ReportAllocs()
		for b.Loop() {
			buf = appendProto(buf[:0], pb.streams)
			zbuf = compress(zbuf, buf)
		}
		reportPerEntry(b, n, len(zbuf))
	})
	b.Run("ferry-json", func(b *testing.B) {
		var buf []byte
		c := newStreamCache(limits{json: true})
		for _, sb := range pb.streams {
			sb.s = c.build(sb.s.lbls)
		}
		b.ReportAllocs()
		for b.Loop() {
			buf = appendJSON(buf[:0], pb.streams)
		}
		reportPerEntry(b, n, len(buf))
	})
	b.Run("baseline-snappy-raw-lines", func(b *testing.B) {
		var raw []byte
		for _, e := range entries {
			raw = append(raw, e.Line...)
		}
		dst := make([]byte, snappy.MaxEncodedLen(len(raw)))
		var out []byte
		b.ReportAllocs()
		for b.Loop() {
			out = snappy.Encode(dst, raw)
		}
		reportPerEntry(b, n, len(out))
	})
	b.Run("baseline-snappy-same-protobuf", func(b *testing.B) {
		dst := make([]byte, snappy.MaxEncodedLen(len(proto)))
		var out []byte
		b.ReportAllocs()
		for b.Loop() {
			out = snappy.Encode(dst, proto)
		}
		reportPerEntry(b, n, len(out))
	})
	b.Run("baseline-grafana-push-marshal+snappy", func(b *testing.B) {
		var req push.PushRequest
		for _, sb := range pb.streams {
			st := push.Stream{Labels: sb.s.key}
			for _, e := range sb.entries {
				pe := push.Entry{Timestamp: time.Unix(e.sec, int64(e.nsec)), Line: e.line}
				e.md.Range(func(l labels.Label) {
					pe.StructuredMetadata = append(pe.StructuredMetadata, push.LabelAdapter{Name: l.Name, Value: l.Value})
				})
				st.Entries = append(st.Entries, pe)
			}
			req.Streams = append(req.Streams, st)
		}
		var buf, zbuf []byte
		b.ReportAllocs()
		for b.Loop() {
			size := req.Size()
			if cap(buf) < size {
				buf = make([]byte, size)
			}
			buf = buf[:size]
			if _, err := req.MarshalToSizedBuffer(buf); err != nil {
				b.Fatal(err)
			}
			zbuf = compress(zbuf, buf)
		}
		reportPerEntry(b, n, len(zbuf))
	})
}

// countEntries walks a PushRequest and counts its entries.
func countEntries(raw []byte) int {
	n := 0
	for len(raw) > 0 {
		_, _, l := protowire.ConsumeTag(raw)
		if l < 0 {
			return n
		}
		raw = raw[l:]
		st, l := protowire.ConsumeBytes(raw)
		if l < 0 {
			return n
		}
		raw = raw[l:]
		for len(st) > 0 {
			num, typ, tl := protowire.ConsumeTag(st)
			if tl < 0 {
				break
			}
			st = st[tl:]
			fl := protowire.ConsumeFieldValue(num, typ, st)
			if fl < 0 {
				break
			}
			if num == fieldStreamEntries {
				n++
			}
			st = st[fl:]
		}
	}
	return n
}

// BenchmarkLokiSinkEndToEnd pushes batches of 1000 entries through the
// sink into a local HTTP server that only snappy-decodes and counts. The
// cpu figure is the whole process (sink, HTTP on both sides, receiver
// decode) per entry, an upper bound of the sink's own cost.
func BenchmarkLokiSinkEndToEnd(b *testing.B) {
	const per = 1000
	entries := benchEntries(per)
	var got atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		raw, err := snappy.Decode(nil, body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		got.Add(int64(countEntries(raw)))
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	s := started(b, &Sink{URL: srv.URL, BatchWait: 100 * time.Millisecond}, nil)
	var acked atomic.Int64
	ctx := context.Background()
	cpu0 := cpuclock.Process()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		items := make([]ferry.Entry, per)
		copy(items, entries)
		s.Send(ctx, ferry.NewBatch(items, func(err error) {
			if err == nil {
				acked.Add(per)
			}
		}))
	}
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := s.Close(cctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	cpu := cpuclock.Process() - cpu0
	total := int64(b.N) * per
	if acked.Load() != total || got.Load() != total {
		b.Fatalf("acked %d, received %d, sent %d", acked.Load(), got.Load(), total)
	}
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "entries/s")
	b.ReportMetric(float64(total)/cpu.Seconds(), "entries/cpu-s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(total), "ns/entry")
}
