package scrape

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"

	"github.com/ferrydev/ferry"
)

// sameAsTextparse scrapes pages in turn with two loops of one target, one
// skimming and one reading every line with textparse, each of a Scraper
// of its own made by mk, and fails on the first difference in samples,
// counts, errors or recorded metadata. It does so twice: with metadata
// recorded on the first scrape only, and on every scrape.
func sameAsTextparse(t *testing.T, mk func() *Scraper, pages ...[]byte) {
	t.Helper()
	for _, allMeta := range []bool{false, true} {
		var loops [2]*loop
		for i := range loops {
			s := started(t, mk())
			tg, err := s.resolve(labels.FromStrings("__address__", "h:1"))
			if err != nil {
				t.Fatal(err)
			}
			loops[i] = newLoop(s, tg)
			loops[i].allMeta = allMeta
		}
		skim, plain := loops[0], loops[1]
		plain.noSkim = true
		for n, page := range pages {
			// Each loop reads its own copy: textparse may append a newline.
			a, sa, ea := skim.scrapePage(nil, []byte(string(page)), textType, 1000, nil)
			b, sb, eb := plain.scrapePage(nil, []byte(string(page)), textType, 1000, nil)
			if (ea == nil) != (eb == nil) || ea != nil && ea.Error() != eb.Error() {
				t.Fatalf("scrape %d of %q: error %v, textparse alone %v", n+1, page, ea, eb)
			}
			if sa != sb {
				t.Fatalf("scrape %d of %q: stats %+v, textparse alone %+v", n+1, page, sa, sb)
			}
			if !sameSamples(a, b) {
				t.Fatalf("scrape %d of %q:\n%v\ntextparse alone:\n%v", n+1, page, a, b)
			}
			if ma, mb := skim.s.meta.m, plain.s.meta.m; !maps.Equal(ma, mb) {
				t.Fatalf("scrape %d of %q (metadata every scrape: %v): metadata %v, textparse alone %v", n+1, page, allMeta, ma, mb)
			}
		}
	}
}

func newScraper() *Scraper { return &Scraper{} }

func sameSamples(a, b []ferry.Sample) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !labels.Equal(a[i].Labels, b[i].Labels) || a[i].T != b[i].T || math.Float64bits(a[i].V) != math.Float64bits(b[i].V) {
			return false
		}
	}
	return true
}

// skimSeries caches every series the lines of TestSkimText use.
const skimSeries = "a 0\na{b=\"c\"} 0\na{b=\"c}\"} 0\na{b=\"c\\\"}\"} 0\na{b=\"c\",} 0\n"

// Lines at the edges of what skimText takes, each after a page that
// cached its series: the samples, counts and errors must be textparse's.
func TestSkimText(t *testing.T) {
	for _, line := range []string{
		"a 1\n", "a  1\n", "a\t1\n", "a 1 \n", "a 1\t\n", "a 1 123\n", "a 1 123 \n", "a 1 123 4\n",
		"a 1 -5\n", "a 1 12x\n", "a 1 99999999999999999999\n", "a 1x\n", "a 0x1p3\n", "a 0x10\n",
		"a 1_0\n", "a NaN\n", "a nan\n", "a +Inf\n", "a -inf\n", "a Infinity\n", "a 1e400\n", "a .5\n",
		"a 1{\n", "a 1 {\n", "a {b=\"c\"} 1\n", "a{b=\"c\"} 1\n", "a{b=\"c\"}1\n", "a{b=\"c\"} 1 7\n",
		"a{b=\"c}\"} 1\n", "a{b=\"c\\\"}\"} 1\n", "a{b=\"c\",} 1\n", "a{b=\"x\ny\"} 1\n", "a{b=\"c\"}\n",
		"a\n", "a 1", "a 1\r\n", " a 1\n", "a 1\na 2\n", "a 1\n\n\na 2\n",
		"# HELP a x\na 1\n", "# HELP a\na 1\n", "# HELP a \na 1\n", "# HELP a  \na 1\n", "# HELP \na 1\n",
		"# HELP a  x\na 1\n", "# HELP a\tx\na 1\n", "# HELP a \xff\na 1\n", "# HELP \"a\" x\na 1\n",
		"# TYPE a counter\na 1\n", "# TYPE a  counter\na 1\n", "# TYPE a counter \na 1\n", "# TYPE a foo\na 1\n",
		"# TYPE a\na 1\n", "#\na 1\n", "# \na 1\n", "#x\na 1\n", "# HELPx\na 1\n", "# HELP\na 1\n",
		"#\tHELP a b\na 1\n", "#  TYPE a gauge\na 1\n", "# some comment\na 1\n", "# TYPE 1a gauge\na 1\n",
		"b 1\na 1\n", "a 1\nb 1\n",
		// Metadata as textparse records it: escapes in help, untyped.
		"# HELP a x\\ny\na 1\n", "# HELP a x\\\\y\na 1\n", "# HELP a x\\\"y\na 1\n", "# HELP a x\\\n",
		"# TYPE a untyped\na 1\n", "# TYPE a gauge\n# HELP a x\n# TYPE a counter\n# HELP a y\na 1\n",
		// A TYPE line decides how the labels of the series after it read.
		"# TYPE a summary\na{quantile=\"0\"} 1\n", "# TYPE a summary\na 1\n# HELP a x\n\na{quantile=\"1\"} 2\n",
		"# TYPE a histogram\na 1\n# TYPEx\na{le=\"1\"} 2\n", "# TYPE a summary\n# TYPE b gauge\na 1\na{quantile=\"0\"} 1\n",
		// New series, made by the skim when plain.
		"a{d=\"e\", b=\"c\"} 1\n", "a{ d = \"e\" ,\tb=\"c\" , } 1\n", "a{ } 1\n", "a{d=\"e\" } 1\n", "a{d=\"e\" ,} 1\n",
		"a{d=\"e\"} 1\n", "a{d=\"e\",b=\"c\"} 1\n", "a{d=\"\xff\"} 1\n", "a{d=\"\xc3\xa9\"} 1\n", "n{d=\"e\"}} 1\n",
		"a{d=\"e\"b=\"c\"} 1\n", "a{d=\"e\",d=\"f\"} 1\n", "a{d=\"e\"} 1\na{d=\"e\"} 2\n", "a{d=\"\"} 1\na 2\n",
		"# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"1.0\"} 2\nh_bucket{le=\"+Inf\"} 3\nh_bucket{le=\"x\"} 4\n",
		"# TYPE h summary\nh{quantile=\"1\"} 1\n# TYPE h gauge\nh{quantile=\"2\"} 1\nh{le=\"3\"} 1\n",
	} {
		sameAsTextparse(t, newScraper, []byte(skimSeries), []byte(line), []byte(skimSeries+line))
	}
}

// The real node_exporter page, steady and then changing: a new series in
// the middle hands the rest of the page to textparse; explicit timestamps,
// limits and IgnoreTimestamps act alike on both paths.
func TestSkimTextNodeExporter(t *testing.T) {
	page, err := os.ReadFile("testdata/node_exporter.txt")
	if err != nil {
		t.Fatal(err)
	}
	changed := strings.Replace(string(page), "node_load1 ", "node_load1{new=\"1\"} ", 1)
	stamped := strings.ReplaceAll(string(page), "\nnode_load5 0.5\n", "\nnode_load5 0.5 1700000000000\n")
	for _, mk := range []func() *Scraper{
		newScraper,
		func() *Scraper { return &Scraper{SampleLimit: 900} },
		func() *Scraper { return &Scraper{IgnoreTimestamps: true} },
		func() *Scraper { return &Scraper{HonorLabels: true} },
	} {
		sameAsTextparse(t, mk, page, page, []byte(changed), []byte(stamped), page, []byte(changed))
	}

	// The first page, which makes every entry, and then the steady page
	// are skimmed to their end.
	s := &Scraper{}
	tg, _ := s.resolve(labels.FromStrings("__address__", "h:1"))
	l := newLoop(started(t, s), tg)
	for i := range 2 {
		l.nextIter()
		var st stats
		items, rest, err := l.skimText(nil, page, int64(1000*i), &st)
		if err != nil || rest != nil || len(items) != st.post || st.post < 500 {
			t.Errorf("scrape %d: skimmed with %v left, %d samples (%+v), err %v", i+1, rest, len(items), st, err)
		}
		if made := len(l.entries); made != st.post {
			t.Errorf("scrape %d: %d entries, want %d", i+1, made, st.post)
		}
		l.commit(items, int64(1000*i), true)
	}
}

// Pages recorded from real peers (testdata/pages: Prometheus 3 built from
// v0.316.0 and etcd 3.4.23 in the text format 0.0.4, VictoriaLogs v1.52.1,
// whose labels have a blank after each comma): read as textparse reads
// them, and each first page skimmed to its end.
func TestSkimRealPages(t *testing.T) {
	files, err := filepath.Glob("testdata/pages/*.txt.gz")
	if err != nil || len(files) < 3 {
		t.Fatalf("pages %v, %v", files, err)
	}
	for _, file := range files {
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		page, err := io.ReadAll(zr)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		sameAsTextparse(t, newScraper, page, page)
		s := &Scraper{}
		tg, _ := s.resolve(labels.FromStrings("__address__", "h:1"))
		l := newLoop(started(t, s), tg)
		l.nextIter()
		var st stats
		items, rest, err := l.skimText(nil, page, 1000, &st)
		if err != nil || rest != nil || len(items) != st.post || st.post < 400 {
			t.Errorf("%s: first page skimmed with %v left, %d samples (%+v), err %v", file, rest, len(items), st, err)
		}
	}
}

func FuzzSkimText(f *testing.F) {
	page, _ := os.ReadFile("testdata/node_exporter.txt")
	f.Add(page[:3000], page[:3000])
	f.Add([]byte(skimSeries), []byte("a 1 5\na{b=\"c\"} 2\n# HELP a b\n"))
	f.Add([]byte("a{b=\"x\ny\"} 1\n"), []byte("a{b=\"x\ny\"} 2\n"))
	// A '}' in a label value, after the value, and after a series without labels.
	f.Add([]byte("a{b=\"}\"} 1\nc 2\n"), []byte("a{b=\"}\"} 2\na{b=\"}\"} 3 }\nc} 4\nc 5 6}\n"))
	// Metadata: escapes in help, a type textparse renames, a change.
	f.Add([]byte("# HELP a x\\\\y\n# TYPE a untyped\na 1\n"), []byte("# HELP a x\\ny\n# TYPE a gauge\na 2\n"))
	f.Fuzz(func(t *testing.T, first, second []byte) {
		sameAsTextparse(t, newScraper, first, second, first, second)
	})
}

// A loop reads each page in the format its Content-Type names, also when a
// target changes format between scrapes: the loop remembers the text format
// of the last text page's Content-Type only (see parser).
func TestParserFollowsContentType(t *testing.T) {
	s := started(t, newScraper())
	tg, err := s.resolve(labels.FromStrings("__address__", "h:1"))
	if err != nil {
		t.Fatal(err)
	}
	l := newLoop(s, tg)
	const openMetrics = "application/openmetrics-text; version=1.0.0; charset=utf-8"
	for i, step := range []struct {
		page, ctype string
		want        float64 // the value of a, or -1 for ErrContentType
	}{
		{"a 1\n", textType, 1},
		{"a 2\n", textType, 2},
		// A timestamp in seconds with a fraction: OpenMetrics only.
		{"a 3 1700000000.5\n# EOF\n", openMetrics, 3},
		{"a 4 1700000001.5\n# EOF\n", openMetrics, 4},
		{"a 4\n", textType, 4},
		{"a 5\n", "application/json", -1},
		{"a 6\n", "application/json", -1},
		{"a 7\n", textType, 7},
		{"a 8\n", "", -1}, // no Content-Type and no fallback
		{"a 9 \n", textType, 9},
	} {
		items, _, err := l.scrapePage(nil, []byte(step.page), step.ctype, int64(1000+i), nil)
		if step.want < 0 {
			if !errors.Is(err, ErrContentType) {
				t.Fatalf("page %d (%q): err %v, want ErrContentType", i, step.ctype, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("page %d (%q): %v", i, step.ctype, err)
		}
		got := -1.0
		for _, it := range items {
			if it.Labels.Get("__name__") == "a" {
				got = it.V
			}
		}
		if got != step.want {
			t.Fatalf("page %d (%q): a = %v, want %v", i, step.ctype, got, step.want)
		}
	}
}

// decimal reads the values of a node_exporter page itself, and leaves the
// rest to strconv.ParseFloat.
func TestDecimal(t *testing.T) {
	for _, s := range []string{"0", "-0", "1", "+1", "0.5", ".5", "1.", "1.2345e+06", "6.0e-05", "-3",
		"123456789012345", "9007199254740992", "1e22", "1e-22", "4.5E3", "0e999"} {
		v, ok := decimal([]byte(s))
		want, err := strconv.ParseFloat(s, 64)
		if !ok || err != nil || math.Float64bits(v) != math.Float64bits(want) {
			t.Errorf("decimal(%q) = %v, %v; ParseFloat says %v, %v", s, v, ok, want, err)
		}
	}
	for _, s := range []string{"", "+", ".", "-.", "NaN", "+Inf", "1e", "1e+", "1_0", "0x1p3", "1.2.3", "1e23",
		"9007199254740993", "12345678901234567890", "1e1000", "5e-324",
		"292101605031592.346"} { // more than 2^53 and a fraction: float64(m)/1e3 rounds twice
		if v, ok := decimal([]byte(s)); ok {
			t.Errorf("decimal(%q) = %v, want it left to ParseFloat", s, v)
		}
	}
	page, err := os.ReadFile("testdata/node_exporter.txt")
	if err != nil {
		t.Fatal(err)
	}
	fast, all := 0, 0
	for line := range strings.Lines(string(page)) {
		if line[0] == '#' {
			continue
		}
		f := strings.Fields(line)
		all++
		if _, ok := decimal([]byte(f[len(f)-1])); ok {
			fast++
		}
	}
	if fast < all*9/10 {
		t.Errorf("decimal read %d of the page's %d values, want nine in ten or more", fast, all)
	}
}

// FuzzDecimal: whatever decimal reads, strconv.ParseFloat reads the same,
// to the bit.
func FuzzDecimal(f *testing.F) {
	for _, s := range []string{"1.2345e+06", "-0", "0.1", "9007199254740992", "1e-22", "123.456", "7E+2", "292101605031592.346"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, ok := decimal([]byte(s))
		if !ok {
			return
		}
		want, err := strconv.ParseFloat(s, 64)
		if err != nil || math.Float64bits(v) != math.Float64bits(want) {
			t.Fatalf("decimal(%q) = %v (%#x); ParseFloat says %v (%#x), %v", s, v, math.Float64bits(v), want, math.Float64bits(want), err)
		}
	})
}

// plainAgainstParser checks plainLabels on every series of page that
// textparse accepts, given the type of the TYPE line before it: where it
// takes a series, its labels must be the parser's. It returns how many
// series it took of how many.
func plainAgainstParser(t *testing.T, page []byte) (took, series int) {
	t.Helper()
	p := textparse.NewPromParser(page, labels.NewSymbolTable(), false)
	var want labels.Labels
	var typ model.MetricType
	for {
		e, err := p.Next()
		if err != nil {
			return took, series
		}
		if e == textparse.EntryType {
			_, typ = p.Type()
		}
		if e != textparse.EntrySeries {
			continue
		}
		series++
		met, _, _ := p.Series()
		got, ok := plainLabels(nil, met, typ)
		if !ok {
			continue
		}
		took++
		p.Labels(&want)
		if ls := labelsOf(got); !labels.Equal(ls, want) || ls.String() != want.String() {
			t.Fatalf("%q (type %q): plainLabels %s, parser %s", met, typ, ls, want)
		}
	}
}

func labelsOf(pairs []labels.Label) labels.Labels {
	sb := labels.NewScratchBuilder(len(pairs))
	for _, x := range pairs {
		sb.Add(x.Name, x.Value)
	}
	return sb.Labels()
}

// typeLines are TYPE lines of each type plainLabels is given.
var typeLines = map[model.MetricType]string{
	"":                        "",
	model.MetricTypeCounter:   "# TYPE x counter\n",
	model.MetricTypeGauge:     "# TYPE x gauge\n",
	model.MetricTypeHistogram: "# TYPE x histogram\n",
	model.MetricTypeSummary:   "# TYPE x summary\n",
	model.MetricTypeUnknown:   "# TYPE x untyped\n",
}

// plainIsParsed fails if plainLabels takes met, the bytes of a line up to
// its value as skimText finds them, after a TYPE line of type typ, and
// textparse does not read the line met+" 1" after that TYPE line as the
// series met with the same labels: the skim makes entries of series
// textparse never saw.
func plainIsParsed(t *testing.T, met []byte, typ model.MetricType) bool {
	t.Helper()
	got, ok := plainLabels(nil, met, typ)
	if !ok {
		return false
	}
	page := typeLines[typ] + string(met) + " 1\n"
	p := textparse.NewPromParser([]byte(page), labels.NewSymbolTable(), false)
	e, err := p.Next()
	if typeLines[typ] != "" && err == nil {
		e, err = p.Next()
	}
	if err != nil || e != textparse.EntrySeries {
		t.Fatalf("%q taken, but textparse reads %q as %v, %v", met, page, e, err)
	}
	series, _, _ := p.Series()
	var want labels.Labels
	p.Labels(&want)
	if ls := labelsOf(got); string(series) != string(met) || !labels.Equal(ls, want) || ls.String() != want.String() {
		t.Fatalf("%q (type %q): plainLabels %s, textparse %q with %s", met, typ, ls, series, want)
	}
	return true
}

// TestPlainLabels: the plain form is taken, every other form left to the
// parser, and a node_exporter page is all plain.
func TestPlainLabels(t *testing.T) {
	for _, tc := range []struct {
		met  string
		typ  model.MetricType
		took bool
	}{
		{"m", "", true},
		{"m{}", "", true},
		{`m{b="2",a="1",c=""}`, "", true},
		{`m{a="1",}`, "", true},
		{`m{a="x}y,z=\"w"}`, "", false},
		{`m{a="1",a="2"}`, "", false},
		{`m{__name__="x"}`, "", false},
		{`m{ a="1" }`, "", true},
		{`m{a="1" }`, "", true},
		{"m{a=\"1\", b=\"2\"}", "", true},
		{"m{\ta = \"1\" ,b=\"2\", }", "", true},
		{`m{ }`, "", true},
		{`m {a="1"}`, "", false},
		{`m{a="1" b="2"}`, "", false},
		{`{"m.x",a="1"}`, "", false},
		{`m{"a.b"="1"}`, "", false},
		{"m:x{a=\"é\"}", "", true},
		// le and quantile, rewritten by the type.
		{`m{quantile="0"}`, model.MetricTypeSummary, true},
		{`m{quantile="0.5"}`, model.MetricTypeSummary, true},
		{`m{quantile="x"}`, model.MetricTypeSummary, true},
		{`m_bucket{le="1"}`, model.MetricTypeHistogram, true},
		{`m_bucket{le="+Inf"}`, model.MetricTypeHistogram, true},
		{`m_bucket{le="1e3"}`, model.MetricTypeHistogram, true},
		{`m_bucket{le="1"}`, model.MetricTypeSummary, true},
		{`m{quantile="0"}`, model.MetricTypeHistogram, true},
		{`m{quantile="0"}`, "", true},
		{`m{quantile="0"}`, typeNotKnown, false},
		{`m_bucket{le="1"}`, typeNotKnown, false},
		{`m_bucket{a="1"}`, typeNotKnown, true},
	} {
		if tc.typ != typeNotKnown {
			took, series := plainAgainstParser(t, []byte(typeLines[tc.typ]+tc.met+" 1\n"))
			if series != 1 {
				t.Fatalf("%s: the parser read %d series", tc.met, series)
			}
			if (took == 1) != tc.took {
				t.Errorf("%s (type %q): taken %v, want %v", tc.met, tc.typ, took == 1, tc.took)
			}
		}
		if got := plainIsParsed(t, []byte(tc.met), tc.typ); got != tc.took {
			t.Errorf("%s (type %q): taken from the bytes %v, want %v", tc.met, tc.typ, got, tc.took)
		}
	}
	// Bytes textparse refuses, and labels without a comma between them,
	// which it takes.
	for _, met := range []string{
		"m{a=\"\xff\"}", "m{a=\"\xc3\"}", "m{a=\"x\"", "m{a=x}", "m{a}", "m{=\"x\"}", "m{1a=\"x\"}",
		"m{a:b=\"x\"}", "m{a=\"x\",,}", "m{,}", "1m", "m-x", "m{a=\"x\"}}", "m{a=\"x\"b=\"y\"}",
		"m{a=\"1\" ,, b=\"2\"}", "m{ , }", "m{a=\"1\" , ,}",
	} {
		if _, ok := plainLabels(nil, []byte(met), ""); ok {
			t.Errorf("%q: taken", met)
		}
	}
	page, err := os.ReadFile("testdata/node_exporter.txt")
	if err != nil {
		t.Fatal(err)
	}
	if took, series := plainAgainstParser(t, page); took != series {
		t.Errorf("node_exporter page: %d of %d series taken", took, series)
	}
}

// FuzzPlainLabels holds plainLabels to textparse: its labels on whatever
// textparse accepts, and on any line's bytes after a TYPE line of any type,
// textparse's acceptance and labels wherever plainLabels takes them.
func FuzzPlainLabels(f *testing.F) {
	page, _ := os.ReadFile("testdata/node_exporter.txt")
	f.Add(page[:2000], uint8(0))
	f.Add([]byte("m{b=\"2\",a=\"1\",c=\"\"} 1\nm{a=\"1\",} 2\n"), uint8(1))
	f.Add([]byte("m{a=\"x}y\"} 1\nm_bucket{le=\"1\"} 1\n"), uint8(3))
	f.Add([]byte("m{quantile=\"1\"}\nm{quantile=\"0x1p3\"}\n"), uint8(4))
	f.Add([]byte("m{a=\"\xc3\xa9\"}\nm{a=\"\xff\"}\nm{a=\"x\",,}\n"), uint8(5))
	f.Add([]byte("m{a=\"1\", b=\"2\" , }\nm{ a = \"1\"\t}\nm{ , }\n"), uint8(2))
	types := []model.MetricType{"", model.MetricTypeCounter, model.MetricTypeGauge, model.MetricTypeHistogram,
		model.MetricTypeSummary, model.MetricTypeUnknown}
	f.Fuzz(func(t *testing.T, page []byte, typ uint8) {
		plainAgainstParser(t, page)
		for met := range bytes.SplitSeq(page, []byte("\n")) {
			plainIsParsed(t, met, types[int(typ)%len(types)])
		}
	})
}
