package filetail

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/internal/cpuclock"
	"github.com/prometheus/prometheus/model/labels"
)

// benchFile returns a file of about FERRY_BENCH_FILE_MB megabytes (default
// 64; 1024 for the 1 GiB run) of log lines, and its line count. It is
// created once per size in the temporary directory.
func benchFile(b *testing.B) (string, int) {
	mb := 64
	if v := os.Getenv("FERRY_BENCH_FILE_MB"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			b.Fatal(err)
		}
		mb = n
	}
	path := filepath.Join(os.TempDir(), fmt.Sprintf("ferry-filetail-bench-%dmb.log", mb))
	const line = `2026-11-25T13:28:58.123456Z level=info msg="request served" method=GET path=/api/v1/items status=200 dur=1.234ms id=`
	lines := 0
	if fi, err := os.Stat(path); err == nil && fi.Size() >= int64(mb)<<20 {
		f, _ := os.Open(path)
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			lines++
		}
		f.Close()
		return path, lines
	}
	f, err := os.Create(path + ".tmp")
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	var size int64
	for size < int64(mb)<<20 {
		n, _ := fmt.Fprintf(w, "%s%08d\n", line, lines)
		size += int64(n)
		lines++
	}
	w.Flush()
	f.Close()
	os.Rename(path+".tmp", path)
	return path, lines
}

type memStats struct{ mallocs, bytes uint64 }

func readMem() memStats {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return memStats{m.Mallocs, m.TotalAlloc}
}

func report(b *testing.B, lines int, m0 memStats, elapsed time.Duration) {
	m1 := readMem()
	total := float64(lines) * float64(b.N)
	b.ReportMetric(total/elapsed.Seconds(), "lines/s")
	b.ReportMetric(float64(m1.mallocs-m0.mallocs)/total, "allocs/line")
	b.ReportMetric(float64(m1.bytes-m0.bytes)/total, "B/line")
}

// startAlone runs s on the targets set, outside a pipeline, with an output
// channel of buf batches. stop ends the Run, acknowledges the batches left
// in the channel as not delivered, and closes s.
func startAlone(tb testing.TB, s *Source, set []labels.Labels, buf int) (out chan ferry.Batch[ferry.Entry], stop func() error) {
	tb.Helper()
	targets := make(chan []labels.Labels, 1)
	targets <- set
	out = make(chan ferry.Batch[ferry.Entry], buf)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	if err := s.Start(ctx, ferry.NopReporter()); err != nil {
		tb.Fatal(err)
	}
	go func() { done <- s.Run(ctx, targets, out) }()
	return out, func() error {
		cancel()
		<-done
		for len(out) > 0 {
			(<-out).Done(context.Canceled)
		}
		return s.Close(context.Background())
	}
}

// ackLines acknowledges the batches of out until they held n lines.
func ackLines(out <-chan ferry.Batch[ferry.Entry], n int) {
	for read := 0; read < n; {
		bt := <-out
		read += len(bt.Items)
		bt.Done(nil)
	}
}

// BenchmarkFileTail reads a whole file through the Source into a consumer
// that acknowledges and discards every batch, next to a baseline of
// bufio.Scanner making a string of every line of the same file.
//
//	go test -run '^$' -bench FileTail -benchtime 3x ./source/filetail
//	FERRY_BENCH_FILE_MB=1024 go test -run '^$' -bench FileTail -benchtime 1x ./source/filetail
func BenchmarkFileTail(b *testing.B) {
	path, lines := benchFile(b)
	fi, _ := os.Stat(path)

	b.Run("bufio.Scanner", func(b *testing.B) {
		b.SetBytes(fi.Size())
		sink := 0
		m0 := readMem()
		t0 := time.Now()
		for b.Loop() {
			f, err := os.Open(path)
			if err != nil {
				b.Fatal(err)
			}
			sc := bufio.NewScanner(f)
			sc.Buffer(make([]byte, 64<<10), 256<<10)
			for sc.Scan() {
				s := sc.Text() // one string per line, as the source makes
				sink += len(s)
			}
			f.Close()
		}
		report(b, lines, m0, time.Since(t0))
		_ = sink
	})

	b.Run("Source", func(b *testing.B) {
		b.SetBytes(fi.Size())
		m0 := readMem()
		t0 := time.Now()
		for b.Loop() {
			out, stop := startAlone(b, &Source{StartAt: StartBeginning, DisableWatch: true},
				[]labels.Labels{labels.FromStrings(PathLabel, path, "job", "bench")}, 16)
			ackLines(out, lines)
			stop()
		}
		report(b, lines, m0, time.Since(t0))
	})
}

// BenchmarkIdleFiles measures what a Source costs while the files it
// follows do not grow: FERRY_BENCH_IDLE_FILES files (default 500), read to
// their end, then followed for b.N poll intervals. It reports the process
// CPU time per file and poll next to the floor of the same run: the stat
// of the path that a poll must make to see growth and rotation, timed in
// a loop over the same files.
//
//	go test -run '^$' -bench IdleFiles -benchtime 40x -count 3 ./source/filetail
func BenchmarkIdleFiles(b *testing.B) {
	n := 500
	if v, err := strconv.Atoi(os.Getenv("FERRY_BENCH_IDLE_FILES")); err == nil && v > 0 {
		n = v
	}
	dir := b.TempDir()
	paths := make([]string, n)
	set := make([]labels.Labels, n)
	for i := range paths {
		paths[i] = filepath.Join(dir, fmt.Sprintf("app-%d.log", i))
		if err := os.WriteFile(paths[i], []byte("started\n"), 0o644); err != nil {
			b.Fatal(err)
		}
		set[i] = labels.FromStrings(PathLabel, paths[i], "job", "bench")
	}

	b.Run("floor-stat", func(b *testing.B) {
		cpu0 := cpuclock.Process()
		for b.Loop() {
			for _, p := range paths {
				if _, err := os.Stat(p); err != nil {
					b.Fatal(err)
				}
			}
		}
		reportIdle(b, n, cpuclock.Process()-cpu0)
	})

	b.Run("Source", func(b *testing.B) {
		out, stop := startAlone(b, &Source{StartAt: StartBeginning}, set, 16)
		ackLines(out, n)
		go func() {
			for bt := range out {
				bt.Done(nil)
				b.Error("an idle file gave a batch")
			}
		}()
		// Every file read: what follows is the steady idle state.
		time.Sleep(2 * DefaultPollInterval)
		cpu0 := cpuclock.Process()
		for b.Loop() {
			time.Sleep(DefaultPollInterval)
		}
		reportIdle(b, n, cpuclock.Process()-cpu0)
		b.StopTimer()
		stop()
	})
}

// reportIdle reports cpu, spent over b.N polls of n files, per file and
// poll, and as the share of a core that n files take at
// DefaultPollInterval.
func reportIdle(b *testing.B, n int, cpu time.Duration) {
	perPoll := float64(cpu.Nanoseconds()) / float64(b.N) / float64(n)
	b.ReportMetric(perPoll/1e3, "CPU-µs/file-poll")
	b.ReportMetric(perPoll*float64(n)/float64(DefaultPollInterval.Nanoseconds())*100, "%core")
}
