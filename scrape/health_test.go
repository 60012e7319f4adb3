package scrape

import (
	"errors"
	"fmt"
	"testing"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/internal/reptest"
)

// withLoops gives s n loops of targets localhost:9100 and up, as sync
// makes them, without running them.
func withLoops(tb testing.TB, s *Scraper, n int) []*loop {
	tb.Helper()
	s.loops = map[string]*loop{}
	var out []*loop
	for i := range n {
		tg, err := s.resolve(labels.FromStrings("__address__", fmt.Sprintf("localhost:%d", 9100+i)))
		if err != nil {
			tb.Fatal(err)
		}
		l := newLoop(s, tg)
		s.loops[tg.key] = l
		out = append(out, l)
	}
	return out
}

// TestReportHealth: Healthy while no target fails; Degraded with the
// count and the error of the failing target whose labels sort last, the
// same whichever order the loops' map gives.
func TestReportHealth(t *testing.T) {
	s := started(t, &Scraper{})
	loops := withLoops(t, s, 5)
	rep := &reptest.Reporter{}
	s.reportHealth(rep)
	if h, err := rep.Health(); h != ferry.Healthy || err != nil {
		t.Fatalf("no target failing: %v %v", h, err)
	}
	for _, i := range []int{3, 0, 1} { // localhost:9103 sorts last of these
		loops[i].status.Health = ferry.Failing
		loops[i].status.LastError = fmt.Errorf("error of %s", loops[i].t.labels.Get("instance"))
	}
	loops[2].status.Health = ferry.Healthy
	for range 20 { // map order varies between runs of the loop
		s.reportHealth(rep)
		h, err := rep.Health()
		if h != ferry.Degraded {
			t.Fatalf("health %v, want Degraded", h)
		}
		if want := "3 of 5 targets down, last error: error of localhost:9103"; err == nil || err.Error() != want {
			t.Fatalf("error %v, want %q", err, want)
		}
		if !errors.Is(err, loops[3].status.LastError) {
			t.Fatalf("%v does not wrap the target's error", err)
		}
	}
}

// BenchmarkReportHealth is the Scraper's report of its health, made every
// second, at 1000 targets with none failing: counted in place, against the
// way it was made before (Targets, which copies and sorts every status),
// in the same run. "cold" reports on 50 Scrapers in turn, so that each
// one's loops are out of the CPU's caches when its turn comes, as they are
// a second after the last report in an agent.
func BenchmarkReportHealth(b *testing.B) {
	for _, c := range []struct {
		name     string
		scrapers int
	}{{"hot", 1}, {"cold", 50}} {
		scrapers := make([]*Scraper, c.scrapers)
		for i := range scrapers {
			scrapers[i] = started(b, &Scraper{})
			withLoops(b, scrapers[i], 1000)
		}
		rep := ferry.NopReporter()
		run := func(b *testing.B, report func(*Scraper)) {
			b.ReportAllocs()
			next := 0
			for b.Loop() {
				report(scrapers[next])
				next = (next + 1) % len(scrapers)
			}
			b.ReportMetric(float64(b.N)*1000/b.Elapsed().Seconds(), "targets/s")
		}
		b.Run(c.name+"/in-place", func(b *testing.B) {
			run(b, func(s *Scraper) { s.reportHealth(rep) })
		})
		b.Run(c.name+"/baseline-Targets", func(b *testing.B) {
			run(b, func(s *Scraper) {
				down := 0
				for _, st := range s.Targets() {
					if st.Health == ferry.Failing {
						down++
					}
				}
				if down != 0 {
					b.Fatal(down)
				}
			})
		})
	}
}
