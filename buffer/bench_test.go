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
	"testing"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/internal/cpuclock"
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

// BenchmarkDiskBufferEntries writes 200-byte entries with 5 labels through
// a Disk (codec, segment files, fsync once per second) and reads them back
// to an inner sink that acknowledges at once. The baseline writes the same
// bytes with a bufio.Writer to a file (fsync once per second too) and reads
// them back with io.ReadFull. One op is one entry through each: the entries
// go in rounds of benchRound, each first through the baseline and then
// through the buffer, so that both meet the same load of the machine;
// each round ends with an fsync and with everything read back. "ratio" is
// the buffer's rate over the baseline's (wall clock), "cpu_ratio" the same
// per CPU second; allocations are the buffer's (the baseline allocates
// nothing after its setup).
func BenchmarkDiskBufferEntries(b *testing.B) {
	items := benchEntries(benchBatchSize)
	var enc encBuf
	d0 := &Disk[ferry.Entry]{Codec: EntryCodec{}, Options: Options{MaxBytes: 1 << 30}}
	d0.encode(&enc, items)
	encoded := enc.b
	perEntry := float64(len(encoded)) / benchBatchSize

	b.Run("pairs", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(perEntry))

		// The baseline's file, written and read back round by round.
		path := filepath.Join(b.TempDir(), "plain")
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		rf, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		defer rf.Close()
		w := bufio.NewWriterSize(f, 256<<10)
		r := bufio.NewReaderSize(rf, 256<<10)
		rbuf := make([]byte, len(encoded))
		lastSync := time.Now()
		baseline := func(batches int) {
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
			for range batches {
				if _, err := io.ReadFull(r, rbuf); err != nil {
					b.Fatal(err)
				}
			}
		}

		// The buffer, with an inner sink that counts what it gets.
		var got atomic.Int64
		var want atomic.Int64
		done := make(chan struct{}, 1)
		inner := &sinktest.Sink[ferry.Entry]{SendFunc: func(ctx context.Context, bt ferry.Batch[ferry.Entry]) error {
			if got.Add(int64(len(bt.Items))) == want.Load() {
				done <- struct{}{}
			}
			bt.Done(nil)
			return nil
		}}
		d := Wrap(b.TempDir(), inner, Options{MaxBytes: 4 << 30, SyncInterval: time.Second})
		if err := d.Start(context.Background(), ferry.NopReporter()); err != nil {
			b.Fatal(err)
		}
		defer closeNow(d)
		ctx := context.Background()
		buffer := func(batches int) {
			want.Add(int64(batches * benchBatchSize))
			for range batches {
				d.Send(ctx, ferry.Batch[ferry.Entry]{Items: items})
			}
			d.sync() // as the baseline flushes at the end
			<-done
		}

		// Allocations are counted for the whole benchmark; the baseline's
		// setup above is done.
		b.ResetTimer()
		var baseWall, baseCPU, bufWall, bufCPU time.Duration
		batches := (b.N + benchBatchSize - 1) / benchBatchSize
		for left := batches; left > 0; left -= benchRound {
			n := min(left, benchRound)
			c0, t0 := cpuclock.Process(), time.Now()
			baseline(n)
			c1, t1 := cpuclock.Process(), time.Now()
			buffer(n)
			baseWall, baseCPU = baseWall+t1.Sub(t0), baseCPU+c1-c0
			bufWall, bufCPU = bufWall+time.Since(t1), bufCPU+cpuclock.Process()-c1
		}
		b.StopTimer()
		n := float64(batches * benchBatchSize)
		b.ReportMetric(n/baseWall.Seconds(), "baseline_entries/s")
		b.ReportMetric(n/bufWall.Seconds(), "buffer_entries/s")
		b.ReportMetric(n/baseCPU.Seconds(), "baseline_entries/cpu-s")
		b.ReportMetric(n/bufCPU.Seconds(), "buffer_entries/cpu-s")
		b.ReportMetric(baseWall.Seconds()/bufWall.Seconds(), "ratio")
		b.ReportMetric(baseCPU.Seconds()/bufCPU.Seconds(), "cpu_ratio")
	})
}

// benchRound is the number of batches of a round of
// BenchmarkDiskBufferEntries: 100,000 entries, about 28 MB.
const benchRound = 100
