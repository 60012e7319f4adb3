package scrape

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/ferrydev/ferry/relabel"
)

// canonical re-encodes ls with Prometheus's own builder.
func canonical(ls labels.Labels) labels.Labels {
	sb := labels.NewScratchBuilder(8)
	ls.Range(func(l labels.Label) { sb.Add(l.Name, l.Value) })
	return sb.Labels()
}

// TestHeldLabels checks the final labels of held series through the parsed
// and the skimmed path, and that the labels of samples already delivered
// stay as they were while the cache evicts, compacts and refills.
func TestHeldLabels(t *testing.T) {
	type want struct {
		series string
		labels labels.Labels
	}
	for _, tc := range []struct {
		name string
		s    *Scraper
		want []want
	}{
		{"default", &Scraper{Job: "j"}, []want{
			{`a{x="1"}`, labels.FromStrings("__name__", "a", "instance", "h:1", "job", "j", "x", "1")},
			{`d{l="` + strings.Repeat("l", 100) + `"}`, labels.FromStrings("__name__", "d", "instance", "h:1", "job", "j", "l", strings.Repeat("l", 100))},
			{`b`, labels.FromStrings("__name__", "b", "instance", "h:1", "job", "j")},
			{`c{instance="p",z="2"}`, labels.FromStrings("__name__", "c", "exported_instance", "p", "instance", "h:1", "job", "j", "z", "2")},
			// 64 KiB of labels and more: the length is held with them.
			{`e{l="` + strings.Repeat("e", 70000) + `"}`, labels.FromStrings("__name__", "e", "instance", "h:1", "job", "j", "l", strings.Repeat("e", 70000))},
		}},
		{"honor_labels", &Scraper{Job: "j", HonorLabels: true}, []want{
			{`a{x="1"}`, labels.FromStrings("__name__", "a", "instance", "h:1", "job", "j", "x", "1")},
			{`d{l="` + strings.Repeat("l", 100) + `"}`, labels.FromStrings("__name__", "d", "instance", "h:1", "job", "j", "l", strings.Repeat("l", 100))},
			{`c{instance="p",z="2"}`, labels.FromStrings("__name__", "c", "instance", "p", "job", "j", "z", "2")},
		}},
		{"relabeled", &Scraper{Job: "j", MetricRelabel: []relabel.Rule{relabel.Replace([]string{"__name__"}, "b", "job", "k")}}, []want{
			{`a{x="1"}`, labels.FromStrings("__name__", "a", "instance", "h:1", "job", "j", "x", "1")},
			{`d{l="` + strings.Repeat("l", 100) + `"}`, labels.FromStrings("__name__", "d", "instance", "h:1", "job", "j", "l", strings.Repeat("l", 100))},
			{`b`, labels.FromStrings("__name__", "b", "instance", "h:1", "job", "k")},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tg, err := tc.s.resolve(labels.FromStrings("__address__", "h:1"))
			if err != nil {
				t.Fatal(err)
			}
			l := newLoop(started(t, tc.s), tg)
			type kept struct {
				ls   labels.Labels
				text string
			}
			var all []kept
			check := func(iter int, page string, expect []want) {
				items, _, err := l.scrapePage(nil, []byte(page), textType, int64(iter), nil)
				if err != nil {
					t.Fatal(err)
				}
				got := map[string]labels.Labels{}
				for _, it := range items {
					got[it.Labels.Get("__name__")] = it.Labels
					all = append(all, kept{it.Labels, it.Labels.String()})
				}
				for _, w := range expect {
					name := w.labels.Get("__name__")
					if g := got[name]; !labels.Equal(g, w.labels) || !labels.Equal(canonical(g), w.labels) {
						t.Fatalf("scrape %d: %s: got %s, want %s", iter, w.series, g, w.labels)
					}
				}
			}
			var full strings.Builder
			for i, w := range tc.want {
				fmt.Fprintf(&full, "%s %d\n", w.series, i)
			}
			for iter := range 3 * cacheEvictAfter {
				check(iter, full.String(), tc.want)
			}
			// Only the first series for a while: the others are evicted and
			// held compacted; then all come back.
			heldBefore := &l.held[0]
			for iter := 3 * cacheEvictAfter; iter < 5*cacheEvictAfter; iter++ {
				check(iter, tc.want[0].series+" 7\n", tc.want[:1])
			}
			if l.index.n != 1 || &l.held[0] == heldBefore {
				t.Fatalf("after eviction: %d entries, held compacted: %v", l.index.n, &l.held[0] != heldBefore)
			}
			check(5*cacheEvictAfter, full.String(), tc.want)
			for _, k := range all {
				if k.ls.String() != k.text {
					t.Fatalf("labels delivered as %s are now %s", k.text, k.ls)
				}
			}
		})
	}
}

// A page that gains a series each scrape grows held as append grows it:
// held is not compacted after each such scrape (and grown again at the
// next), only after the first page and when evicted series leave it.
func TestHeldGrowsByAppend(t *testing.T) {
	page, err := os.ReadFile("testdata/node_exporter.txt")
	if err != nil {
		t.Fatal(err)
	}
	s := &Scraper{}
	tg, _ := s.resolve(labels.FromStrings("__address__", "h:1"))
	l := newLoop(started(t, s), tg)
	moves := 0
	for i := range 2 * cacheEvictAfter {
		var before *byte
		if len(l.held) > 0 {
			before = &l.held[0]
		}
		churned := fmt.Appendf(nil, "%snew{pod=\"p-%d\"} 1\n", page, i)
		if _, _, err := l.scrapePage(nil, churned, textType, int64(1000*i), nil); err != nil {
			t.Fatal(err)
		}
		if before != nil && &l.held[0] != before {
			moves++
		}
	}
	// Append grows held by a quarter at a time, room for more than twenty
	// series of some 100 bytes; eviction has little to compact.
	if moves > 2 {
		t.Errorf("held moved %d times in %d scrapes", moves, 2*cacheEvictAfter-1)
	}
}
