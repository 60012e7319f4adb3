package remotewrite

import (
	"runtime"
	"strconv"
	"testing"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"

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
