package pipeline_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/internal/cpuclock"
	"github.com/ferrydev/ferry/pipeline"
	"github.com/ferrydev/ferry/relabel"
	"github.com/ferrydev/ferry/sink"
	"github.com/ferrydev/ferry/source"
	"github.com/prometheus/prometheus/model/labels"
)

// benchEntries returns entries of streams distinct containers, labelled as
// Docker discovery labels them.
func benchEntries(n, streams int) []ferry.Entry {
	out := make([]ferry.Entry, n)
	ts := time.Unix(1700000000, 0)
	for i := range out {
		s := i % streams
		out[i] = ferry.Entry{
			Labels: labels.FromStrings(
				"__meta_docker_container_id", fmt.Sprintf("%064x", s),
				"__meta_docker_container_label_com_docker_compose_service", fmt.Sprintf("svc-%d", s%5),
				"__meta_docker_container_log_stream", "stdout",
				"__meta_docker_container_name", fmt.Sprintf("/app-%d", s),
			),
			Timestamp: ts.Add(time.Duration(i)),
			Line:      `level=info msg="request served" path=/api/v1/items status=200 duration=1.2ms`,
		}
	}
	return out
}

func benchRules() []relabel.Rule {
	return []relabel.Rule{
		relabel.Replace([]string{"__meta_docker_container_name"}, "/(.*)", "container", "$1"),
		relabel.Replace([]string{"__meta_docker_container_label_com_docker_compose_service"}, "(.+)", "service", "$1"),
		relabel.LabelDrop("__meta_docker_container_(id|label_.*)"),
	}
}

// recycler is a finite source that emits n entries from a template in
// batches, reusing each batch's slice once its acknowledgement arrives, as a
// production source recycles its buffers.
type recycler struct {
	tmpl  []ferry.Entry
	n     int
	batch int
	free  chan []ferry.Entry
}

func (r *recycler) Run(ctx context.Context, out chan<- ferry.Batch[ferry.Entry]) error {
	for sent := 0; sent < r.n; {
		var buf []ferry.Entry
		select {
		case buf = <-r.free:
		default:
			buf = make([]ferry.Entry, 0, r.batch)
		}
		k := min(r.batch, r.n-sent)
		buf = buf[:k]
		for i := range buf {
			buf[i] = r.tmpl[(sent+i)%len(r.tmpl)]
		}
		sent += k
		b := ferry.NewBatch(buf, func(error) {
			select {
			case r.free <- buf[:0]:
			default:
			}
		})
		if err := source.Send(ctx, out, b); err != nil {
			return nil
		}
	}
	return nil
}

// The three ways BenchmarkPipelineLogs and BenchmarkPipelineOverhead run n
// entries of tmpl, in batches, through one relabel processor: a plain loop,
// the same loop over two goroutines joined by a channel, and a pipeline.

func runPlain(tmpl []ferry.Entry, rules *relabel.Rules, n, batch int) {
	p := relabel.Entries(rules)
	buf := make([]ferry.Entry, batch)
	for sent := 0; sent < n; sent += batch {
		k := min(batch, n-sent)
		for i := range buf[:k] {
			buf[i] = tmpl[(sent+i)%len(tmpl)]
		}
		out, _ := p.Process(context.Background(), ferry.NewBatch(buf[:k], func(error) {}))
		out.Done(nil)
	}
}

// runHandoff is runPlain split over two goroutines joined by a channel, as
// the recycler source and the pipeline's fused relabel-and-sink chain are:
// its cost above the plain loop is the hand-off alone, the floor of any
// design where a source runs on a goroutine of its own.
func runHandoff(tmpl []ferry.Entry, rules *relabel.Rules, n, batch int) {
	p := relabel.Entries(rules)
	ch := make(chan ferry.Batch[ferry.Entry], 16)
	src := &recycler{tmpl: tmpl, n: n, batch: batch, free: make(chan []ferry.Entry, 16)}
	go func() {
		src.Run(context.Background(), ch)
		close(ch)
	}()
	for in := range ch {
		out, _ := p.Process(context.Background(), in)
		out.Done(nil)
	}
}

func runPipeline(b *testing.B, tmpl []ferry.Entry, n, batch int, opts ...pipeline.Option) {
	src := &recycler{tmpl: tmpl, n: n, batch: batch, free: make(chan []ferry.Entry, 16)}
	bl := pipeline.New(opts...)
	s := pipeline.FromSource(bl, "source", src)
	s = pipeline.Relabel(bl, "relabel", benchRules(), s)
	pipeline.To(bl, "discard", sink.Discard[ferry.Entry]{}, s)
	p, err := bl.Build()
	if err != nil {
		b.Fatal(err)
	}
	if err := p.Run(context.Background()); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkPipelineLogs runs entries from a finite source through one
// relabel processor into a discarding sink, next to baselines over the
// same entries in the same run: the same relabel processor called in a
// plain loop (the pipeline's overhead is the difference), the plain loop
// with one channel hand-off, and Prometheus's relabel.ProcessBuilder per
// entry (what relabeling costs without the per-stream cache). The
// sub-benchmarks run one after another, so a machine whose speed drifts
// moves them apart; BenchmarkPipelineOverhead pairs them.
func BenchmarkPipelineLogs(b *testing.B) {
	const streams = 20
	tmpl := benchEntries(4096, streams)
	rules := relabel.MustNew(benchRules()...)
	for _, batch := range []int{64, source.DefaultBatchSize, 2048} {
		for _, sub := range []struct {
			name string
			run  func(n int)
		}{
			{"baseline_plain_loop", func(n int) { runPlain(tmpl, rules, n, batch) }},
			{"baseline_handoff", func(n int) { runHandoff(tmpl, rules, n, batch) }},
			{"pipeline", func(n int) { runPipeline(b, tmpl, n, batch) }},
			{"pipeline_inline", func(n int) { runPipeline(b, tmpl, n, batch, pipeline.WithInlineChains()) }},
		} {
			b.Run(fmt.Sprintf("%s/batch=%d", sub.name, batch), func(b *testing.B) {
				b.ReportAllocs()
				cpu0 := cpuclock.Process()
				sub.run(b.N)
				report(b, cpu0)
			})
		}
	}
	b.Run("baseline_prometheus_processbuilder", func(b *testing.B) {
		lb := labels.NewBuilder(labels.EmptyLabels())
		b.ReportAllocs()
		cpu0 := cpuclock.Process()
		for i := 0; i < b.N; i++ {
			e := tmpl[i%len(tmpl)]
			lb.Reset(e.Labels)
			if rules.ProcessBuilder(lb) {
				e.Labels = lb.Labels()
			}
		}
		report(b, cpu0)
	})
}

// BenchmarkPipelineOverhead is BenchmarkPipelineLogs at the default batch
// size with its runs paired: every iteration runs 500,000 entries through
// the plain loop, the hand-off, the pipeline and the pipeline with
// WithInlineChains in turn, so that all see the machine in the same state.
// It reports each one's CPU time of the whole process per entry, and the
// others' as ratios to the plain loop's.
//
//	go test -run '^$' -bench BenchmarkPipelineOverhead -benchtime 10x -count 3 ./pipeline
func BenchmarkPipelineOverhead(b *testing.B) {
	const n = 500_000
	tmpl := benchEntries(4096, 20)
	rules := relabel.MustNew(benchRules()...)
	batch := source.DefaultBatchSize
	var plain, handoff, pipe, inl time.Duration
	measure := func(run func()) time.Duration {
		c0 := cpuclock.Process()
		run()
		return cpuclock.Process() - c0
	}
	for b.Loop() {
		plain += measure(func() { runPlain(tmpl, rules, n, batch) })
		handoff += measure(func() { runHandoff(tmpl, rules, n, batch) })
		pipe += measure(func() { runPipeline(b, tmpl, n, batch) })
		inl += measure(func() { runPipeline(b, tmpl, n, batch, pipeline.WithInlineChains()) })
	}
	per := func(d time.Duration) float64 { return float64(d) / float64(b.N*n) }
	b.ReportMetric(per(plain), "plain-cpu-ns/entry")
	b.ReportMetric(per(handoff), "handoff-cpu-ns/entry")
	b.ReportMetric(per(pipe), "pipeline-cpu-ns/entry")
	b.ReportMetric(per(handoff)/per(plain), "handoff/plain")
	b.ReportMetric(per(pipe)/per(plain), "pipeline/plain")
	b.ReportMetric(per(inl), "inline-cpu-ns/entry")
	b.ReportMetric(per(inl)/per(plain), "inline/plain")
	b.ReportMetric(0, "ns/op")
}

// report reports entries per second of wall time and the CPU time of the
// whole process per entry since cpu0: where a run spreads over two cores
// its wall time can beat the plain loop's while it costs more CPU, so the
// overhead of the pipeline is read off cpu-ns/entry.
func report(b *testing.B, cpu0 time.Duration) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
	b.ReportMetric(float64(cpuclock.Process()-cpu0)/float64(b.N), "cpu-ns/entry")
}
