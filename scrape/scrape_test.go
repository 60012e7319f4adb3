package scrape

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/httpconf"
	"github.com/ferrydev/ferry/internal/authtest"
	"github.com/ferrydev/ferry/relabel"
)

// page is a target whose exposition can be changed between scrapes.
type page struct {
	mu       sync.Mutex
	body     []byte
	ctype    string
	status   int
	gzip     bool
	requests []*http.Request
}

func (p *page) set(body, ctype string) {
	p.mu.Lock()
	p.body, p.ctype = []byte(body), ctype
	p.mu.Unlock()
}

func (p *page) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	body, ctype, status, gz := p.body, p.ctype, p.status, p.gzip
	p.requests = append(p.requests, r.Clone(context.Background()))
	p.mu.Unlock()
	if ctype != "" {
		w.Header().Set("Content-Type", ctype)
	} else {
		w.Header()["Content-Type"] = nil // no sniffing: send none
	}
	if status != 0 {
		w.WriteHeader(status)
		return
	}
	if gz && strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
		w.Header().Set("Content-Encoding", "gzip")
		zw := gzip.NewWriter(w)
		zw.Write(body)
		zw.Close()
		return
	}
	w.Write(body)
}

func (p *page) lastRequest() *http.Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.requests) == 0 {
		return nil
	}
	return p.requests[len(p.requests)-1]
}

const textType = "text/plain; version=0.0.4; charset=utf-8"

const simplePage = `# HELP http_requests_total Requests.
# TYPE http_requests_total counter
http_requests_total{code="200",job="app"} 10
http_requests_total{code="500",job="app"} 2
# TYPE temp gauge
# UNIT temp celsius
temp 21.5
`

// harness runs a Scraper and collects its batches.
type harness struct {
	t       *testing.T
	targets chan []labels.Labels
	out     chan ferry.Batch[ferry.Sample]
	cancel  context.CancelFunc
	done    chan error
}

func start(t *testing.T, s *Scraper) *harness {
	return startOut(t, s, make(chan ferry.Batch[ferry.Sample], 100))
}

// startOut is start with the channel batches go to.
func startOut(t *testing.T, s *Scraper, out chan ferry.Batch[ferry.Sample]) *harness {
	t.Helper()
	return startWith(t, s, out, ferry.NopReporter())
}

// startWith is startOut with the Reporter the Scraper is started with.
func startWith(t *testing.T, s *Scraper, out chan ferry.Batch[ferry.Sample], rep ferry.Reporter) *harness {
	t.Helper()
	if s.Interval == 0 {
		s.Interval = 50 * time.Millisecond
	}
	startedWith(t, s, rep)
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{t: t, targets: make(chan []labels.Labels, 1), out: out, cancel: cancel, done: make(chan error, 1)}
	go func() { h.done <- s.Run(ctx, h.targets, h.out) }()
	t.Cleanup(h.stop)
	return h
}

func (h *harness) stop() {
	h.cancel()
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("Run: %v", err)
		}
		h.done <- nil
	case <-time.After(5 * time.Second):
		h.t.Error("Run did not return")
	}
}

// next returns the next batch (its samples by series string).
func (h *harness) next() map[string]ferry.Sample {
	h.t.Helper()
	select {
	case b := <-h.out:
		m := map[string]ferry.Sample{}
		for _, s := range b.Items {
			m[s.Labels.String()] = s
		}
		b.Done(nil)
		return m
	case <-time.After(5 * time.Second):
		h.t.Fatal("no batch")
		return nil
	}
}

// drain acknowledges the batches waiting on the harness's channel.
func (h *harness) drain() {
	for {
		select {
		case b := <-h.out:
			b.Done(nil)
		default:
			return
		}
	}
}

func addr(srv *httptest.Server) string {
	u, _ := url.Parse(srv.URL)
	return u.Host
}

func isStale(v float64) bool { return math.Float64bits(v) == value.StaleNaN }

func TestScrapeTextPage(t *testing.T) {
	p := &page{}
	p.set(simplePage, textType)
	srv := httptest.NewServer(p)
	defer srv.Close()
	s := &Scraper{Job: "node", Timeout: 40 * time.Millisecond}
	h := start(t, s)
	h.targets <- []labels.Labels{labels.FromStrings("__address__", addr(srv), "__meta_x", "y", "team", "a")}
	got := h.next()
	inst := addr(srv)
	for _, want := range []struct {
		ls string
		v  float64
	}{
		{`{__name__="http_requests_total", code="200", exported_job="app", instance="` + inst + `", job="node", team="a"}`, 10},
		{`{__name__="http_requests_total", code="500", exported_job="app", instance="` + inst + `", job="node", team="a"}`, 2},
		{`{__name__="temp", instance="` + inst + `", job="node", team="a"}`, 21.5},
		{`{__name__="up", instance="` + inst + `", job="node", team="a"}`, 1},
		{`{__name__="scrape_samples_scraped", instance="` + inst + `", job="node", team="a"}`, 3},
		{`{__name__="scrape_samples_post_metric_relabeling", instance="` + inst + `", job="node", team="a"}`, 3},
		{`{__name__="scrape_series_added", instance="` + inst + `", job="node", team="a"}`, 3},
	} {
		s, ok := got[want.ls]
		if !ok {
			t.Errorf("missing %s in %v", want.ls, got)
			continue
		}
		if s.V != want.v {
			t.Errorf("%s = %v, want %v", want.ls, s.V, want.v)
		}
	}
	if len(got) != 8 {
		t.Errorf("got %d samples, want 8", len(got))
	}
	r := p.lastRequest()
	wantAccept := "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
	if a := r.Header.Get("Accept"); a != wantAccept {
		t.Errorf("Accept = %q", a)
	}
	if r.Header.Get("Accept-Encoding") != "gzip" || r.Header.Get("X-Prometheus-Scrape-Timeout-Seconds") != "0.04" || r.URL.Path != "/metrics" {
		t.Errorf("request %v %v", r.URL, r.Header)
	}
	typ, help, unit, ok := s.Metadata("http_requests_total")
	if !ok || typ != model.MetricTypeCounter || help != "Requests." || unit != "" {
		t.Errorf("metadata = %v %q %q %v", typ, help, unit, ok)
	}
	st := s.Targets()
	if len(st) != 1 || st[0].Health != ferry.Healthy || st[0].LastError != nil || st[0].LastSamples != 3 {
		t.Errorf("status = %+v", st)
	}
}

func TestHonorLabelsAndTimestamps(t *testing.T) {
	const body = "m{job=\"scraped\",instance=\"i\"} 1 1700000000000\n"
	p := &page{}
	p.set(body, textType)
	srv := httptest.NewServer(p)
	defer srv.Close()
	for _, c := range []struct {
		honor, ignoreTS bool
		want            string
	}{
		{false, false, `{__name__="m", exported_instance="i", exported_job="scraped", instance="` + addr(srv) + `", job="node"}`},
		{true, true, `{__name__="m", instance="i", job="scraped"}`},
	} {
		s := &Scraper{Job: "node", HonorLabels: c.honor, IgnoreTimestamps: c.ignoreTS}
		h := start(t, s)
		h.targets <- []labels.Labels{labels.FromStrings("__address__", addr(srv))}
		got := h.next()
		smp, ok := got[c.want]
		if !ok {
			t.Fatalf("honor=%v: missing %s in %v", c.honor, c.want, got)
		}
		if c.ignoreTS == (smp.T == 1700000000000) {
			t.Errorf("ignoreTS=%v: T=%d", c.ignoreTS, smp.T)
		}
		h.stop()
	}
}

func TestStalenessVanishedSeriesFailureAndRemoval(t *testing.T) {
	p := &page{}
	p.set("a 1\nb 2\n", textType)
	srv := httptest.NewServer(p)
	defer srv.Close()
	s := &Scraper{Job: "j"}
	h := start(t, s)
	tgt := labels.FromStrings("__address__", addr(srv))
	h.targets <- []labels.Labels{tgt}
	inst := addr(srv)
	lsA := `{__name__="a", instance="` + inst + `", job="j"}`
	lsB := `{__name__="b", instance="` + inst + `", job="j"}`
	lsUp := `{__name__="up", instance="` + inst + `", job="j"}`
	got := h.next()
	if got[lsA].V != 1 || got[lsB].V != 2 {
		t.Fatalf("first scrape %v", got)
	}
	// b vanishes.
	p.set("a 1\n", textType)
	for {
		got = h.next()
		if _, ok := got[lsB]; !ok || !isStale(got[lsB].V) {
			if _, ok := got[lsB]; ok {
				continue // scraped before the change
			}
			t.Fatalf("no stale marker for b: %v", got)
		}
		break
	}
	if isStale(got[lsA].V) {
		t.Error("a marked stale")
	}
	// The target fails: up=0 and a stale marker for a.
	p.mu.Lock()
	p.status = 500
	p.mu.Unlock()
	for {
		got = h.next()
		if got[lsUp].V == 1 {
			continue
		}
		break
	}
	if !isStale(got[lsA].V) {
		t.Errorf("no stale marker for a on failure: %v", got)
	}
	st := s.Targets()
	if st[0].Health != ferry.Failing || !errors.Is(st[0].LastError, ErrHTTPStatus) {
		t.Errorf("status %+v", st[0])
	}
	// Recovers, then the target is removed: everything goes stale.
	p.mu.Lock()
	p.status = 0
	p.mu.Unlock()
	for got = h.next(); got[lsUp].V != 1; got = h.next() {
	}
	h.targets <- nil
	for {
		got = h.next()
		if isStale(got[lsUp].V) {
			break
		}
	}
	if !isStale(got[lsA].V) {
		t.Errorf("removal: no stale marker for a: %v", got)
	}
	if len(got) != 6 {
		t.Errorf("removal batch has %d samples, want a + 5 automatic series", len(got))
	}
	if n := len(s.Targets()); n != 0 {
		t.Errorf("%d targets left", n)
	}
}

// A gzip body that is cut short, corrupt or not gzip at all fails its
// scrape with a gzip error.
func TestBrokenGzip(t *testing.T) {
	var whole bytes.Buffer
	zw := gzip.NewWriter(&whole)
	zw.Write([]byte(strings.Repeat("m{x=\"y\"} 1\n", 100)))
	zw.Close()
	corrupt := bytes.Clone(whole.Bytes())
	corrupt[len(corrupt)/2] ^= 0xff
	for name, body := range map[string][]byte{
		"truncated": whole.Bytes()[:whole.Len()/2],
		"corrupt":   corrupt,
		"not-gzip":  []byte("m 1\n"),
		"empty":     nil,
	} {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", textType)
				w.Header().Set("Content-Encoding", "gzip")
				w.Write(body)
			}))
			defer srv.Close()
			s := &Scraper{Job: "j"}
			h := start(t, s)
			h.targets <- []labels.Labels{labels.FromStrings("__address__", addr(srv))}
			got := h.next()
			if v := got[`{__name__="up", instance="`+addr(srv)+`", job="j"}`].V; v != 0 || len(got) != 5 {
				t.Errorf("up = %v, %d samples", v, len(got))
			}
			if err := s.Targets()[0].LastError; err == nil || !strings.Contains(err.Error(), "gzip") {
				t.Errorf("error = %v, want a gzip error", err)
			}
		})
	}
}

// A malformed or truncated page fails only its own target.
func TestMalformedPages(t *testing.T) {
	good := &page{}
	good.set("ok 1\n", textType)
	goodSrv := httptest.NewServer(good)
	defer goodSrv.Close()
	for name, c := range map[string]struct{ body, ctype string }{
		"truncated-labels": {"m{a=\"b", textType},
		"bad-value":        {"m 1x\n", textType},
		"no-eof":           {"# TYPE m gauge\nm 1\n", "application/openmetrics-text; version=1.0.0"},
		"garbage-proto":    {"\x05\x0a\x03abc\xff\xff", "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"},
		"no-content-type":  {"m 1\n", ""},
		"unknown-type":     {"m 1\n", "application/json"},
	} {
		t.Run(name, func(t *testing.T) {
			bad := &page{}
			bad.set(c.body, c.ctype)
			badSrv := httptest.NewServer(bad)
			defer badSrv.Close()
			s := &Scraper{Job: "j"}
			h := start(t, s)
			h.targets <- []labels.Labels{labels.FromStrings("__address__", addr(badSrv)), labels.FromStrings("__address__", addr(goodSrv))}
			ups := map[string]float64{}
			for len(ups) < 2 {
				for ls, smp := range h.next() {
					if strings.HasPrefix(ls, `{__name__="up"`) {
						ups[ls] = smp.V
					}
				}
			}
			if ups[`{__name__="up", instance="`+addr(badSrv)+`", job="j"}`] != 0 || ups[`{__name__="up", instance="`+addr(goodSrv)+`", job="j"}`] != 1 {
				t.Errorf("up = %v", ups)
			}
			for _, st := range s.Targets() {
				if strings.Contains(st.URL, addr(badSrv)) && st.LastError == nil {
					t.Error("no error kept for the bad target")
				}
			}
		})
	}
}

func TestLimits(t *testing.T) {
	long := strings.Repeat("x", 100)
	for name, c := range map[string]struct {
		s    func() *Scraper
		body string
		want error
		msg  string
	}{
		"body":        {func() *Scraper { return &Scraper{BodySizeLimit: 10} }, "metric_with_long_name 1\n", ErrBodySizeLimit, "more than 10 bytes"},
		"samples":     {func() *Scraper { return &Scraper{SampleLimit: 2} }, "a 1\nb 1\nc 1\n", ErrSampleLimit, "more than 2 samples"},
		"labels":      {func() *Scraper { return &Scraper{LabelLimit: 3} }, "a{x=\"1\",y=\"2\"} 1\n", ErrLabelLimit, "number of labels: 5, limit: 3"},
		"name-length": {func() *Scraper { return &Scraper{LabelNameLengthLimit: 10} }, "a{" + long + "=\"1\"} 1\n", ErrLabelLimit, "label_name_length_limit exceeded"},
		"value-len":   {func() *Scraper { return &Scraper{LabelValueLengthLimit: 30} }, "a{x=\"" + long + "\"} 1\n", ErrLabelLimit, "length: 100, limit: 30"},
		// 1000 bytes that gzip to about 40: the limit holds for the page.
		"inflated": {func() *Scraper { return &Scraper{BodySizeLimit: 200} }, "a{x=\"" + strings.Repeat(long, 10) + "\"} 1\n", ErrBodySizeLimit, "more than 200 bytes"},
	} {
		t.Run(name, func(t *testing.T) {
			p := &page{}
			p.set(c.body, textType)
			p.gzip = true
			srv := httptest.NewServer(p)
			defer srv.Close()
			s := c.s()
			// A scrape timeout of a whole second, not 50ms: on a busy
			// machine the fetch must not time out before the limit is
			// what fails it.
			s.Interval = time.Second
			h := start(t, s)
			h.targets <- []labels.Labels{labels.FromStrings("__address__", addr(srv))}
			got := h.next()
			if v := got[`{__name__="up", instance="`+addr(srv)+`", job="scrape"}`].V; v != 0 {
				t.Errorf("up = %v", v)
			}
			if len(got) != 5 {
				t.Errorf("failed scrape emitted %d samples: %v", len(got), got)
			}
			err := s.Targets()[0].LastError
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.msg) {
				t.Errorf("error = %v, want %v containing %q", err, c.want, c.msg)
			}
		})
	}
}

func TestGzipOpenMetricsAndProtobuf(t *testing.T) {
	pb, err := os.ReadFile("testdata/node_exporter.pb")
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		body, ctype string
		protocols   []Protocol
		fallback    Protocol
		gzip        bool
		want        string
		wantV       float64
		wantT       int64
	}{
		"gzip-text":   {"m 3\n", textType, nil, "", true, `m`, 3, 0},
		"openmetrics": {"# TYPE c counter\nc_total 7 1700000000.5\n# EOF\n", "application/openmetrics-text; version=1.0.0; charset=utf-8", nil, "", false, `c_total`, 7, 1700000000500},
		"protobuf":    {string(pb), "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited", []Protocol{PrometheusProto, PrometheusText0_0_4}, "", true, `node_exporter_build_info`, 1, 0},
		"fallback":    {"m 4\n", "", nil, PrometheusText0_0_4, false, `m`, 4, 0},
	} {
		t.Run(name, func(t *testing.T) {
			p := &page{gzip: c.gzip}
			p.set(c.body, c.ctype)
			srv := httptest.NewServer(p)
			defer srv.Close()
			// A real node_exporter page under -race on a busy machine can
			// take longer than the harness's 50ms default to fetch and parse.
			s := &Scraper{Protocols: c.protocols, FallbackProtocol: c.fallback, Interval: time.Second}
			h := start(t, s)
			h.targets <- []labels.Labels{labels.FromStrings("__address__", addr(srv))}
			got := h.next()
			found := false
			for _, smp := range got {
				if smp.Labels.Get("__name__") == c.want {
					found = true
					if smp.V != c.wantV || (c.wantT != 0 && smp.T != c.wantT) {
						t.Errorf("%s = %v @%d", smp.Labels, smp.V, smp.T)
					}
				}
			}
			if !found {
				t.Errorf("no %s in %d samples; status %+v", c.want, len(got), s.Targets())
			}
		})
	}
}

func TestTargetLabels(t *testing.T) {
	p := &page{}
	p.set("m 1\n", textType)
	srv := httptest.NewServer(p)
	defer srv.Close()
	s := &Scraper{Params: url.Values{"a": {"1", "2"}, "b": {"3"}}}
	h := start(t, s)
	h.targets <- []labels.Labels{
		labels.FromStrings("__address__", addr(srv), "__metrics_path__", "/probe", "__param_a", "x", "__scrape_interval__", "40ms", "__scrape_timeout__", "30ms", "instance", "custom", "job", "given"),
		labels.FromStrings("__address__", addr(srv), "__scrape_interval__", "1s", "__scrape_timeout__", "2s"), // invalid
		labels.FromStrings("__metrics_path__", "/x"),                      // no address
		labels.FromStrings("__address__", addr(srv), "__scheme__", "ftp"), // invalid scheme
	}
	got := h.next()
	if _, ok := got[`{__name__="m", instance="custom", job="given"}`]; !ok {
		t.Errorf("labels: %v", got)
	}
	r := p.lastRequest()
	if r.URL.Path != "/probe" || r.URL.Query()["a"][0] != "x" || r.URL.Query()["a"][1] != "2" || r.URL.Query().Get("b") != "3" {
		t.Errorf("URL %v", r.URL)
	}
	if r.Header.Get("X-Prometheus-Scrape-Timeout-Seconds") != "0.03" {
		t.Errorf("timeout header %q", r.Header.Get("X-Prometheus-Scrape-Timeout-Seconds"))
	}
	if n := len(s.Targets()); n != 1 {
		t.Errorf("%d targets, want 1 valid", n)
	}
}

func TestMetricRelabel(t *testing.T) {
	p := &page{}
	p.set("keep 1\ndrop_me 2\n", textType)
	srv := httptest.NewServer(p)
	defer srv.Close()
	s := &Scraper{MetricRelabel: []relabel.Rule{relabel.Drop([]string{"__name__"}, "drop_.*"), relabel.Set("env", "prod")}}
	h := start(t, s)
	h.targets <- []labels.Labels{labels.FromStrings("__address__", addr(srv))}
	got := h.next()
	inst := addr(srv)
	if _, ok := got[`{__name__="keep", env="prod", instance="`+inst+`", job="scrape"}`]; !ok {
		t.Errorf("kept series: %v", got)
	}
	if got[`{__name__="scrape_samples_scraped", instance="`+inst+`", job="scrape"}`].V != 2 ||
		got[`{__name__="scrape_samples_post_metric_relabeling", instance="`+inst+`", job="scrape"}`].V != 1 {
		t.Errorf("counts: %v", got)
	}
	if len(got) != 6 {
		t.Errorf("%d samples", len(got))
	}
}

func TestAuth(t *testing.T) {
	p := &page{}
	p.set("m 1\n", textType)
	for _, c := range authtest.Cases() {
		t.Run(c.Name, func(t *testing.T) {
			srv := c.Server(t, p)
			// A TLS handshake under the race detector on a busy CI machine
			// has taken more than the harness's 50 ms: the scrape gets a
			// second.
			s := &Scraper{HTTPClient: c.Config, Interval: time.Second, Timeout: time.Second}
			if c.TLS {
				s.Scheme = "https"
			}
			hs := start(t, s)
			hs.targets <- []labels.Labels{labels.FromStrings("__address__", addr(srv))}
			got := hs.next()
			if got[`{__name__="up", instance="`+addr(srv)+`", job="scrape"}`].V != 1 {
				t.Errorf("up != 1: %+v", s.Targets())
			}
		})
	}
}

func TestOffsetStable(t *testing.T) {
	s := &Scraper{}
	tg, err := s.resolve(labels.FromStrings("__address__", "h:1"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1700000000, 123)
	o1 := s.offset(&tg, 42, now)
	if o1 < 0 || o1 > tg.interval {
		t.Fatalf("offset %v outside interval", o1)
	}
	// The phase is the same whenever it is computed.
	o2 := s.offset(&tg, 42, now.Add(7*time.Second))
	if p1, p2 := now.Add(o1).UnixNano()%int64(tg.interval), now.Add(7*time.Second+o2).UnixNano()%int64(tg.interval); p1 != p2 {
		t.Errorf("phase changed: %d vs %d", p1, p2)
	}
	tg2, _ := s.resolve(labels.FromStrings("__address__", "h:2"))
	if s.offset(&tg2, 42, now) == o1 {
		t.Error("two targets share a phase")
	}
}

// Phases are multiples of Group (DefaultGroup by default), so that the
// targets of one window are scraped together; each keeps its own phase, and
// time.Nanosecond spreads them as finely as Prometheus does.
func TestOffsetGroup(t *testing.T) {
	now := time.Unix(1700000000, 123456789)
	for _, tc := range []struct {
		group, want time.Duration // want: the step every phase is a multiple of
	}{
		{0, DefaultGroup},
		{250 * time.Millisecond, 250 * time.Millisecond},
		{time.Nanosecond, time.Nanosecond},
	} {
		s := &Scraper{Interval: time.Second, Group: tc.group}
		phases := map[int64]int{}
		for i := range 1000 {
			tg, err := s.resolve(labels.FromStrings("__address__", "h:"+strconv.Itoa(i)))
			if err != nil {
				t.Fatal(err)
			}
			o := s.offset(&tg, 42, now)
			if o < 0 || o > tg.interval {
				t.Fatalf("Group %v: offset %v outside the interval", tc.group, o)
			}
			phase := now.Add(o).UnixNano() % int64(tg.interval)
			if phase%int64(tc.want) != 0 {
				t.Fatalf("Group %v: phase %v is not a multiple of %v", tc.group, time.Duration(phase), tc.want)
			}
			if o2 := s.offset(&tg, 42, now.Add(3*time.Second+7)); now.Add(3*time.Second+7+o2).UnixNano()%int64(tg.interval) != phase {
				t.Fatalf("Group %v: the phase of h:%d moved", tc.group, i)
			}
			phases[phase]++
		}
		// 1000 targets over the windows of one interval: every window of
		// 100 or 250 ms holds some, and without groups nearly every target
		// has a phase of its own.
		want := int(time.Second / tc.want)
		if tc.want == time.Nanosecond {
			want = 990
		}
		if len(phases) < want {
			t.Errorf("Group %v: %d distinct phases, want at least %d", tc.group, len(phases), want)
		}
	}
}

// Configuration errors fail Validate (and so pipeline.Build) and Start;
// Run before Start fails without scraping.
func TestInvalidConfig(t *testing.T) {
	missing := t.TempDir() + "/missing"
	for _, s := range []*Scraper{
		{Protocols: []Protocol{"nope"}},
		{FallbackProtocol: "nope"},
		{Scheme: "ftp"},
		{Interval: -time.Second},
		{Group: -time.Millisecond},
		{SampleLimit: -1},
		{HTTPClient: httpconf.Config{TLS: httpconf.TLS{CAFile: missing}}},
		{HTTPClient: httpconf.Config{Authorization: &httpconf.Authorization{CredentialsFile: missing}}},
		{MetricRelabel: []relabel.Rule{relabel.Drop([]string{"a"}, "(")}},
	} {
		if err := s.Validate(); err == nil {
			t.Errorf("%+v: Validate passed", s)
		}
		if err := s.Start(context.Background(), ferry.NopReporter()); err == nil {
			t.Errorf("%+v: Start passed", s)
		}
		if err := s.Run(context.Background(), nil, nil); !errors.Is(err, ErrNotStarted) || ferry.IsPermanent(err) {
			t.Errorf("%+v: Run = %v, want ErrNotStarted", s, err)
		}
	}
	if err := (&Scraper{}).Validate(); err != nil {
		t.Errorf("zero Scraper: %v", err)
	}
}

// FuzzParse feeds arbitrary pages through the scrape path in every format:
// it must never panic, and a page that parses yields consistent counts.
func FuzzParse(f *testing.F) {
	text, _ := os.ReadFile("testdata/node_exporter.txt")
	pb, _ := os.ReadFile("testdata/node_exporter.pb")
	f.Add(text[:2000], uint8(0))
	f.Add([]byte(simplePage), uint8(0))
	f.Add([]byte("# TYPE a counter\na_total{x=\"y\"} 1 2.5\n# EOF\n"), uint8(1))
	f.Add(pb[:min(len(pb), 3000)], uint8(2))
	f.Add([]byte("m{a=\"b"), uint8(0))
	types := []string{textType, "application/openmetrics-text; version=1.0.0", "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited", "text/plain; version=1.0.0"}
	s := &Scraper{}
	tg, _ := s.resolve(labels.FromStrings("__address__", "h:1"))
	f.Fuzz(func(t *testing.T, body []byte, kind uint8) {
		l := newLoop(started(t, s), tg)
		items, st, err := l.scrapePage(nil, body, types[int(kind)%len(types)], 1000, nil)
		if errors.Is(err, errParserPanicked) {
			t.Logf("textparse panicked (recovered): %v", err)
			return
		}
		if err == nil && len(items) != st.post || err != nil && len(items) != 0 {
			t.Fatalf("%d items, %d counted", len(items), st.post)
		}
	})
}

// Staleness bookkeeping driven directly: explicit timestamps, duplicate
// spellings of one series, failures.
func TestStalenessRules(t *testing.T) {
	for _, track := range []bool{false, true} {
		s := &Scraper{TrackTimestampsStaleness: track}
		tg, _ := s.resolve(labels.FromStrings("__address__", "h:1"))
		l := newLoop(started(t, s), tg)
		scrape := func(page string) map[string]float64 {
			items, _, _ := l.scrapePage(nil, []byte(page), textType, 5000, nil)
			m := map[string]float64{}
			for _, it := range items {
				m[it.Labels.Get("__name__")] = it.V
			}
			return m
		}
		got := scrape("a 1 1000\nb 2\nc{x=\"1\",y=\"2\"} 3\nc{y=\"2\",x=\"1\"} 4\n")
		if len(got) != 3 || got["c"] != 3 {
			t.Fatalf("first scrape %v (duplicate spelling must be dropped)", got)
		}
		got = scrape("c{y=\"2\",x=\"1\"} 4\n")
		if !isStale(got["b"]) || got["c"] != 4 {
			t.Errorf("track=%v: second scrape %v", track, got)
		}
		if _, ok := got["a"]; ok != track {
			t.Errorf("track=%v: explicit-timestamp series stale marker present=%v", track, ok)
		}
		got = scrape("m{") // fails
		if !isStale(got["c"]) || len(got) != 1 {
			t.Errorf("failure: %v", got)
		}
		got = scrape("m{") // fails again: nothing left to mark
		if len(got) != 0 {
			t.Errorf("second failure: %v", got)
		}
	}
}

func TestMetadataFamilies(t *testing.T) {
	s := &Scraper{}
	tg, _ := s.resolve(labels.FromStrings("__address__", "h:1"))
	l := newLoop(started(t, s), tg)
	page := "# TYPE c_seconds counter\n# HELP c_seconds Things.\n# UNIT c_seconds seconds\nc_seconds_total 1\nc_seconds_created 1\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n# EOF\n"
	if _, _, err := l.scrapePage(nil, []byte(page), "application/openmetrics-text; version=1.0.0", 1, nil); err != nil {
		t.Fatal(err)
	}
	for metric, want := range map[string]model.MetricType{"c_seconds_total": model.MetricTypeCounter, "c_seconds_created": model.MetricTypeCounter, "h_bucket": model.MetricTypeHistogram, "h_count": model.MetricTypeHistogram} {
		typ, _, _, ok := s.Metadata(metric)
		if !ok || typ != want {
			t.Errorf("%s: %v %v", metric, typ, ok)
		}
	}
	if _, help, unit, _ := s.Metadata("c_seconds_total"); help != "Things." || unit != "seconds" {
		t.Errorf("help %q unit %q", help, unit)
	}
	if _, _, _, ok := s.Metadata("unknown"); ok {
		t.Error("metadata for an unknown metric")
	}
}

// Two series that metric relabeling makes one are delivered once, and the
// loop only pays for that bookkeeping once it saw such twins.
func TestTwinsAfterRelabelAndEviction(t *testing.T) {
	s := &Scraper{MetricRelabel: []relabel.Rule{relabel.LabelDrop("x")}}
	tg, _ := s.resolve(labels.FromStrings("__address__", "h:1"))
	l := newLoop(started(t, s), tg)
	scrape := func(page string) (map[string]float64, stats) {
		items, st, err := l.scrapePage(nil, []byte(page), textType, 5000, nil)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]float64{}
		for _, it := range items {
			m[it.Labels.Get("__name__")] = it.V
		}
		return m, st
	}
	got, st := scrape("a 1\nb 2\n")
	if len(got) != 2 || l.aliased {
		t.Fatalf("plain page: %v, aliased=%v", got, l.aliased)
	}
	got, st = scrape("a 1\nm{x=\"1\"} 3\nm{x=\"2\"} 4\n")
	if got["m"] != 3 || st.dups != 1 || !l.aliased || !isStale(got["b"]) {
		t.Fatalf("twins: %v %+v aliased=%v", got, st, l.aliased)
	}
	// The second spelling alone: m is delivered under it, not marked stale.
	got, _ = scrape("a 1\nm{x=\"2\"} 5\n")
	if got["m"] != 5 || len(got) != 2 {
		t.Fatalf("second spelling: %v", got)
	}
	// Long enough without the twin: it is forgotten, and the loop is plain
	// again; what stays in the cache still works.
	for range 2 * cacheEvictAfter {
		got, _ = scrape("a 7\n")
	}
	if l.aliased || l.index.n != 1 || len(l.entries) != 1 || got["a"] != 7 || len(got) != 1 {
		t.Fatalf("after eviction: aliased=%v index=%d entries=%d got=%v", l.aliased, l.index.n, len(l.entries), got)
	}
	got, st = scrape("a 8\nb 9\n")
	if got["a"] != 8 || got["b"] != 9 || st.added != 1 {
		t.Fatalf("b again: %v %+v", got, st)
	}
}

// A target whose series stay the same drops its label hashes; a twin that
// shows up later is still found, from the cache itself.
func TestTwinAfterQuietSpell(t *testing.T) {
	s := &Scraper{MetricRelabel: []relabel.Rule{relabel.LabelDrop("x")}}
	tg, _ := s.resolve(labels.FromStrings("__address__", "h:1"))
	l := newLoop(started(t, s), tg)
	scrape := func(page string) []ferry.Sample {
		items, _, err := l.scrapePage(nil, []byte(page), textType, 5000, nil)
		if err != nil {
			t.Fatal(err)
		}
		return items
	}
	scrape("a 1\nm{x=\"1\"} 3\n")
	if !l.finalsOK {
		t.Fatal("no label hashes after the first scrape")
	}
	for range 3 * cacheEvictAfter {
		scrape("a 1\nm{x=\"1\"} 3\n")
	}
	if l.finalsOK || l.finals != nil {
		t.Fatalf("label hashes kept through a quiet spell: %d", len(l.finals))
	}
	// The other spelling of m: delivered once, under its labels, and m is
	// not marked stale although its first spelling is gone.
	got := scrape("a 1\nm{x=\"2\"} 4\n")
	ms := 0
	for _, it := range got {
		if it.Labels.Get("__name__") != "m" {
			continue
		}
		ms++
		if isStale(it.V) || it.V != 4 {
			t.Errorf("m = %v", it.V)
		}
	}
	if ms != 1 || !l.aliased {
		t.Fatalf("m delivered %d times, aliased=%v: %v", ms, l.aliased, got)
	}
}

// A text page with a NUL byte fails: the text parsers would take it for
// the end of the page and drop what follows, or pass garbage that starts
// with one as an empty page.
func TestNULInTextPage(t *testing.T) {
	s := &Scraper{}
	tg, _ := s.resolve(labels.FromStrings("__address__", "h:1"))
	for _, page := range []string{"\x00\xaf garbage", "a 1\n\x00b 2\n", "a 1\nb{x=\"\x00\"} 2\n"} {
		l := newLoop(started(t, s), tg)
		if items, _, err := l.scrapePage(nil, []byte(page), textType, 1, nil); err == nil || !strings.Contains(err.Error(), "NUL byte") {
			t.Errorf("%q: err %v, %d samples", page, err, len(items))
		}
	}
}

// A scrape waiting for a CPU slot gives up when its context ends: before,
// it waited for the slot without a context, and a stopping target could
// hang behind a machine that had fallen behind.
func TestCPUSlotWaitEndsWithContext(t *testing.T) {
	served := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", textType)
		w.Write([]byte("a 1\n"))
		select {
		case served <- struct{}{}:
		default:
		}
	}))
	defer srv.Close()
	for range cap(cpuSlots) {
		cpuSlots <- struct{}{}
	}
	defer func() {
		for range cap(cpuSlots) {
			<-cpuSlots
		}
	}()
	s := started(t, &Scraper{Interval: time.Hour})
	tg, err := s.resolve(labels.FromStrings("__address__", addr(srv)))
	if err != nil {
		t.Fatal(err)
	}
	l := newLoop(s, tg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		l.scrapeAndSend(ctx, make(chan ferry.Batch[ferry.Sample]), time.Now())
		close(done)
	}()
	<-served
	time.Sleep(50 * time.Millisecond) // time to read the body and wait for a slot
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a scrape waiting for a CPU slot ignored its context")
	}
}

// A loop builds its request once and sends it again with each scrape's
// context: every scrape carries the headers, and each has its own timeout
// (a request that kept the first scrape's context would fail every later
// scrape, one without a context would hang on the second).
func TestRequestReusedPerScrape(t *testing.T) {
	var (
		mu      sync.Mutex
		headers []http.Header
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		headers = append(headers, r.Header.Clone())
		n := len(headers)
		mu.Unlock()
		if n == 2 {
			<-r.Context().Done() // past the scrape's timeout
			return
		}
		w.Header().Set("Content-Type", textType)
		w.Write([]byte("a 1\n"))
	}))
	defer srv.Close()
	s := started(t, &Scraper{Interval: time.Hour, Timeout: 200 * time.Millisecond, Headers: map[string]string{"X-Tenant": "blue"}})
	tg, err := s.resolve(labels.FromStrings("__address__", addr(srv)))
	if err != nil {
		t.Fatal(err)
	}
	l := newLoop(s, tg)
	out := make(chan ferry.Batch[ferry.Sample], 1)
	var ups []float64
	for range 3 {
		l.scrapeAndSend(context.Background(), out, time.Now())
		b := <-out
		for _, smp := range b.Items {
			if smp.Labels.Get(model.MetricNameLabel) == "up" {
				ups = append(ups, smp.V)
			}
		}
		b.Done(nil)
	}
	if want := []float64{1, 0, 1}; !slices.Equal(ups, want) {
		t.Errorf("up of the three scrapes = %v, want %v", ups, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(headers) != 3 {
		t.Fatalf("%d requests, want 3", len(headers))
	}
	for i, h := range headers {
		if h.Get("X-Tenant") != "blue" || h.Get("Accept-Encoding") != "gzip" || h.Get("X-Prometheus-Scrape-Timeout-Seconds") != "0.2" || h.Get("User-Agent") != DefaultUserAgent {
			t.Errorf("request %d: headers %v", i+1, h)
		}
	}
}
