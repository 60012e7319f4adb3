package scrape

import (
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/internal/poll"
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
// same whichever order the loops' map gives; nothing reported while
// nothing changed.
func TestReportHealth(t *testing.T) {
	s := started(t, &Scraper{})
	loops := withLoops(t, s, 5)
	rep := &reptest.Reporter{}
	s.healthChanged.Store(true) // as Run starts
	s.reportHealth(rep)
	if h, err := rep.Health(); h != ferry.Healthy || err != nil {
		t.Fatalf("no target failing: %v %v", h, err)
	}
	for _, i := range []int{3, 0, 1} { // localhost:9103 sorts last of these
		loops[i].status.Health = ferry.Failing
		loops[i].status.LastError = fmt.Errorf("error of %s", loops[i].t.labels.Get("instance"))
	}
	loops[2].status.Health = ferry.Healthy
	s.reportHealth(rep)
	if got := len(rep.Healths()); got != 1 {
		t.Fatalf("%d reports with no change marked, want 1", got)
	}
	for range 20 { // map order varies between runs of the loop
		s.healthChanged.Store(true) // as a failed scrape marks it
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

// TestHealthFollowsScrapes: a running Scraper reports Healthy, Degraded
// once its target fails, and Healthy again once it recovers: the scrapes
// mark the changes that the report, once a second, looks for.
func TestHealthFollowsScrapes(t *testing.T) {
	p := &page{}
	p.set("a 1\n", textType)
	srv := httptest.NewServer(p)
	defer srv.Close()
	s := &Scraper{Job: "j", Interval: 20 * time.Millisecond}
	rep := &reptest.Reporter{}
	h := startWith(t, s, make(chan ferry.Batch[ferry.Sample], 16), rep)
	h.targets <- []labels.Labels{labels.FromStrings("__address__", addr(srv))}
	wait := func(want ferry.Health, msg string) {
		t.Helper()
		if !poll.Wait(10*time.Second, func() bool {
			h.drain() // a scrape sets its target's health before it sends
			got, err := rep.Health()
			return got == want && (msg == "" && err == nil || err != nil && strings.Contains(err.Error(), msg))
		}) {
			got, err := rep.Health()
			t.Fatalf("health %v %v, want %v %q", got, err, want, msg)
		}
	}
	if !poll.Wait(10*time.Second, func() bool { st := s.Targets(); return len(st) == 1 && st[0].Health == ferry.Healthy }) {
		t.Fatalf("targets %+v", s.Targets())
	}
	wait(ferry.Healthy, "")
	p.mu.Lock()
	p.status = 500
	p.mu.Unlock()
	wait(ferry.Degraded, "1 of 1 targets down, last error: "+ErrHTTPStatus.Error())
	p.mu.Lock()
	p.status = 0
	p.mu.Unlock()
	wait(ferry.Healthy, "")
}

// BenchmarkReportHealth is the Scraper's report of its health at 1000
// targets, none failing, once a target's health changed (with none
// changed it is an atomic swap): counted in place, against the way it was
// made before (Targets, which copies and sorts every status), in the same
// run. "cold" reports on 50 Scrapers in turn, so that each
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
			run(b, func(s *Scraper) {
				s.healthChanged.Store(true)
				s.reportHealth(rep)
			})
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
