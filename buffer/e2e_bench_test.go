package buffer_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/buffer"
	"github.com/ferrydev/ferry/pipeline"
	"github.com/ferrydev/ferry/sink"
	"github.com/ferrydev/ferry/sink/loki"
	"github.com/ferrydev/ferry/source"
	"github.com/prometheus/prometheus/model/labels"
)

var directRate atomic.Pointer[float64]

// BenchmarkEndToEnd reads a file of 200-byte lines with a Reader source and
// delivers it with the Loki sink (protobuf, snappy) to a receiver that
// discards the requests: "direct" without a buffer, "buffered" through a
// Disk (default options, fsync once per second). One op is one line.
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
	var received atomic.Int64
	null := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		received.Add(n)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer null.Close()

	run := func(b *testing.B, wrap func(s sink.Sink[ferry.Entry]) sink.Sink[ferry.Entry]) {
		b.ReportAllocs()
		b.SetBytes(201)
		var ru0 syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
		for b.Loop() {
			in, err := os.Open(path)
			if err != nil {
				b.Fatal(err)
			}
			p := pipeline.New(pipeline.WithLogger(discardLogger()))
			logs := pipeline.FromSource(p, "file", &source.Reader{R: in, Labels: labels.FromStrings("job", "bench", "host", "h1", "app", "web", "env", "prod", "level", "info")})
			pipeline.To(p, "loki", wrap(&loki.Sink{URL: null.URL + "/loki/api/v1/push"}), logs)
			pl, err := p.Build()
			if err != nil {
				b.Fatal(err)
			}
			if err := pl.Run(context.Background()); err != nil {
				b.Fatal(err)
			}
			in.Close()
		}
		var ru1 syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
		cpu := time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
		rate := float64(b.N*lines) / b.Elapsed().Seconds()
		b.ReportMetric(rate, "entries/s")
		b.ReportMetric(float64(b.N*lines)/cpu.Seconds(), "entries/cpu-s")
		b.ReportMetric(0, "ns/op")
		if b.Name() == "BenchmarkEndToEnd/direct" {
			directRate.Store(&rate)
		} else if d := directRate.Load(); d != nil {
			b.ReportMetric(rate / *d, "ratio_to_direct")
		}
	}
	b.Run("direct", func(b *testing.B) {
		run(b, func(s sink.Sink[ferry.Entry]) sink.Sink[ferry.Entry] { return s })
	})
	b.Run("buffered", func(b *testing.B) {
		run(b, func(s sink.Sink[ferry.Entry]) sink.Sink[ferry.Entry] {
			dir, err := os.MkdirTemp(b.TempDir(), "buf")
			if err != nil {
				b.Fatal(err)
			}
			return buffer.Wrap(dir, s, buffer.Options{MaxBytes: 1 << 30})
		})
	})
}
