package loki

import (
	"bufio"
	"cmp"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/discovery"
	"github.com/ferrydev/ferry/internal/conntest"
	"github.com/ferrydev/ferry/internal/cpuclock"
	"github.com/ferrydev/ferry/pipeline"
	"github.com/ferrydev/ferry/process"
	"github.com/ferrydev/ferry/process/stage"
	"github.com/ferrydev/ferry/source/filetail"
)

// BenchmarkFileToLoki is the log path end to end: a file of 200-byte logfmt
// lines is tailed from its beginning, optionally through a logfmt parse and
// a labels stage, encoded by the sink (protobuf + snappy) and pushed over
// HTTP to a local receiver that reads and discards each body. One iteration
// delivers the whole file (FERRY_BENCH_FILE_LINES lines, default 500,000);
// run it as
//
//	go test -run '^$' -bench BenchmarkFileToLoki -benchtime 3x ./sink/loki
//
// Each sub-benchmark reports lines per CPU second of the whole process
// (source, pipeline, stages, sink, both ends of HTTP). The limit
// sub-benchmark, in the same run, is what no implementation of this path
// avoids: the sink's protobuf + snappy encoding of the same lines in
// requests of the same size, with nothing else; end-to-end figures are
// compared with it.
func BenchmarkFileToLoki(b *testing.B) {
	n := 500_000
	if v, err := strconv.Atoi(os.Getenv("FERRY_BENCH_FILE_LINES")); err == nil && v > 0 {
		n = v
	}
	path := filepath.Join(b.TempDir(), "app.log")
	writeLines(b, path, benchEntries(n))
	// Nothing of the test data stays live: the collector's work in the
	// runs is the pipeline's own.
	runtime.GC()

	b.Run("limit-encode", func(b *testing.B) {
		// The requests the sink makes of this file: one stream, as many
		// lines as fit in DefaultBatchBytes, built before the clock starts.
		c := newStreamCache(limits{tenantLabel: DefaultTenantLabel, maxNames: 15})
		s := c.build(labels.FromStrings(filetail.FilenameLabel, path, "job", "bench"))
		raw, err := os.ReadFile(path)
		if err != nil {
			b.Fatal(err)
		}
		now := time.Now()
		var reqs []*pushBatch
		pb := &pushBatch{index: map[*stream]int{}}
		for line := range strings.Lines(string(raw)) {
			e := ferry.Entry{Labels: s.lbls, Timestamp: now, Line: line[:len(line)-1]}
			if pb.bytes+e.Size() > DefaultBatchBytes {
				reqs = append(reqs, pb)
				pb = &pushBatch{index: map[*stream]int{}}
			}
			pb.add(s, entry{sec: e.Timestamp.Unix(), nsec: int32(e.Timestamp.Nanosecond()), line: e.Line}, e.Size())
		}
		reqs = append(reqs, pb)
		var buf, zbuf []byte
		b.ReportAllocs()
		b.ResetTimer()
		cpu0 := cpuclock.Process()
		for b.Loop() {
			for _, pb := range reqs {
				buf = appendProto(buf[:0], pb.streams)
				zbuf = compress(zbuf, buf)
			}
		}
		reportLines(b, n, cpuclock.Process()-cpu0)
	})
	// Each path as the pipeline runs by default, and with the chain on
	// the file reader's goroutine (pipeline.WithInlineChains).
	for _, mode := range []struct {
		suffix string
		opts   []pipeline.Option
	}{{"", nil}, {"-inline", []pipeline.Option{pipeline.WithInlineChains()}}} {
		b.Run("file-loki"+mode.suffix, func(b *testing.B) { benchFileToLoki(b, path, n, nil, mode.opts...) })
		b.Run("file-logfmt-labels-loki"+mode.suffix, func(b *testing.B) {
			stages, err := stage.New(
				&stage.Logfmt{Mapping: map[string]string{"level": "", "method": ""}},
				&stage.Labels{Values: map[string]string{"level": "", "method": ""}},
			)
			if err != nil {
				b.Fatal(err)
			}
			benchFileToLoki(b, path, n, stages, mode.opts...)
		})
	}
}

// writeLines writes the lines of entries to path, one a line.
func writeLines(b *testing.B, path string, entries []ferry.Entry) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	for _, e := range entries {
		w.WriteString(e.Line)
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
}

// benchFileToLoki delivers the n lines of path once per iteration through
// a pipeline of the file source, stages (if not nil) and the Loki sink.
func benchFileToLoki(b *testing.B, path string, n int, stages process.Processor[ferry.Entry], opts ...pipeline.Option) {
	srv := conntest.NewNull(b)
	b.ReportAllocs()
	var cpu time.Duration
	for b.Loop() {
		var acked atomic.Int64
		ctx, cancel := context.WithCancel(context.Background())
		// count passes each batch on with an acknowledgement that counts
		// the lines the sink delivered; the run ends when all are.
		count := process.Func[ferry.Entry](func(_ context.Context, bt ferry.Batch[ferry.Entry]) (ferry.Batch[ferry.Entry], error) {
			k := int64(len(bt.Items))
			return ferry.NewBatch(bt.Items, func(err error) {
				bt.Done(err)
				if err == nil && acked.Add(k) >= int64(n) {
					cancel()
				}
			}), nil
		})
		bl := pipeline.New(opts...)
		files := pipeline.Discover(bl, "files", discovery.Static{labels.FromStrings(filetail.PathLabel, path, "job", "bench")})
		logs := pipeline.FromTargets(bl, "tail", &filetail.Source{StartAt: filetail.StartBeginning}, files)
		if stages != nil {
			logs = pipeline.Process(bl, "stages", stages, logs)
		}
		logs = pipeline.Process(bl, "count", process.Processor[ferry.Entry](count), logs)
		pipeline.To(bl, "loki", &Sink{URL: srv.URL}, logs)
		p, err := bl.Build()
		if err != nil {
			b.Fatal(err)
		}
		cpu0 := cpuclock.Process()
		if err := p.Run(ctx); err != nil {
			b.Fatal(err)
		}
		cpu += cpuclock.Process() - cpu0
		cancel()
		if got := acked.Load(); got != int64(n) {
			b.Fatalf("%d lines delivered, want %d", got, n)
		}
	}
	if srv.Bytes.Load() == 0 {
		b.Fatal("the receiver got nothing")
	}
	reportLines(b, n, cpu)
}

// reportLines reports lines per CPU second and per wall second for b.N
// passes over n lines that took cpu.
func reportLines(b *testing.B, n int, cpu time.Duration) {
	total := float64(n) * float64(b.N)
	b.ReportMetric(total/cmp.Or(cpu, 1).Seconds(), "lines/cpu-s")
	b.ReportMetric(total/b.Elapsed().Seconds(), "lines/s")
}
