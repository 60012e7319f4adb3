package remotewrite

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/httpconf"
	"github.com/ferrydev/ferry/internal/authtest"
	"github.com/ferrydev/ferry/internal/poll"
	"github.com/ferrydev/ferry/relabel"
	"github.com/ferrydev/ferry/sink"
	"github.com/ferrydev/ferry/sink/sinktest"
)

const staleNaN = 0x7ff0000000000002

// testReporter records what a sink reports.
type testReporter struct {
	mu      sync.Mutex
	dropped map[string]int
	retries int
	health  ferry.Health
}

func (r *testReporter) Logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}
func (r *testReporter) SetHealth(h ferry.Health, _ error) { r.mu.Lock(); r.health = h; r.mu.Unlock() }
func (r *testReporter) Dropped(reason string, n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.dropped == nil {
		r.dropped = map[string]int{}
	}
	r.dropped[reason] += n
}
func (r *testReporter) Retried() { r.mu.Lock(); r.retries++; r.mu.Unlock() }
func (r *testReporter) drops(reason string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.dropped[reason]
}
func (r *testReporter) retried() int { r.mu.Lock(); defer r.mu.Unlock(); return r.retries }

// receiver is a fake remote-write endpoint that decodes every request with
// Prometheus's own message types.
type receiver struct {
	t       testing.TB
	mu      sync.Mutex
	v1      []prompb.WriteRequest
	v2      []writev2.Request
	headers []http.Header
	// respond, when set, decides the answer to request n (0-based); it
	// returns 0 to accept.
	respond func(n int, w http.ResponseWriter) int
	n       atomic.Int64
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := int(rc.n.Add(1) - 1)
	if rc.respond != nil {
		if code := rc.respond(n, w); code != 0 {
			w.WriteHeader(code)
			return
		}
	}
	comp, err := io.ReadAll(r.Body)
	if err != nil {
		rc.t.Errorf("read body: %v", err)
		return
	}
	pb, err := snappy.Decode(nil, comp)
	if err != nil {
		rc.t.Errorf("snappy: %v", err)
		w.WriteHeader(400)
		return
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.headers = append(rc.headers, r.Header.Clone())
	if r.Header.Get("Content-Type") == "application/x-protobuf;proto=io.prometheus.write.v2.Request" {
		var req writev2.Request
		if err := req.Unmarshal(pb); err != nil {
			rc.t.Errorf("unmarshal v2: %v", err)
			w.WriteHeader(400)
			return
		}
		rc.v2 = append(rc.v2, req)
		n := 0
		for _, ts := range req.Timeseries {
			n += len(ts.Samples)
		}
		w.Header().Set("X-Prometheus-Remote-Write-Samples-Written", strconv.Itoa(n))
		w.WriteHeader(http.StatusNoContent)
		return
	}
	var req prompb.WriteRequest
	if err := req.Unmarshal(pb); err != nil {
		rc.t.Errorf("unmarshal v1: %v", err)
		w.WriteHeader(400)
		return
	}
	rc.v1 = append(rc.v1, req)
	w.WriteHeader(http.StatusNoContent)
}

type gotSample struct {
	labels string
	t      int64
	v      uint64
}

func (rc *receiver) samples() []gotSample {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []gotSample
	for _, req := range rc.v1 {
		for _, ts := range req.Timeseries {
			b := labels.NewScratchBuilder(len(ts.Labels))
			for _, l := range ts.Labels {
				b.Add(l.Name, l.Value)
			}
			ls := b.Labels()
			for _, s := range ts.Samples {
				out = append(out, gotSample{ls.String(), s.Timestamp, math.Float64bits(s.Value)})
			}
		}
	}
	for _, req := range rc.v2 {
		for _, ts := range req.Timeseries {
			b := labels.NewScratchBuilder(len(ts.LabelsRefs) / 2)
			for i := 0; i+1 < len(ts.LabelsRefs); i += 2 {
				b.Add(req.Symbols[ts.LabelsRefs[i]], req.Symbols[ts.LabelsRefs[i+1]])
			}
			ls := b.Labels()
			for _, s := range ts.Samples {
				out = append(out, gotSample{ls.String(), s.Timestamp, math.Float64bits(s.Value)})
			}
		}
	}
	return out
}

// inOrder fails t unless every series of got came in order of time.
func inOrder(t testing.TB, got []gotSample) {
	t.Helper()
	last := map[string]int64{}
	for _, g := range got {
		if prev, ok := last[g.labels]; ok && g.t <= prev {
			t.Fatalf("series %s out of order: %d after %d", g.labels, g.t, prev)
		}
		last[g.labels] = g.t
	}
}

func newSamples(n, series int, t0 int64) []ferry.Sample {
	out := make([]ferry.Sample, 0, n)
	for i := range n {
		out = append(out, ferry.Sample{
			Labels: labels.FromStrings("__name__", "test_metric", "series", strconv.Itoa(i%series)),
			T:      t0 + int64(i/series),
			V:      float64(i),
		})
	}
	return out
}

// send sends samples as one batch and returns a channel with its outcome.
func send(t testing.TB, ctx context.Context, s *Sink, samples []ferry.Sample) <-chan error {
	done := make(chan error, 1)
	b := ferry.NewBatch(samples, func(err error) { done <- err })
	if err := s.Send(ctx, b); err != nil {
		t.Logf("send: %v", err)
	}
	return done
}

func wait(t testing.TB, ch <-chan error, d time.Duration) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(d):
		t.Fatal("no acknowledgement")
		return nil
	}
}

// started starts s with rep (a recording one when nil) and fails t if that
// fails.
func started(t testing.TB, s *Sink, rep ferry.Reporter) *Sink {
	t.Helper()
	if rep == nil {
		rep = &testReporter{}
	}
	if err := s.Start(context.Background(), rep); err != nil {
		t.Fatalf("start: %v", err)
	}
	return s
}

func closeSink(t testing.TB, s *Sink) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Errorf("close: %v", err)
	}
}

func TestV1Body(t *testing.T) {
	rc := &receiver{t: t}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	s := started(t, &Sink{
		URL:               srv.URL,
		BatchSendDeadline: 20 * time.Millisecond,
		ExternalLabels:    labels.FromStrings("cluster", "c$1", "series", "ignored"),
		WriteRelabel:      []relabel.Rule{relabel.Drop([]string{"series"}, "2")},
		Headers:           map[string]string{"X-Scope-OrgID": "tenant", "Content-Type": "text/plain"},
		Metadata: func(name string) (model.MetricType, string, string, bool) {
			return model.MetricTypeCounter, "help " + name, "seconds", true
		},
	}, nil)
	defer closeSink(t, s)
	in := newSamples(8, 4, 1000)
	in[0].V = math.Float64frombits(staleNaN)
	if err := wait(t, send(t, context.Background(), s, in), 5*time.Second); err != nil {
		t.Fatalf("ack: %v", err)
	}
	got := rc.samples()
	if len(got) != 6 {
		t.Fatalf("got %d samples, want 6 (2 dropped by relabeling): %v", len(got), got)
	}
	for _, g := range got {
		if g.labels == `{__name__="test_metric", cluster="c$1", series="2"}` {
			t.Errorf("relabel drop not applied: %v", g)
		}
	}
	want := gotSample{`{__name__="test_metric", cluster="c$1", series="0"}`, 1000, staleNaN}
	if got[0] != want {
		t.Errorf("first sample = %+v, want %+v", got[0], want)
	}
	rc.mu.Lock()
	h := rc.headers[0]
	md := rc.v1[0].Metadata
	rc.mu.Unlock()
	for k, v := range map[string]string{
		"Content-Encoding":                  "snappy",
		"Content-Type":                      "application/x-protobuf",
		"X-Prometheus-Remote-Write-Version": "0.1.0",
		"User-Agent":                        DefaultUserAgent,
		"X-Scope-Orgid":                     "tenant",
	} {
		if h.Get(k) != v {
			t.Errorf("header %s = %q, want %q", k, h.Get(k), v)
		}
	}
	if len(md) != 1 || md[0].MetricFamilyName != "test_metric" || md[0].Type != prompb.MetricMetadata_COUNTER ||
		md[0].Help != "help test_metric" || md[0].Unit != "seconds" {
		t.Errorf("metadata = %+v", md)
	}
	// Labels sorted by name in every series.
	rc.mu.Lock()
	for _, ts := range rc.v1[0].Timeseries {
		if !sort.SliceIsSorted(ts.Labels, func(i, j int) bool { return ts.Labels[i].Name < ts.Labels[j].Name }) {
			t.Errorf("labels not sorted: %v", ts.Labels)
		}
	}
	rc.mu.Unlock()
}

func TestV2Body(t *testing.T) {
	rc := &receiver{t: t}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	s := started(t, &Sink{
		URL:               srv.URL,
		Version:           V2,
		BatchSendDeadline: 20 * time.Millisecond,
		Metadata: func(name string) (model.MetricType, string, string, bool) {
			return model.MetricTypeGauge, "the help", "", true
		},
	}, nil)
	defer closeSink(t, s)
	in := newSamples(10, 5, 2000)
	in[3].V = math.Float64frombits(staleNaN)
	if err := wait(t, send(t, context.Background(), s, in), 5*time.Second); err != nil {
		t.Fatalf("ack: %v", err)
	}
	got := rc.samples()
	if len(got) != 10 {
		t.Fatalf("got %d samples", len(got))
	}
	if got[3].v != staleNaN {
		t.Errorf("stale marker changed: %x", got[3].v)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.v2) == 0 {
		t.Fatal("no v2 request")
	}
	req := rc.v2[0]
	if req.Symbols[0] != "" {
		t.Errorf("symbols[0] = %q", req.Symbols[0])
	}
	seen := map[string]bool{}
	for _, s := range req.Symbols {
		if seen[s] {
			t.Errorf("symbol %q twice", s)
		}
		seen[s] = true
	}
	for _, ts := range req.Timeseries {
		if ts.Metadata.Type != writev2.Metadata_METRIC_TYPE_GAUGE || req.Symbols[ts.Metadata.HelpRef] != "the help" || ts.Metadata.UnitRef != 0 {
			t.Errorf("metadata = %+v", ts.Metadata)
		}
	}
	h := rc.headers[0]
	if h.Get("X-Prometheus-Remote-Write-Version") != "2.0.0" || h.Get("Content-Encoding") != "snappy" {
		t.Errorf("headers %v", h)
	}
}

// A receiver that only knows 1.0 decodes a 2.0 body as an empty request and
// answers 204 without the written-count headers: the sink falls back.
func TestV2FallbackToV1(t *testing.T) {
	for _, mode := range []string{"no-headers", "415"} {
		t.Run(mode, func(t *testing.T) {
			rc := &receiver{t: t}
			rc.respond = func(_ int, w http.ResponseWriter) int { return 0 }
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("X-Prometheus-Remote-Write-Version") == "2.0.0" {
					if mode == "415" {
						w.WriteHeader(http.StatusUnsupportedMediaType)
					} else {
						w.WriteHeader(http.StatusNoContent)
					}
					return
				}
				rc.ServeHTTP(w, r)
			}))
			defer srv.Close()
			s := started(t, &Sink{URL: srv.URL, Version: V2, BatchSendDeadline: 10 * time.Millisecond}, nil)
			defer closeSink(t, s)
			if err := wait(t, send(t, context.Background(), s, newSamples(5, 5, 1)), 5*time.Second); err != nil {
				t.Fatal(err)
			}
			if n := len(rc.samples()); n != 5 {
				t.Fatalf("got %d samples after fallback", n)
			}
		})
	}
	t.Run("no-fallback", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusNoContent)
		}))
		defer srv.Close()
		rep := &testReporter{}
		ctx := ferry.WithReporter(context.Background(), rep)
		s := started(t, &Sink{URL: srv.URL, Version: V2, NoFallback: true, BatchSendDeadline: 10 * time.Millisecond}, rep)
		defer closeSink(t, s)
		err := wait(t, send(t, ctx, s, newSamples(5, 5, 1)), 5*time.Second)
		if !ferry.IsPermanent(err) || !errors.Is(err, ErrNotV2Receiver) {
			t.Fatalf("ack = %v, want permanent ErrNotV2Receiver", err)
		}
		if rep.drops("unsupported_v2") != 5 {
			t.Errorf("drops = %v", rep.dropped)
		}
	})
}

func TestRetries(t *testing.T) {
	cases := []struct {
		name    string
		respond func(n int, w http.ResponseWriter) int
		minWait time.Duration
	}{
		{"500", func(n int, w http.ResponseWriter) int {
			if n < 3 {
				return 500
			}
			return 0
		}, 0},
		{"503", func(n int, w http.ResponseWriter) int {
			if n < 1 {
				return 503
			}
			return 0
		}, 0},
		{"429-retry-after", func(n int, w http.ResponseWriter) int {
			if n < 1 {
				w.Header().Set("Retry-After", "1")
				return 429
			}
			return 0
		}, time.Second},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rc := &receiver{t: t, respond: c.respond}
			srv := httptest.NewServer(rc)
			defer srv.Close()
			rep := &testReporter{}
			ctx := ferry.WithReporter(context.Background(), rep)
			s := started(t, &Sink{URL: srv.URL, BatchSendDeadline: 10 * time.Millisecond, MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond}, rep)
			defer closeSink(t, s)
			start := time.Now()
			if err := wait(t, send(t, ctx, s, newSamples(10, 3, 1)), 10*time.Second); err != nil {
				t.Fatalf("ack: %v", err)
			}
			if d := time.Since(start); d < c.minWait {
				t.Errorf("acked after %v, Retry-After asked for %v", d, c.minWait)
			}
			if len(rc.samples()) != 10 {
				t.Errorf("got %d samples", len(rc.samples()))
			}
			if rep.retried() == 0 {
				t.Error("no retry counted")
			}
			rc.mu.Lock()
			if h := rc.headers[0].Get("Retry-Attempt"); h == "" {
				t.Error("no Retry-Attempt header on retried request")
			}
			rc.mu.Unlock()
		})
	}
}

// A receiver slower than Timeout: the request is abandoned and retried.
func TestSlowReceiverRetried(t *testing.T) {
	rc := &receiver{t: t}
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			select {
			case <-time.After(2 * time.Second):
			case <-r.Context().Done():
			}
			return
		}
		rc.ServeHTTP(w, r)
	}))
	defer srv.Close()
	rep := &testReporter{}
	ctx := ferry.WithReporter(context.Background(), rep)
	s := started(t, &Sink{URL: srv.URL, Timeout: 100 * time.Millisecond, BatchSendDeadline: 5 * time.Millisecond, MinBackoff: time.Millisecond}, rep)
	defer closeSink(t, s)
	if err := wait(t, send(t, ctx, s, newSamples(3, 3, 1)), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if len(rc.samples()) != 3 || rep.retried() != 1 {
		t.Errorf("samples %d, retries %d", len(rc.samples()), rep.retried())
	}
}

func TestNetworkErrorRetried(t *testing.T) {
	// Reserve a port, close it: connections are refused until a receiver
	// starts there.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	rep := &testReporter{}
	ctx := ferry.WithReporter(context.Background(), rep)
	s := started(t, &Sink{URL: "http://" + addr + "/write", BatchSendDeadline: 10 * time.Millisecond, MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond}, rep)
	defer closeSink(t, s)
	ack := send(t, ctx, s, newSamples(4, 4, 1))
	poll.Until(t, func() bool { return rep.retried() >= 2 }, "retries on connection refused")
	rc := &receiver{t: t}
	l, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("port taken meanwhile: %v", err)
	}
	srv := &http.Server{Handler: rc}
	go srv.Serve(l)
	defer srv.Close()
	if err := wait(t, ack, 5*time.Second); err != nil {
		t.Fatalf("ack: %v", err)
	}
	if len(rc.samples()) != 4 {
		t.Errorf("got %d samples", len(rc.samples()))
	}
}

func TestClientErrorsDropped(t *testing.T) {
	for _, code := range []int{400, 404, 413, 422} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, "out of order sample", code)
			}))
			defer srv.Close()
			rep := &testReporter{}
			ctx := ferry.WithReporter(context.Background(), rep)
			s := started(t, &Sink{URL: srv.URL, BatchSendDeadline: 10 * time.Millisecond}, rep)
			defer closeSink(t, s)
			err := wait(t, send(t, ctx, s, newSamples(7, 7, 1)), 5*time.Second)
			if !ferry.IsPermanent(err) {
				t.Fatalf("ack = %v, want permanent", err)
			}
			if got := rep.drops("http_" + strconv.Itoa(code)); got != 7 {
				t.Errorf("dropped = %v", rep.dropped)
			}
			if rep.retried() != 0 {
				t.Error("4xx retried")
			}
		})
	}
}

func TestCloseDeadlineAcksWithError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(500)
	}))
	defer srv.Close()
	s := started(t, &Sink{URL: srv.URL, BatchSendDeadline: time.Hour, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}, nil)
	ack := send(t, context.Background(), s, newSamples(10, 10, 1))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	closeErr := s.Close(ctx)
	if closeErr == nil {
		t.Error("close met its deadline against a failing receiver")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("close took %v", d)
	}
	err := wait(t, ack, time.Second)
	if err == nil || ferry.Settled(err) {
		t.Fatalf("ack = %v, want a retryable error", err)
	}
	// After Close, Send acknowledges with an error.
	if err := wait(t, send(t, context.Background(), s, newSamples(1, 1, 1)), time.Second); !errors.Is(err, ErrClosed) {
		t.Errorf("send after close: %v", err)
	}
	// A later Close returns the first one's outcome (lifecycle.State).
	if err := s.Close(context.Background()); err != closeErr {
		t.Errorf("second close: %v, want %v", err, closeErr)
	}
}

func TestCloseFlushes(t *testing.T) {
	rc := &receiver{t: t}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	s := started(t, &Sink{URL: srv.URL, BatchSendDeadline: time.Hour, MinShards: 4}, nil)
	ack := send(t, context.Background(), s, newSamples(100, 20, 1))
	closeSink(t, s)
	if err := wait(t, ack, time.Second); err != nil {
		t.Fatal(err)
	}
	if n := len(rc.samples()); n != 100 {
		t.Fatalf("flushed %d of 100", n)
	}
}

func TestCloseWithoutStart(t *testing.T) {
	s := &Sink{URL: "http://127.0.0.1:1/write"}
	closeSink(t, s)
	closeSink(t, s)
	var zero Sink
	closeSink(t, &zero)
	if err := s.Start(context.Background(), ferry.NopReporter()); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Close: %v, want ErrClosed", err)
	}
	s = started(t, &Sink{URL: "http://127.0.0.1:1/write"}, nil)
	closeSink(t, s)
	closeSink(t, s)
	// One lifecycle (issue 17): the errors after Close wrap ferry's.
	if err := wait(t, send(t, context.Background(), s, newSamples(1, 1, 1)), time.Second); !errors.Is(err, ferry.ErrClosed) || ferry.Settled(err) {
		t.Errorf("ack after Close = %v, want ferry.ErrClosed, not settled", err)
	}
	if err := s.Start(context.Background(), ferry.NopReporter()); !errors.Is(err, ferry.ErrClosed) {
		t.Errorf("Start after Close: %v, want ferry.ErrClosed", err)
	}
}

// A batch sent before Start is not delivered, and says so with an error
// that lets a source read it again: before Start existed, a sink started in
// its first Send and acknowledged configuration errors as permanent.
func TestSendBeforeStart(t *testing.T) {
	for _, s := range []*Sink{{URL: "http://127.0.0.1:1/write"}, {}} {
		err := wait(t, send(t, context.Background(), s, newSamples(1, 1, 1)), time.Second)
		if !errors.Is(err, ferry.ErrNotStarted) || ferry.Settled(err) {
			t.Errorf("ack before Start = %v, want ferry.ErrNotStarted, not settled", err)
		}
	}
}

// Configuration errors fail Validate (and so pipeline.Build) and Start,
// never a batch.
func TestValidate(t *testing.T) {
	missing := t.TempDir() + "/missing"
	for _, c := range []struct {
		name string
		s    *Sink
		want string
	}{
		{"empty URL", &Sink{}, "URL is empty"},
		{"no scheme", &Sink{URL: "prometheus:9090/api/v1/write"}, "http://"},
		{"unknown version", &Sink{URL: "http://p/w", Version: 7}, "unknown version 7"},
		{"negative", &Sink{URL: "http://p/w", Capacity: -1}, "must not be negative"},
		{"backoffs", &Sink{URL: "http://p/w", MinBackoff: time.Minute, MaxBackoff: time.Second}, "MinBackoff"},
		{"CA file", &Sink{URL: "http://p/w", HTTPClient: httpconf.Config{TLS: httpconf.TLS{CAFile: missing}}}, "missing"},
		{"token file", &Sink{URL: "http://p/w", HTTPClient: httpconf.Config{Authorization: &httpconf.Authorization{CredentialsFile: missing}}}, "missing"},
		{"relabel", &Sink{URL: "http://p/w", WriteRelabel: []relabel.Rule{relabel.Keep([]string{"a"}, "(")}}, "WriteRelabel"},
	} {
		err := c.s.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Validate = %v, want an error with %q", c.name, err, c.want)
		}
		if serr := c.s.Start(context.Background(), ferry.NopReporter()); serr == nil {
			t.Errorf("%s: Start succeeded", c.name)
			_ = c.s.Close(context.Background())
		}
	}
	ok := &Sink{URL: "https://p/w", Version: V2, WriteRelabel: []relabel.Rule{relabel.Keep([]string{"a"}, "b")}}
	if err := ok.Validate(); err != nil {
		t.Errorf("valid sink: %v", err)
	}
}

// Samples of one series arrive in order although a batch spans shards and
// requests are sent concurrently.
func TestOrderPerSeriesAcrossShards(t *testing.T) {
	rc := &receiver{t: t}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	s := started(t, &Sink{URL: srv.URL, MinShards: 8, MaxSamplesPerSend: 7, BatchSendDeadline: 5 * time.Millisecond}, nil)
	var acks []<-chan error
	for i := range 20 {
		acks = append(acks, send(t, context.Background(), s, newSamples(50, 10, int64(i*100))))
	}
	for _, a := range acks {
		if err := wait(t, a, 10*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	closeSink(t, s)
	got := rc.samples()
	if len(got) != 1000 {
		t.Fatalf("got %d samples", len(got))
	}
	inOrder(t, got)
	rc.mu.Lock()
	for _, r := range rc.v1 {
		if len(r.Timeseries) > 7 {
			t.Errorf("request with %d samples, max 7", len(r.Timeseries))
		}
	}
	rc.mu.Unlock()
}

// A target's samples (its job and instance labels) go to one shard, in the
// order they came: every request holds each target's page whole, in order,
// whichever shards the targets share. Series without those labels are
// spread by their own hash (TestOrderPerSeriesAcrossShards).
func TestTargetTravelsTogether(t *testing.T) {
	rc := &receiver{t: t}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	s := started(t, &Sink{URL: srv.URL, MinShards: 8, MaxShards: 8, MaxSamplesPerSend: 1000, BatchSendDeadline: 5 * time.Millisecond}, nil)
	const targets, series = 12, 50
	var acks []<-chan error
	for round := range 3 {
		for tg := range targets {
			page := make([]ferry.Sample, series)
			for i := range page {
				page[i] = ferry.Sample{
					Labels: labels.FromStrings("__name__", "m", "instance", "host-"+strconv.Itoa(tg), "job", "node", "series", strconv.Itoa(i)),
					T:      int64(round),
				}
			}
			acks = append(acks, send(t, context.Background(), s, page))
		}
	}
	for _, a := range acks {
		if err := wait(t, a, 10*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	closeSink(t, s)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	total := 0
	for n, r := range rc.v1 {
		// Each request is whole pages: runs of one target, series 0 to 49.
		for i, ts := range r.Timeseries {
			var got string
			for _, l := range ts.Labels {
				if l.Name == "series" {
					got = l.Value
				}
			}
			if want := strconv.Itoa(i % series); got != want {
				t.Fatalf("request %d, time series %d: series %q, want %q: a page was split", n, i, got, want)
			}
			if i%series > 0 && ts.Labels[1].Value != r.Timeseries[i-1].Labels[1].Value {
				t.Fatalf("request %d, time series %d: %s follows %s within a page", n, i, ts.Labels[1].Value, r.Timeseries[i-1].Labels[1].Value)
			}
			total++
		}
	}
	if total != 3*targets*series {
		t.Errorf("got %d samples, want %d", total, 3*targets*series)
	}
}

// A target whose samples one shard cannot deliver in time is spread: its
// series are keyed by their own hash, so that more shards help it as they
// help many targets. Against a receiver that takes 20 ms a request, one
// target's pages come to be sent by concurrent requests, and every series
// still arrives in order, through the reshards on the way.
func TestBigTargetSpread(t *testing.T) {
	rc := &receiver{t: t}
	var inFlight, most atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		time.Sleep(20 * time.Millisecond) // a distant receiver is what this test is about
		rc.ServeHTTP(w, r)
	}))
	defer srv.Close()
	s := started(t, &Sink{URL: srv.URL, MaxShards: 8, Capacity: 40, MaxSamplesPerSend: 10, BatchSendDeadline: time.Millisecond, ReshardInterval: 100 * time.Millisecond}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const series = 200
	var acks []<-chan error
	for round := 0; most.Load() < 3; round++ {
		if ctx.Err() != nil {
			t.Fatalf("one target's requests never ran more than %d at a time (%d shards)", most.Load(), s.NumShards())
		}
		page := make([]ferry.Sample, series)
		for i := range page {
			page[i] = ferry.Sample{
				Labels: labels.FromStrings("__name__", "m", "instance", "ksm:8080", "job", "kube-state-metrics", "series", strconv.Itoa(i)),
				T:      int64(round),
			}
		}
		acks = append(acks, send(t, ctx, s, page))
	}
	for _, a := range acks {
		if err := wait(t, a, 10*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	shards := s.NumShards()
	closeSink(t, s)
	got := rc.samples()
	if len(got) != len(acks)*series {
		t.Fatalf("got %d samples, want %d", len(got), len(acks)*series)
	}
	inOrder(t, got)
	t.Logf("%d pages, %d shards, up to %d requests at once", len(acks), shards, most.Load())
}

// spreading.update, with one shard sending 1000 samples a second and a
// reconsideration every 10 s: a steady big target is spread at once and
// stays so; a target scraped once a minute is judged by its minute, not by
// the interval that holds its page; a target that stops is spread no
// longer, and then forgotten, as small targets are.
func TestSpreading(t *testing.T) {
	const perSample, every = 0.001, 10.0
	spread := func(sp spreading) []uint64 {
		keys := slices.Collect(maps.Keys(sp.set()))
		slices.Sort(keys)
		return keys
	}
	sp := spreading{}
	// Target 1 sends 6000 samples a second (7.2 shards with the spare);
	// target 2 a page of 6000 a minute (0.12 shards), all in one interval;
	// targets 3 to 1000 send 10 a second each.
	for i := range 36 {
		sent := map[uint64]int64{1: 60000}
		if i%6 == 0 {
			sent[2] = 6000
		}
		for k := uint64(3); k <= 1000; k++ {
			sent[k] = 100
		}
		changed := sp.update(sent, perSample, every, 10*time.Second)
		if got := spread(sp); !slices.Equal(got, []uint64{1}) || changed != (i == 0) {
			t.Fatalf("interval %d: spread %v (changed %v), want [1] (changed %v)", i, got, changed, i == 0)
		}
		if len(sp) > 2 {
			t.Fatalf("interval %d: %d targets tracked, want the two that matter", i, len(sp))
		}
	}
	// Target 1 stops: it keeps its stripes until its smoothed rate falls
	// below a quarter of a shard, within a couple of minutes.
	for i := 0; ; i++ {
		if i == 20 {
			t.Fatal("a target that stopped is still spread after 200 s")
		}
		if sp.update(nil, perSample, every, 10*time.Second) {
			if got := spread(sp); len(got) != 0 || i < 5 {
				t.Fatalf("after %d silent intervals: spread %v", i+1, got)
			}
			break
		}
	}
	for range 30 {
		sp.update(nil, perSample, every, 10*time.Second)
	}
	if len(sp) != 0 {
		t.Errorf("%d targets still tracked after 5 silent minutes", len(sp))
	}
}

// target reads job and instance as Get does, whatever comes before,
// between and after them, and at any length.
func TestTarget(t *testing.T) {
	long := strings.Repeat("x", 300)
	for _, ls := range []labels.Labels{
		labels.EmptyLabels(),
		labels.FromStrings("__name__", "m"),
		labels.FromStrings("job", "j"),
		labels.FromStrings("instance", "i"),
		labels.FromStrings("__name__", "m", "a", "1", "instance", "i", "job", "j", "mode", "idle"),
		labels.FromStrings("instance", "i", "jab", "x", "jobs", "y", "z", "z"),
		labels.FromStrings("instance", "i", "k", "v", "job2", "y"),
		labels.FromStrings("a", long, "instance", "i", "job", "j"),
		labels.FromStrings("instance", long, "job", "j"),
		labels.FromStrings("instance", "i", "job", long),
		labels.FromStrings(long, "v", "job", "j"),
		labels.FromStrings("instance", "", "job", "j", "~", "~"),
	} {
		job, instance := target(ls)
		if job != ls.Get("job") || instance != ls.Get("instance") {
			t.Errorf("%v: job %q, instance %q", ls, job, instance)
		}
	}
}

// A batch is acknowledged only after every shard holding part of it has
// delivered its part.
func TestAckAfterAllShards(t *testing.T) {
	var block atomic.Bool
	block.Store(true)
	release := make(chan struct{})
	rc := &receiver{t: t}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if block.Load() {
			<-release
		}
		rc.ServeHTTP(w, r)
	}))
	defer srv.Close()
	s := started(t, &Sink{URL: srv.URL, MinShards: 4, BatchSendDeadline: 5 * time.Millisecond}, nil)
	defer closeSink(t, s)
	ack := send(t, context.Background(), s, newSamples(40, 40, 1))
	select {
	case err := <-ack:
		t.Fatalf("acked (%v) before delivery", err)
	case <-time.After(100 * time.Millisecond):
	}
	block.Store(false)
	close(release)
	if err := wait(t, ack, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if n := len(rc.samples()); n != 40 {
		t.Errorf("got %d", n)
	}
}

// A full queue blocks Send until ctx ends; Send then acknowledges the
// batch with ctx's error once the queued part is done.
func TestBackpressure(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
		w.WriteHeader(204)
	}))
	defer srv.Close()
	s := started(t, &Sink{URL: srv.URL, Capacity: 10, MaxSamplesPerSend: 10, BatchSendDeadline: time.Hour}, nil)
	defer closeSink(t, s)
	defer close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	start := time.Now()
	err := s.Send(ctx, ferry.NewBatch(newSamples(100, 1, 1), func(err error) { done <- err }))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Send = %v, want deadline exceeded", err)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("Send returned after %v without blocking", d)
	}
}

func TestReshardUpAndDown(t *testing.T) {
	rc := &receiver{t: t}
	var slow atomic.Bool
	slow.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if slow.Load() {
			time.Sleep(20 * time.Millisecond) // a slow receiver is what this test is about
		}
		rc.ServeHTTP(w, r)
	}))
	defer srv.Close()
	s := started(t, &Sink{URL: srv.URL, MaxShards: 8, Capacity: 20, MaxSamplesPerSend: 10, BatchSendDeadline: time.Millisecond, ReshardInterval: 100 * time.Millisecond}, nil)
	defer closeSink(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	grew := false
	for i := 0; ctx.Err() == nil && !grew; i++ {
		send(t, ctx, s, newSamples(100, 100, int64(i)))
		grew = s.NumShards() > 1
	}
	if !grew {
		t.Fatal("shards did not grow under load with a slow receiver")
	}
	slow.Store(false)
	shrunk := false
	for i := 0; ctx.Err() == nil && !shrunk; i++ {
		time.Sleep(20 * time.Millisecond) // a trickle of samples: little traffic is what shrinks
		send(t, ctx, s, newSamples(1, 1, int64(100000+i)))
		shrunk = s.NumShards() == 1
	}
	if !shrunk {
		t.Errorf("shards did not shrink: %d", s.NumShards())
	}
}

// A sink that blocks its callers adds shards without waiting for the
// reshard interval, and does not shrink before a whole interval.
func TestReshardOnPressure(t *testing.T) {
	rc := &receiver{t: t}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(20 * time.Millisecond) // a slow receiver: the sink's callers block
		rc.ServeHTTP(w, r)
	}))
	defer srv.Close()
	s := started(t, &Sink{URL: srv.URL, MaxShards: 8, Capacity: 20, MaxSamplesPerSend: 10, BatchSendDeadline: time.Millisecond, ReshardInterval: time.Hour}, nil)
	defer closeSink(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	for i := 0; ctx.Err() == nil && s.NumShards() < 4; i++ {
		send(t, ctx, s, newSamples(100, 100, int64(i)))
	}
	if n := s.NumShards(); n < 4 {
		t.Fatalf("%d shards after %v of a blocked sink (reshard interval 1h)", n, time.Since(start))
	}
	t.Logf("4 shards after %v", time.Since(start))
}

// A receiver that handles one request at a time gains nothing from more
// shards: neither pressure nor the interval adds them once they do not
// raise the rate (Prometheus's formula alone would, as requests slow down).
// End to end, against a receiver that takes one request at a time: the
// shard count may jump once (the formula sees the backlog), but then settles
// low instead of running to MaxShards, where it stays without the ceiling.
// The test waits for that, with a generous deadline: how soon it settles,
// and whether a few more shards help for a while, depends on the CPU (on a
// busy machine the sender, not the receiver, may be the limit).
// TestResharderCeiling checks the decision itself with made-up intervals.
func TestReshardStopsAtReceiverLimit(t *testing.T) {
	for _, every := range []time.Duration{time.Hour, 500 * time.Millisecond} {
		t.Run(every.String(), func(t *testing.T) {
			rc := &receiver{t: t}
			var one sync.Mutex
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				one.Lock()
				defer one.Unlock()
				time.Sleep(20 * time.Millisecond) // a receiver that takes 20ms a request, one at a time
				rc.ServeHTTP(w, r)
			}))
			defer srv.Close()
			const maxShards, settled = 50, 10
			s := started(t, &Sink{URL: srv.URL, MaxShards: maxShards, Capacity: 20, MaxSamplesPerSend: 10, BatchSendDeadline: time.Millisecond, ReshardInterval: every}, nil)
			defer closeSink(t, s)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			// Settled: at most settled shards for a hold of 6 s after the
			// count grew; without the ceiling it grows by half at each
			// reconsideration (a second apart) and passes 10 within the hold.
			const hold = 6 * time.Second
			begin := time.Now()
			var low time.Time // since when the count is low, after it grew
			grown, n := false, 0
			for i := 0; ; i++ {
				send(t, ctx, s, newSamples(100, 100, int64(i)))
				n = s.NumShards()
				grown = grown || n > 1
				switch {
				case !grown || n > settled:
					low = time.Time{}
				case low.IsZero():
					low = time.Now()
				case time.Since(low) >= hold:
					return
				}
				if ctx.Err() != nil {
					t.Fatalf("%d shards after %v for a receiver that takes one request at a time (grown: %v), want at most %d for %v", n, time.Since(begin), grown, settled, hold)
				}
			}
		})
	}
}

// The decision of reshardLoop, with made-up one-second intervals and a
// sender that always has more to send than is delivered.
func TestResharderCeiling(t *testing.T) {
	run := func(deliver func(shards int) int64) (growths, last int) {
		r := resharder{every: time.Second, min: 1, max: 50}
		cur, backlog := 1, int64(0)
		for range 30 {
			const in = 5000
			out := min(deliver(cur), in+backlog)
			backlog += in - out
			// Each request waits for the others: the time spent sending is
			// the shard count's worth of seconds.
			nanos := int64(cur) * int64(time.Second)
			if n, ok := r.decide(reshardInterval{time.Second, in, out, nanos, backlog, cur, true}); ok {
				if n > cur {
					growths++
				}
				cur = n
			}
		}
		return growths, cur
	}
	// A receiver that takes a request at a time delivers 500 samples a
	// second whatever the shard count: one growth is tried, found useless
	// and undone, and not tried again.
	if growths, last := run(func(int) int64 { return 500 }); growths != 1 || last != 1 {
		t.Errorf("receiver at its limit: %d growths, %d shards at the end; want 1, then 1", growths, last)
	}
	// A receiver that scales: each shard delivers 500 a second, and the
	// count grows until the input is met.
	if _, last := run(func(n int) int64 { return int64(n) * 500 }); last < 10 {
		t.Errorf("receiver that scales: %d shards at the end, want at least 10", last)
	}
}

func FuzzParseCount(f *testing.F) {
	for _, s := range []string{"", "1", "120", "Thu, 01 Jan 2026 00:00:10 GMT", "99999999999999999999", "-5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if n, ok := parseCount(v); ok && n < 0 {
			t.Fatalf("negative count for %q", v)
		}
	})
}

// FuzzEncode checks that every body the encoders produce decodes with
// Prometheus's own types to the same samples.
// A series' labels are copied as they are held, its length written after
// them into the two bytes kept for it, or into one or three bytes with the
// labels moved: each size decodes to the labels it had.
func TestRawSeriesLength(t *testing.T) {
	huge := labels.NewScratchBuilder(0)
	huge.Add("__name__", "huge")
	for i := range 150 {
		huge.Add(fmt.Sprintf("l%03d", i), strings.Repeat("v", 120))
	}
	huge.Sort()
	for _, ls := range []labels.Labels{
		labels.FromStrings("__name__", "m"),                                // 1 byte
		labels.FromStrings("__name__", "m", "a", strings.Repeat("x", 100)), // 2 bytes
		labels.FromStrings("__name__", "m", "a", strings.Repeat("x", 127), "b", strings.Repeat("y", 127)),
		huge.Labels(), // 3 bytes
	} {
		for _, ts := range []int64{1, -1} {
			in := []ferry.Sample{{Labels: ls, T: ts, V: 2}, {Labels: labels.FromStrings("__name__", "next"), T: 3, V: 4}}
			var e encoder
			var req prompb.WriteRequest
			if err := req.Unmarshal(e.encodeV1(in, nil)); err != nil {
				t.Fatalf("%d labels: %v", ls.Len(), err)
			}
			if len(req.Timeseries) != 2 {
				t.Fatalf("%d labels: %d series", ls.Len(), len(req.Timeseries))
			}
			for i, s := range req.Timeseries {
				b := labels.NewScratchBuilder(0)
				for _, l := range s.Labels {
					b.Add(l.Name, l.Value)
				}
				if got := b.Labels(); !labels.Equal(got, in[i].Labels) || s.Samples[0].Timestamp != in[i].T || s.Samples[0].Value != in[i].V {
					t.Fatalf("%d labels, series %d: got %s at %d", ls.Len(), i, got, s.Samples[0].Timestamp)
				}
			}
		}
	}
}

func FuzzEncode(f *testing.F) {
	f.Add("a", "b", "c", 1.5, int64(1000), false)
	f.Add("__name__", "x", "", math.Float64frombits(staleNaN), int64(-1), true)
	// Names and values around the lengths where the v1 encoder stops
	// copying labels as they are held (128) and where their held length
	// takes four bytes (255).
	for _, n := range []int{126, 127, 128, 254, 255, 300} {
		f.Add(strings.Repeat("n", n), strings.Repeat("v", 127), strings.Repeat("w", n), 1.0, int64(1), false)
	}
	f.Fuzz(func(t *testing.T, n, v, v2 string, val float64, ts int64, useV2 bool) {
		ls := labels.FromStrings("__name__", "m", n+"_", v, "z", v2)
		in := []ferry.Sample{{Labels: ls, T: ts, V: val}, {Labels: ls, T: ts + 1, V: -val}}
		var e encoder
		var got []gotSample
		if useV2 {
			var req writev2.Request
			if err := req.Unmarshal(e.encodeV2(in, nil)); err != nil {
				t.Fatal(err)
			}
			for _, s := range req.Timeseries {
				b := labels.NewScratchBuilder(0)
				for i := 0; i+1 < len(s.LabelsRefs); i += 2 {
					b.Add(req.Symbols[s.LabelsRefs[i]], req.Symbols[s.LabelsRefs[i+1]])
				}
				got = append(got, gotSample{b.Labels().String(), s.Samples[0].Timestamp, math.Float64bits(s.Samples[0].Value)})
			}
		} else {
			var req prompb.WriteRequest
			if err := req.Unmarshal(e.encodeV1(in, nil)); err != nil {
				t.Fatal(err)
			}
			for _, s := range req.Timeseries {
				b := labels.NewScratchBuilder(0)
				for _, l := range s.Labels {
					b.Add(l.Name, l.Value)
				}
				got = append(got, gotSample{b.Labels().String(), s.Samples[0].Timestamp, math.Float64bits(s.Samples[0].Value)})
			}
		}
		if len(got) != 2 {
			t.Fatalf("decoded %d series", len(got))
		}
		for i, s := range in {
			want := gotSample{s.Labels.String(), s.T, math.Float64bits(s.V)}
			if got[i] != want {
				t.Fatalf("series %d: got %+v want %+v", i, got[i], want)
			}
		}
	})
}

func ExampleSink() {
	// A receiver that counts samples, standing in for Prometheus.
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		pb, _ := snappy.Decode(nil, body)
		var req prompb.WriteRequest
		_ = req.Unmarshal(pb)
		n.Add(int64(len(req.Timeseries)))
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()

	s := &Sink{URL: srv.URL + "/api/v1/write", ExternalLabels: labels.FromStrings("cluster", "eu1")}
	if err := s.Start(context.Background(), ferry.NopReporter()); err != nil {
		fmt.Println(err)
		return
	}
	done := make(chan error, 1)
	batch := ferry.NewBatch([]ferry.Sample{
		{Labels: labels.FromStrings("__name__", "up", "job", "node"), T: time.Now().UnixMilli(), V: 1},
	}, func(err error) { done <- err })
	_ = s.Send(context.Background(), batch)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = s.Close(ctx) // flushes the partial request
	fmt.Println("ack:", <-done, "samples:", n.Load())
	// Output: ack: <nil> samples: 1
}

// TestConformance runs the shared sink.Sink conformance harness against a
// Sink in front of a healthy fake receiver.
func TestConformance(t *testing.T) {
	var rc *receiver
	sinktest.Run(t, sinktest.Harness[ferry.Sample]{
		New: func(t *testing.T) sink.Sink[ferry.Sample] {
			rc = &receiver{t: t}
			srv := httptest.NewServer(rc)
			t.Cleanup(srv.Close)
			return &Sink{URL: srv.URL, MinShards: 3, BatchSendDeadline: 10 * time.Millisecond} // the harness starts it
		},
		Item: func(i int) ferry.Sample {
			return ferry.Sample{Labels: labels.FromStrings("__name__", "m", "i", strconv.Itoa(i)), T: int64(1000 + i), V: float64(i)}
		},
		Delivered: func() []ferry.Sample {
			rc.mu.Lock()
			defer rc.mu.Unlock()
			var out []ferry.Sample
			for _, req := range rc.v1 {
				for _, ts := range req.Timeseries {
					b := labels.NewScratchBuilder(len(ts.Labels))
					for _, l := range ts.Labels {
						b.Add(l.Name, l.Value)
					}
					for _, s := range ts.Samples {
						out = append(out, ferry.Sample{Labels: b.Labels(), T: s.Timestamp, V: s.Value})
					}
				}
			}
			return out
		},
		Key: func(s ferry.Sample) string { return fmt.Sprintf("%s@%d=%v", s.Labels, s.T, s.V) },
	})
}

func TestAuthAndTLS(t *testing.T) {
	for _, c := range authtest.Cases() {
		t.Run(c.Name, func(t *testing.T) {
			rc := &receiver{t: t}
			srv := c.Server(t, rc)
			s := started(t, &Sink{URL: srv.URL, HTTPClient: c.Config, BatchSendDeadline: 5 * time.Millisecond}, nil)
			defer closeSink(t, s)
			if err := wait(t, send(t, context.Background(), s, newSamples(2, 2, 1)), 5*time.Second); err != nil {
				t.Fatal(err)
			}
			if len(rc.samples()) != 2 {
				t.Errorf("got %d", len(rc.samples()))
			}
		})
	}
}
