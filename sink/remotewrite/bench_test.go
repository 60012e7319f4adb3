package remotewrite

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"

	"github.com/ferrydev/ferry"
)

// benchSamples returns one request's worth (2000) of samples with label
// sets shaped like node_exporter's after scraping.
func benchSamples() []ferry.Sample {
	out := make([]ferry.Sample, DefaultMaxSamplesPerSend)
	modes := []string{"idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user"}
	for i := range out {
		out[i] = ferry.Sample{
			Labels: labels.FromStrings(
				"__name__", "node_cpu_seconds_total",
				"cpu", strconv.Itoa(i/len(modes)),
				"instance", "node-exporter-"+strconv.Itoa(i%7)+".example.internal:9100",
				"job", "node",
				"mode", modes[i%len(modes)],
			),
			T: 1764000000000 + int64(i),
			V: float64(i) * 1.25,
		}
	}
	return out
}

func perSample(b *testing.B, n int, body func()) {
	b.ReportAllocs()
	body()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for b.Loop() {
		body()
	}
	runtime.ReadMemStats(&after)
	total := float64(n) * float64(b.N)
	b.ReportMetric(total/b.Elapsed().Seconds(), "samples/s")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/total, "allocs/sample")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/total, "B/sample")
}

// BenchmarkRemoteWriteEncode measures what one shard does per request:
// protobuf encoding of 2000 samples plus snappy compression.
func BenchmarkRemoteWriteEncode(b *testing.B) {
	samples := benchSamples()
	for _, v := range []Version{V1, V2} {
		b.Run("v"+v.String(), func(b *testing.B) {
			var e encoder
			var body []byte
			perSample(b, len(samples), func() {
				if v == V2 {
					body = e.compress(e.encodeV2(samples, nil))
				} else {
					body = e.compress(e.encodeV1(samples, nil))
				}
			})
			b.SetBytes(int64(len(e.pb)))
			b.ReportMetric(float64(len(body)), "compressed-B/req")
		})
	}
}

// BenchmarkRemoteWriteProto is BenchmarkRemoteWriteEncode's protobuf
// encoding alone (v1.0), without Snappy.
func BenchmarkRemoteWriteProto(b *testing.B) {
	samples := benchSamples()
	var e encoder
	perSample(b, len(samples), func() { e.encodeV1(samples, nil) })
	b.SetBytes(int64(len(e.pb)))
}

// BenchmarkRawSnappy is the baseline: snappy.Encode alone over the very
// bytes BenchmarkRemoteWriteEncode produces, in the same run.
func BenchmarkRawSnappy(b *testing.B) {
	samples := benchSamples()
	for _, v := range []Version{V1, V2} {
		b.Run("v"+v.String(), func(b *testing.B) {
			var e encoder
			var pb []byte
			if v == V2 {
				pb = append([]byte(nil), e.encodeV2(samples, nil)...)
			} else {
				pb = append([]byte(nil), e.encodeV1(samples, nil)...)
			}
			dst := make([]byte, snappy.MaxEncodedLen(len(pb)))
			b.SetBytes(int64(len(pb)))
			perSample(b, len(samples), func() { dst = snappy.Encode(dst[:cap(dst)], pb) })
		})
	}
}

// targetSamples returns the samples of page, a text-format page, as
// scraped from targets targets: each copy carries the labels instance
// (127.0.0.1:30000 on) and job (node) and a timestamp of its own (targets
// are scraped a millisecond apart), and holds its labels in memory of its
// own, as a scrape cache would. (Copies with one timestamp compress
// better than any agent's requests: Snappy 24-29 against 36-38 ns a
// sample.)
func targetSamples(page []byte, targets int) ([]ferry.Sample, error) {
	var out []ferry.Sample
	lb := labels.NewBuilder(labels.EmptyLabels())
	var ls labels.Labels
	for t := range targets {
		p := textparse.NewPromParser(page, labels.NewSymbolTable(), false)
		for {
			et, err := p.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, err
			}
			if et != textparse.EntrySeries {
				continue
			}
			_, ts, v := p.Series()
			p.Labels(&ls)
			lb.Reset(ls)
			lb.Set("instance", "127.0.0.1:"+strconv.Itoa(30000+t))
			lb.Set("job", "node")
			var tms int64
			if ts != nil {
				tms = *ts
			}
			out = append(out, ferry.Sample{Labels: lb.Labels(), T: tms + 1700000000000 + int64(t), V: v})
		}
	}
	return out, nil
}

// BenchmarkShardKey measures what shards do per sample (encoding and
// compressing requests) when a sink with 16 shards fills them from the
// pages of 1000 node_exporter targets, with series dealt to shards by their
// target (targetKeys, as Send does) and, as the baseline in the same run,
// by the hash of all their labels (as Prometheus does). The labels of 1000
// targets (about 60 MB) are read from memory, not from the CPU's cache, as
// they are in a sink.
func BenchmarkShardKey(b *testing.B) {
	page, err := os.ReadFile("../../scrape/testdata/node_exporter.txt")
	if err != nil {
		b.Fatal(err)
	}
	all, err := targetSamples(page, 1000)
	if err != nil {
		b.Fatal(err)
	}
	for _, by := range []string{"series", "target"} {
		b.Run("by="+by, func(b *testing.B) {
			const shards = 16
			var keys targetKeys
			per := make([][]ferry.Sample, shards)
			var reqs [][]ferry.Sample
			n := 0
			for _, s := range all {
				k := s.Labels.Hash()
				if by == "target" {
					k, _ = keys.of(s.Labels)
				}
				i := k % shards
				if per[i] = append(per[i], s); len(per[i]) == DefaultMaxSamplesPerSend {
					reqs, per[i] = append(reqs, per[i]), nil
					n += DefaultMaxSamplesPerSend
				}
			}
			var e encoder
			compressed := 0
			for _, r := range reqs {
				compressed += len(e.compress(e.encodeV1(r, nil)))
			}
			perSample(b, n, func() {
				for _, r := range reqs {
					e.compress(e.encodeV1(r, nil))
				}
			})
			b.ReportMetric(float64(compressed)/float64(n), "compressed-B/sample")
		})
	}
}

// BenchmarkBigTarget sends the pages of one target of 20,000 series, one
// after another, to a receiver 10 ms away (it answers each request 10 ms
// after reading it), and reports the samples delivered per second: spread
// over the shards (spread.go), and in the same run as before, when all of
// a target's samples went to one shard, one request at a time, whatever
// the shard count. Run it as
//
//	go test -run '^$' -bench BenchmarkBigTarget -benchtime 50x ./sink/remotewrite
func BenchmarkBigTarget(b *testing.B) {
	const series = 20000
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		time.Sleep(10 * time.Millisecond) // the round trip to a distant receiver
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	target := make([]labels.Labels, series)
	for i := range target {
		target[i] = labels.FromStrings("__name__", "kube_pod_info", "instance", "ksm:8080", "job", "kube-state-metrics", "pod", "pod-"+strconv.Itoa(i))
	}
	for _, spread := range []bool{false, true} {
		b.Run("spread="+strconv.FormatBool(spread), func(b *testing.B) {
			s := &Sink{URL: srv.URL, ReshardInterval: time.Second, noSpread: !spread}
			if err := s.Start(context.Background(), &testReporter{}); err != nil {
				b.Fatal(err)
			}
			var delivered, failed atomic.Int64
			pages := 0
			for b.Loop() {
				page := make([]ferry.Sample, series)
				for i := range page {
					page[i] = ferry.Sample{Labels: target[i], T: int64(pages)}
				}
				pages++
				err := s.Send(context.Background(), ferry.NewBatch(page, func(err error) {
					if err != nil {
						failed.Add(1)
					}
					delivered.Add(series)
				}))
				if err != nil {
					b.Fatal(err)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := s.Close(ctx); err != nil || failed.Load() > 0 || delivered.Load() != int64(pages*series) {
				b.Fatalf("close: %v; %d of %d samples acknowledged, %d pages failed", err, delivered.Load(), pages*series, failed.Load())
			}
			b.ReportMetric(float64(pages*series)/b.Elapsed().Seconds(), "samples/s")
		})
	}
}
