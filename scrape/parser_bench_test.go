package scrape

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"

	"github.com/ferrydev/ferry"
)

// The benchmarks below parse the same real node_exporter page
// (testdata/node_exporter.txt) in the same run: the Scraper's path (parse,
// attach target labels, dedupe, staleness bookkeeping, build samples)
// against the two raw parsers it could be built on.

func loadPage(b *testing.B) []byte {
	page, err := os.ReadFile("testdata/node_exporter.txt")
	if err != nil {
		b.Fatal(err)
	}
	return page
}

// perSample runs the benchmark loop and reports samples/s, and allocations
// and bytes per sample. body returns the number of samples of one pass.
func perSample(b *testing.B, page []byte, body func() int) {
	b.SetBytes(int64(len(page)))
	b.ReportAllocs()
	body() // warm up caches, as a scrape loop's second scrape would be
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	n := 0
	for b.Loop() {
		n = body()
	}
	runtime.ReadMemStats(&after)
	total := float64(n) * float64(b.N)
	b.ReportMetric(total/b.Elapsed().Seconds(), "samples/s")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/total, "allocs/sample")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/total, "B/sample")
}

// BenchmarkScrapeParse is the Scraper's parse path in steady state.
func BenchmarkScrapeParse(b *testing.B) { benchScrapeTargets(b, 1) }

// BenchmarkScrapeParseTargets is BenchmarkScrapeParse over many targets
// of the page, scraped in turn, so that each target's cache is out of the
// CPU's caches when its turn comes, as at 1000 targets.
func BenchmarkScrapeParseTargets(b *testing.B) { benchScrapeTargets(b, 500) }

// benchScrapeTargets scrapes n targets of the page in turn, each after a
// first scrape that made its cache.
func benchScrapeTargets(b *testing.B, n int) {
	page := loadPage(b)
	s := started(b, &Scraper{})
	loops := make([]*loop, n)
	for i := range loops {
		tg, _ := s.resolve(labels.FromStrings("__address__", fmt.Sprintf("localhost:%d", 9100+i), "job", "node"))
		loops[i] = newLoop(s, tg)
		if _, _, err := loops[i].scrapePage(nil, page, textType, 1000, nil); err != nil {
			b.Fatal(err)
		}
	}
	items := make([]ferry.Sample, 0, 2048)
	next := 0
	perSample(b, page, func() int {
		l := loops[next]
		next = (next + 1) % n
		var st stats
		var err error
		items, st, err = l.scrapePage(items[:0], page, textType, 2000, nil)
		if err != nil {
			b.Fatal(err)
		}
		return st.scraped
	})
}

// BenchmarkScrapeNewSeries is a target whose page gains a series each
// scrape and loses the last one (a pod's, say, on an exporter of a busy
// cluster): the node_exporter page with one series of a new label value
// halfway. BenchmarkScrapeParse, the steady page, is its baseline.
func BenchmarkScrapeNewSeries(b *testing.B) {
	page := loadPage(b)
	half := bytes.Index(page, []byte("\nnode_load1 ")) + 1
	// More pages than scrapes a series is cached after its last one
	// (cacheEvictAfter): each page's series is new when it comes again.
	pages := make([][]byte, 4*cacheEvictAfter)
	for i := range pages {
		pages[i] = fmt.Appendf(nil, "%sferry_churn{pod=\"p-%d\"} 1\n%s", page[:half], i, page[half:])
	}
	s := &Scraper{}
	tg, _ := s.resolve(labels.FromStrings("__address__", "localhost:9100", "job", "node"))
	l := newLoop(started(b, s), tg)
	items := make([]ferry.Sample, 0, 2048)
	n := 0
	perSample(b, page, func() int {
		n++
		var st stats
		var err error
		items, st, err = l.scrapePage(items[:0], pages[n%len(pages)], textType, int64(1000*n), nil)
		if err != nil {
			b.Fatal(err)
		}
		return st.scraped
	})
}

// BenchmarkScrapeFirstPage is a target's first scrape: every series of the
// page is new to a fresh loop, so each is read (by the skim where it is
// plain), labelled, held and indexed (newEntry). BenchmarkRawParserTextparse,
// which materialises the same labels and nothing else, is its baseline.
func BenchmarkScrapeFirstPage(b *testing.B) {
	page := loadPage(b)
	s := started(b, &Scraper{})
	tg, _ := s.resolve(labels.FromStrings("__address__", "localhost:9100", "job", "node"))
	perSample(b, page, func() int {
		l := newLoop(s, tg)
		items, st, err := l.scrapePage(nil, page, textType, 1000, nil)
		if err != nil {
			b.Fatal(err)
		}
		if len(items) != st.scraped {
			b.Fatalf("%d samples of %d series", len(items), st.scraped)
		}
		return st.scraped
	})
}

// BenchmarkRawParserTextparse is the baseline of Prometheus's textparse
// alone: every series with its value and labels materialised.
func BenchmarkRawParserTextparse(b *testing.B) {
	page := loadPage(b)
	var ls labels.Labels
	st := labels.NewSymbolTable()
	perSample(b, page, func() int {
		p := textparse.NewPromParser(page, st, false)
		n := 0
		for {
			e, err := p.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			if e == textparse.EntrySeries {
				p.Series()
				p.Labels(&ls)
				n++
			}
		}
		return n
	})
}

// BenchmarkRawParserExpfmt is the baseline of expfmt's text parser alone:
// the page decoded into MetricFamily values and flattened to samples.
func BenchmarkRawParserExpfmt(b *testing.B) {
	page := loadPage(b)
	perSample(b, page, func() int {
		p := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := p.TextToMetricFamilies(bytes.NewReader(page))
		if err != nil {
			b.Fatal(err)
		}
		vec, err := expfmt.ExtractSamples(&expfmt.DecodeOptions{Timestamp: 1}, mapValues(fams)...)
		if err != nil {
			b.Fatal(err)
		}
		return len(vec)
	})
}
