package buffer

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/sink/sinktest"
	"github.com/prometheus/prometheus/model/labels"
)

const benchBatchSize = 1000

// benchEntries returns n entries with 200-byte lines and 5 labels, over 20
// streams interleaved (so that consecutive entries rarely share labels),
// every fourth with structured metadata.
func benchEntries(n int) []ferry.Entry {
	r := rand.New(rand.NewPCG(1, 2))
	streams := make([]labels.Labels, 20)
	for i := range streams {
		streams[i] = labels.FromStrings("app", fmt.Sprintf("service-%d", i%5), "container", fmt.Sprintf("c-%02d", i),
			"host", "node-1", "job", "bench", "level", []string{"info", "warn", "error", "debug"}[i%4])
	}
	t0 := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	out := make([]ferry.Entry, n)
	for i := range out {
		line := fmt.Sprintf("ts=%s level=info method=GET path=/api/v1/users status=200 duration=%dus req=%016x msg=\"request served\"",
			t0.Add(time.Duration(i)*time.Millisecond).Format(time.RFC3339Nano), r.IntN(100000), r.Uint64())
		for len(line) < 200 {
			line += fmt.Sprintf(" pad=%d", r.IntN(1000))
		}
		out[i] = ferry.Entry{Labels: streams[i%len(streams)], Timestamp: t0.Add(time.Duration(i) * time.Millisecond), Line: line[:200]}
		if i%4 == 0 {
			out[i].Metadata = labels.FromStrings("trace_id", fmt.Sprintf("%016x", r.Uint64()))
		}
	}
	return out
}

var baselineRate atomic.Pointer[float64]

// BenchmarkDiskBufferEntries writes 200-byte entries with 5 labels through
// a Disk (codec, segment files, fsync once per second) and reads them back
// to an inner sink that acknowledges at once; one op is one entry. The
// baseline writes the same bytes with a bufio.Writer to a file (fsync once
// per second too) and reads them back with io.ReadFull.
func BenchmarkDiskBufferEntries(b *testing.B) {
	items := benchEntries(benchBatchSize)
	var enc encBuf
	d0 := &Disk[ferry.Entry]{Codec: EntryCodec{}, Options: Options{MaxBytes: 1 << 30}}
	d0.encode(&enc, items)
	encoded := enc.b
	perEntry := float64(len(encoded)) / benchBatchSize

	b.Run("baseline", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(perEntry))
		path := filepath.Join(b.TempDir(), "plain")
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		w := bufio.NewWriterSize(f, 256<<10)
		batches := (b.N + benchBatchSize - 1) / benchBatchSize
		b.ResetTimer()
		cpu0 := cpuTime()
		lastSync := time.Now()
		for range batches {
			w.Write(encoded)
			if time.Since(lastSync) >= time.Second {
				w.Flush()
				f.Sync()
				lastSync = time.Now()
			}
		}
		w.Flush()
		f.Sync()
		rf, _ := os.Open(path)
		defer rf.Close()
		r := bufio.NewReaderSize(rf, 256<<10)
		buf := make([]byte, len(encoded))
		for range batches {
			if _, err := io.ReadFull(r, buf); err != nil {
				b.Fatal(err)
			}
		}
		rate := float64(b.N) / b.Elapsed().Seconds()
		b.ReportMetric(rate, "entries/s")
		b.ReportMetric(float64(b.N)/(cpuTime()-cpu0).Seconds(), "entries/cpu-s")
		baselineRate.Store(&rate)
	})

	b.Run("buffer", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(perEntry))
		var got atomic.Int64
		done := make(chan struct{})
		target := int64((b.N + benchBatchSize - 1) / benchBatchSize * benchBatchSize)
		inner := &sinktest.Sink[ferry.Entry]{SendFunc: func(ctx context.Context, bt ferry.Batch[ferry.Entry]) error {
			if got.Add(int64(len(bt.Items))) == target {
				close(done)
			}
			bt.Done(nil)
			return nil
		}}
		d := Wrap(b.TempDir(), inner, Options{MaxBytes: 4 << 30, SyncInterval: time.Second})
		if err := d.Start(context.Background(), ferry.NopReporter()); err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		b.ResetTimer()
		cpu0 := cpuTime()
		for sent := int64(0); sent < target; sent += benchBatchSize {
			d.Send(ctx, ferry.Batch[ferry.Entry]{Items: items})
		}
		d.sync() // as the baseline flushes at the end
		<-done
		b.StopTimer()
		rate := float64(b.N) / b.Elapsed().Seconds()
		b.ReportMetric(rate, "entries/s")
		b.ReportMetric(float64(b.N)/(cpuTime()-cpu0).Seconds(), "entries/cpu-s")
		if base := baselineRate.Load(); base != nil {
			b.ReportMetric(rate / *base, "ratio_to_baseline")
		}
		d.Close(ctx)
	})
}

// cpuTime is the user and system CPU time of the process so far: with
// other work on the machine, entries per CPU second is the per-core figure.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
