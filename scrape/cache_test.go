package scrape

import (
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"
	"github.com/prometheus/prometheus/model/value"

	"github.com/ferrydev/ferry/relabel"
)

// TestCacheAgainstModel scrapes random pages, with series spelt in several
// ways, metric relabeling that makes some of them one series, duplicates
// and failed scrapes, and compares every scrape's output with a model that
// keeps no cache: the first spelling of each series with its value, then a
// staleness marker for each series the last successful scrape delivered and
// this one did not. Long runs make entries come, go (eviction) and come
// back.
func TestCacheAgainstModel(t *testing.T) {
	s := &Scraper{MetricRelabel: []relabel.Rule{relabel.LabelDrop("x")}}
	tg, _ := s.resolve(labels.FromStrings("__address__", "h:1"))
	l := newLoop(started(t, s), tg)
	r := rand.New(rand.NewPCG(7, 11))
	// A line: metric m<i>, labels y and (dropped by relabeling) x, in
	// either order.
	line := func(m, x, y int, swap bool, v float64) (text, key string) {
		lx, ly := fmt.Sprintf(`x="%d"`, x), fmt.Sprintf(`y="%d"`, y)
		if swap {
			lx, ly = ly, lx
		}
		return fmt.Sprintf("m%d{%s,%s} %g\n", m, lx, ly, v), fmt.Sprintf("m%d/%d", m, y)
	}
	var prev map[string]bool // delivered by the last successful scrape
	for iter := range 600 {
		var page strings.Builder
		want := map[string]float64{}
		fail := r.IntN(15) == 0
		// Phases: a few series only, then many, then few again, so that
		// entries are evicted and come back.
		width := 3
		if iter/100%2 == 1 {
			width = 12
		}
		for range r.IntN(2 * width) {
			text, key := line(r.IntN(width), r.IntN(3), r.IntN(2), r.IntN(2) == 0, float64(r.IntN(100)))
			page.WriteString(text)
			if _, ok := want[key]; !ok {
				var v float64
				fmt.Sscanf(text[strings.LastIndexByte(text[:len(text)-1], ' ')+1:], "%g", &v)
				want[key] = v
			}
		}
		if fail {
			page.WriteString("broken{\n")
		}
		items, _, err := l.scrapePage(nil, []byte(page.String()), textType, int64(1000+iter), nil)
		if (err != nil) != fail {
			t.Fatalf("scrape %d: err %v, want failure %v", iter, err, fail)
		}
		got := map[string]float64{}
		var stale []string
		for _, it := range items {
			key := it.Labels.Get("__name__") + "/" + it.Labels.Get("y")
			if math.Float64bits(it.V) == value.StaleNaN {
				stale = append(stale, key)
				continue
			}
			if _, dup := got[key]; dup {
				t.Fatalf("scrape %d: %s delivered twice", iter, key)
			}
			got[key] = it.V
		}
		if fail {
			want = map[string]float64{}
		}
		var wantStale []string
		for key := range prev {
			if _, ok := want[key]; !ok {
				wantStale = append(wantStale, key)
			}
		}
		slices.Sort(stale)
		slices.Sort(wantStale)
		if !maps2equal(got, want) || !slices.Equal(stale, wantStale) {
			t.Fatalf("scrape %d (fail=%v):\n%s\ngot %v stale %v\nwant %v stale %v", iter, fail, page.String(), got, stale, want, wantStale)
		}
		prev = map[string]bool{}
		for key := range want {
			prev[key] = true
		}
		if iter%100 == 99 && width == 3 && iter > 100 && l.index.n > 3*3*2*2 {
			t.Fatalf("scrape %d: %d entries after a narrow phase: nothing was evicted", iter, l.index.n)
		}
		if !l.aliased && iter > 10 {
			t.Fatalf("scrape %d: spellings of one series but the loop is not aliased", iter)
		}
	}
}

func maps2equal(a, b map[string]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// The cache costs 16 bytes a series besides its labels and index; a byte
// more would make it 24.
func TestCacheEntrySize(t *testing.T) {
	if n := unsafe.Sizeof(cacheEntry{}); n != 16 {
		t.Errorf("cacheEntry is %d bytes, want 16", n)
	}
}

// TestMerge holds newEntry's path without a labels.Builder to the
// builder's: for each series of a page, target labels that sort before,
// among and after the series' own, and both HonorLabels settings, the
// labels merge holds are those relabel holds, and merge declines exactly
// the series with a label named as a target label.
func TestMerge(t *testing.T) {
	page := `# TYPE h histogram
h_bucket{le="1"} 1
h_bucket{le="+Inf"} 1
m 1
m{} 1
m{a="1"} 1
m{a="1",} 1
m{A="x",zz="y"} 1
m{a="",b="2"} 1
m{job="other"} 1
m{job=""} 1
m{exported_job="e",job="j"} 1
m{instance="i",z="9"} 1
m{a="1",a="2"} 1
m{b="esc\"aped\\n"} 1
m{ b = "spaced" } 1
{"quoted.name",c="d"} 1
`
	for _, tc := range []struct {
		target labels.Labels
		merged int // the series without a target label's name
	}{
		{labels.FromStrings("__address__", "h:1"), 12},
		{labels.FromStrings("__address__", "h:1", "job", "node", "A", "first", "zzz", "last"), 11},
	} {
		for _, honor := range []bool{false, true} {
			s := started(t, &Scraper{HonorLabels: honor})
			tg, err := s.resolve(tc.target)
			if err != nil {
				t.Fatal(err)
			}
			fast, slow := newLoop(s, tg), newLoop(s, tg)
			p := textparse.NewPromParser([]byte(page), labels.NewSymbolTable(), false)
			merged := 0
			var typ model.MetricType
			for {
				e, err := p.Next()
				if err != nil {
					if !errors.Is(err, io.EOF) {
						t.Fatal(err)
					}
					break
				}
				if e == textparse.EntryType {
					_, typ = p.Type()
				}
				if e != textparse.EntrySeries {
					continue
				}
				met, _, _ := p.Series()
				p.Labels(&slow.scratch)
				want, err := slow.relabel(&cacheEntry{})
				if err != nil {
					t.Fatal(err)
				}
				clash := false
				slow.scratch.Range(func(x labels.Label) { clash = clash || tg.labels.Has(x.Name) })
				// The series' labels as newEntry gives them to merge.
				pairs, plain := plainLabels(nil, met, typ)
				if !plain {
					slow.scratch.Range(func(x labels.Label) { pairs = append(pairs, x) })
				}
				got, ok, err := fast.merge(&cacheEntry{}, pairs)
				if err != nil {
					t.Fatal(err)
				}
				if ok == clash {
					t.Errorf("%s, target %s: merge took it: %v", met, tg.labels, ok)
					continue
				}
				if !ok {
					continue
				}
				merged++
				if got.String() != want.String() || !labels.Equal(got, want) || got.Hash() != want.Hash() {
					t.Errorf("%s, target %s, HonorLabels %v: held %s, builder %s", met, tg.labels, honor, got, want)
				}
			}
			if merged != tc.merged {
				t.Errorf("target %s: merge took %d series, want %d", tg.labels, merged, tc.merged)
			}
		}
	}
}
