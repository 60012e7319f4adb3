package buffer_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/buffer"
	"github.com/ferrydev/ferry/internal/conntest"
	"github.com/ferrydev/ferry/internal/cpuclock"
	"github.com/ferrydev/ferry/pipeline"
	"github.com/ferrydev/ferry/sink"
	"github.com/ferrydev/ferry/sink/loki"
	"github.com/ferrydev/ferry/source"
)

// BenchmarkEndToEnd reads a file of 200-byte lines with a Reader source and
// delivers it with the Loki sink (protobuf, snappy) to a receiver that
// discards the requests, without a buffer ("direct") and through a Disk
// (default options, fsync once per second). One op is one pass of each.
// "ratio" is the buffered pipeline's rate over the direct one's (wall
// clock), "cpu_ratio" the same per CPU second.
func BenchmarkEndToEnd(b *testing.B) {
	const lines = 200_000
	path := filepath.Join(b.TempDir(), "app.log")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	for i := range lines {
		line := fmt.Sprintf("ts=2026-12-04T12:00:00.%06dZ level=info method=GET path=/api/v1/users status=200 req=%08d msg=\"request served\"", i, i)
		w.WriteString(line + strings.Repeat(" ", 200-len(line)) + "\n")
	}
	w.Flush()
	f.Close()
	null := conntest.NewNull(b)

	// one runs the pipeline once over the file and returns its wall and
	// CPU time.
	one := func(b *testing.B, buffered bool) (wall, cpu time.Duration) {
		in, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		defer in.Close()
		var s sink.Sink[ferry.Entry] = &loki.Sink{URL: null.URL + "/loki/api/v1/push"}
		if buffered {
			dir, err := os.MkdirTemp(b.TempDir(), "buf")
			if err != nil {
				b.Fatal(err)
			}
			s = buffer.Wrap(dir, s, buffer.Options{MaxBytes: 1 << 30})
		}
		p := pipeline.New(pipeline.WithLogger(discardLogger()))
		logs := pipeline.FromSource(p, "file", &source.Reader{R: in, Labels: labels.FromStrings("job", "bench", "host", "h1", "app", "web", "env", "prod", "level", "info")})
		pipeline.To(p, "loki", s, logs)
		pl, err := p.Build()
		if err != nil {
			b.Fatal(err)
		}
		mode := "direct"
		if buffered {
			mode = "buffered"
		}
		cpu0, t0 := cpuclock.Process(), time.Now()
		// The label tells the two apart in a CPU profile (-tagfocus).
		pprof.Do(context.Background(), pprof.Labels("pipeline", mode), func(ctx context.Context) {
			err = pl.Run(ctx)
		})
		if err != nil {
			b.Fatal(err)
		}
		return time.Since(t0), cpuclock.Process() - cpu0
	}
	// Each op runs the pipeline without the buffer and then with it, so
	// that both meet the same load of the machine; the ratios compare the
	// sums of their times.
	b.Run("pairs", func(b *testing.B) {
		b.ReportAllocs()
		var dWall, dCPU, bWall, bCPU time.Duration
		for range b.N {
			w, c := one(b, false)
			dWall, dCPU = dWall+w, dCPU+c
			w, c = one(b, true)
			bWall, bCPU = bWall+w, bCPU+c
		}
		n := float64(b.N * lines)
		b.ReportMetric(n/dWall.Seconds(), "direct_entries/s")
		b.ReportMetric(n/bWall.Seconds(), "buffered_entries/s")
		b.ReportMetric(n/dCPU.Seconds(), "direct_entries/cpu-s")
		b.ReportMetric(n/bCPU.Seconds(), "buffered_entries/cpu-s")
		b.ReportMetric(dWall.Seconds()/bWall.Seconds(), "ratio")
		b.ReportMetric(dCPU.Seconds()/bCPU.Seconds(), "cpu_ratio")
		b.ReportMetric(0, "ns/op")
	})
}
