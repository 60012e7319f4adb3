package scrape

import (
	"sync"
	"testing"

	"github.com/ferrydev/ferry/internal/cpuclock"
)

// deep uses about depth KiB of stack, as a scrape's call chain does.
//
//go:noinline
func deep(depth int) byte {
	var frame [1000]byte
	frame[depth%len(frame)] = byte(depth)
	if depth > 0 {
		return deep(depth-1) + frame[(depth*7)%len(frame)]
	}
	return frame[0]
}

// BenchmarkScrapeGoroutines compares the two ways of running a job that
// takes about a scrape's stack (24 frames of 1000 bytes), one job at a
// time: a new goroutine for each, as scrapes ran before workers, whose
// stack grows by copies on every job; and workers, whose stack stays grown.
// It reports CPU microseconds a job, the hand-off and the wait included.
//
//	go test -run '^$' -bench ScrapeGoroutines -benchtime 100000x ./scrape
func BenchmarkScrapeGoroutines(b *testing.B) {
	const depth = 24
	for _, tc := range []struct {
		name string
		run  func(w *workers, f func())
	}{
		{"goroutine-each", func(_ *workers, f func()) { go f() }},
		{"workers", func(w *workers, f func()) { w.do(f) }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			w := newWorkers()
			defer w.stop()
			var wg sync.WaitGroup
			cpu0 := cpuclock.Process()
			for b.Loop() {
				wg.Add(1)
				tc.run(w, func() { deep(depth); wg.Done() })
				wg.Wait()
			}
			b.ReportMetric(float64((cpuclock.Process()-cpu0).Microseconds())/float64(b.N), "cpu-µs/job")
		})
	}
}
