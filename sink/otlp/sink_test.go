package otlp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/internal/poll"
	"github.com/ferrydev/ferry/internal/reptest"
	"github.com/ferrydev/ferry/sink"
	"github.com/ferrydev/ferry/sink/sinktest"
	srcotlp "github.com/ferrydev/ferry/source/otlp"
	"github.com/klauspost/compress/gzip"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

var t0 = time.Date(2026, 12, 4, 10, 0, 0, 123456789, time.UTC)

// fakeReceiver is an OTLP/HTTP endpoint that records request bodies and
// answers with what answer returns for the i-th request (nil: 200).
type fakeReceiver struct {
	mu     sync.Mutex
	bodies [][]byte
	answer func(i int, w http.ResponseWriter) bool // true: answered
	url    string
}

func newFake(t *testing.T, answer func(i int, w http.ResponseWriter) bool) *fakeReceiver {
	f := &fakeReceiver{answer: answer}
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var rd io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), 400)
				return
			}
			rd = zr
		}
		b, err := io.ReadAll(rd)
		if err != nil || r.Header.Get("Content-Type") != "application/x-protobuf" {
			http.Error(w, "bad request", 400)
			return
		}
		f.mu.Lock()
		i := len(f.bodies)
		f.bodies = append(f.bodies, b)
		f.mu.Unlock()
		if f.answer != nil && f.answer(i, w) {
			return
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	t.Cleanup(s.Close)
	f.url = s.URL + "/v1/logs"
	return f
}

func (f *fakeReceiver) requests() [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]byte(nil), f.bodies...)
}

func (f *fakeReceiver) logs(t *testing.T) []*logspb.ResourceLogs {
	t.Helper()
	var out []*logspb.ResourceLogs
	for _, b := range f.requests() {
		var ld logspb.LogsData
		if err := proto.Unmarshal(b, &ld); err != nil {
			t.Fatalf("request does not decode: %v", err)
		}
		out = append(out, ld.ResourceLogs...)
	}
	return out
}

func testEntries() []ferry.Entry {
	return []ferry.Entry{
		{
			Labels:    labels.FromStrings("service_name", "checkout", "k8s_namespace_name", "shop", "__path__", "/x"),
			Timestamp: t0, Line: "payment failed",
			Metadata: labels.FromStrings("severity_text", "ERROR", "severity_number", "17",
				"trace_id", "5b8efff798038103d269b633813fc60c", "span_id", "eee19b7ec3c1b174", "flags", "1",
				"http_method", "POST", "span_x", "not special"),
		},
		{Labels: labels.FromStrings("app", "other"), Timestamp: t0.Add(time.Second), Line: "second stream"},
		{
			Labels:    labels.FromStrings("service_name", "checkout", "k8s_namespace_name", "shop", "__path__", "/x"),
			Timestamp: t0.Add(2 * time.Second), Line: "same stream again",
			Metadata: labels.FromStrings("trace_id", "not hex"),
		},
	}
}

// send sends items through s as one batch and returns its outcome.
func send[T any](t *testing.T, s sink.Sink[T], items []T) error {
	t.Helper()
	acked := make(chan error, 1)
	if err := s.Send(context.Background(), ferry.NewBatch(items, func(err error) { acked <- err })); err != nil {
		t.Fatalf("Send: %v", err)
	}
	select {
	case err := <-acked:
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("batch not acknowledged")
	}
	return nil
}

func startLogs(t *testing.T, s *LogsSink, rep ferry.Reporter) {
	t.Helper()
	if rep == nil {
		rep = ferry.NopReporter()
	}
	if err := s.Start(context.Background(), rep); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
}

func TestLogsEncoding(t *testing.T) {
	for _, gz := range []bool{false, true} {
		t.Run(fmt.Sprint("gzip=", gz), func(t *testing.T) {
			f := newFake(t, nil)
			s := &LogsSink{Config: Config{URL: f.url, BatchWait: 10 * time.Millisecond, Gzip: gz}}
			startLogs(t, s, nil)
			if err := send(t, s, testEntries()); err != nil {
				t.Fatal(err)
			}
			rls := f.logs(t)
			if len(rls) != 2 {
				t.Fatalf("%d ResourceLogs, want 2 (one per stream)", len(rls))
			}
			attrs := map[string]string{}
			for _, kv := range rls[0].GetResource().GetAttributes() {
				attrs[kv.GetKey()] = kv.GetValue().GetStringValue()
			}
			if fmt.Sprint(attrs) != "map[k8s.namespace.name:shop service.name:checkout]" {
				t.Errorf("resource attributes %v", attrs)
			}
			recs := rls[0].GetScopeLogs()[0].GetLogRecords()
			if len(recs) != 2 {
				t.Fatalf("%d records in the first stream, want 2", len(recs))
			}
			r := recs[0]
			if r.GetTimeUnixNano() != uint64(t0.UnixNano()) || r.GetBody().GetStringValue() != "payment failed" ||
				r.GetSeverityText() != "ERROR" || r.GetSeverityNumber() != logspb.SeverityNumber_SEVERITY_NUMBER_ERROR ||
				fmt.Sprintf("%x", r.GetTraceId()) != "5b8efff798038103d269b633813fc60c" || fmt.Sprintf("%x", r.GetSpanId()) != "eee19b7ec3c1b174" ||
				r.GetFlags() != 1 {
				t.Errorf("record fields: %v", r)
			}
			var keys []string
			for _, kv := range r.GetAttributes() {
				keys = append(keys, kv.GetKey()+"="+kv.GetValue().GetStringValue())
			}
			if strings.Join(keys, ",") != "http_method=POST,span_x=not special" {
				t.Errorf("attributes %v", keys)
			}
			if a := recs[1].GetAttributes(); len(a) != 1 || a[0].GetKey() != "trace_id" || len(recs[1].GetTraceId()) != 0 {
				t.Errorf("an invalid trace_id must stay an attribute: %v", recs[1])
			}
			// proto.Marshal of the decoded message must give the same
			// bytes: the hand encoding is canonical.
			for _, b := range f.requests() {
				var ld logspb.LogsData
				proto.Unmarshal(b, &ld)
				again, _ := proto.MarshalOptions{Deterministic: true}.Marshal(&ld)
				if string(again) != string(b) {
					t.Errorf("encoding differs from proto.Marshal's:\n%x\n%x", b, again)
				}
			}
		})
	}
}

// TestLogsRoundTrip sends entries through the sink to source/otlp's
// receiver: they arrive as they left.
func TestLogsRoundTrip(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srvURL, out := runReceiver[ferry.Entry](t, ctx, &srcotlp.LogsReceiver{})
	var got []ferry.Entry
	done := make(chan struct{})
	go func() {
		defer close(done)
		for len(got) < 3 {
			b := <-out
			got = append(got, b.Items...)
			b.Done(nil)
		}
	}()
	s := &LogsSink{Config: Config{URL: srvURL + "/v1/logs", BatchWait: 10 * time.Millisecond, MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond}}
	startLogs(t, s, nil)
	if err := send(t, s, testEntries()); err != nil {
		t.Fatal(err)
	}
	<-done
	want := testEntries()
	// The receiver groups by stream, drops "__" labels and adds
	// service_name where a resource has none.
	want[1], want[2] = want[2], want[1]
	for i := range want {
		want[i].Labels = labels.NewBuilder(want[i].Labels).Del("__path__").Labels()
	}
	// app is no promoted attribute: it comes back as metadata.
	want[2].Labels = labels.FromStrings("service_name", "unknown_service")
	want[2].Metadata = labels.FromStrings("app", "other")
	for i := range want {
		g, w := got[i], want[i]
		if !labels.Equal(g.Labels, w.Labels) || !g.Timestamp.Equal(w.Timestamp) || g.Line != w.Line || !labels.Equal(g.Metadata, w.Metadata) {
			t.Errorf("entry %d:\n got %v %v %q %v\nwant %v %v %q %v", i, g.Labels, g.Timestamp, g.Line, g.Metadata, w.Labels, w.Timestamp, w.Line, w.Metadata)
		}
	}
}

// receiver is what source/otlp's receivers share, for the round trips.
type receiver[T any] interface {
	http.Handler
	Start(context.Context, ferry.Reporter) error
	Run(context.Context, chan<- ferry.Batch[T]) error
}

// runReceiver starts r on a test server and runs it until ctx is done. It
// returns the server's URL and the channel r emits on.
func runReceiver[T any](t *testing.T, ctx context.Context, r receiver[T]) (string, <-chan ferry.Batch[T]) {
	t.Helper()
	if err := r.Start(context.Background(), ferry.NopReporter()); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	out := make(chan ferry.Batch[T], 1)
	go r.Run(ctx, out)
	return srv.URL, out
}

func answerStatus(status int, header ...string) func(int, http.ResponseWriter) {
	return func(_ int, w http.ResponseWriter) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		http.Error(w, "answer "+fmt.Sprint(status), status)
	}
}

func TestLogsDelivery(t *testing.T) {
	partial := protowire.AppendTag(nil, 1, protowire.BytesType)
	ps := protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 2)
	ps = protowire.AppendString(protowire.AppendTag(ps, 2, protowire.BytesType), "too old")
	partial = protowire.AppendBytes(partial, ps)
	for _, tc := range []struct {
		name      string
		answer    func(i int, w http.ResponseWriter) bool
		requests  int
		permanent bool
		ok        bool
		dropped   string
		n         int
	}{
		{"retry 503 with Retry-After", func(i int, w http.ResponseWriter) bool {
			if i == 0 {
				answerStatus(503, "Retry-After", "1")(i, w)
				return true
			}
			return false
		}, 2, false, true, "", 0},
		{"retry 429, 502, 504", func(i int, w http.ResponseWriter) bool {
			if i < 3 {
				answerStatus([]int{429, 502, 504}[i])(i, w)
				return true
			}
			return false
		}, 4, false, true, "", 0},
		{"400 is permanent", func(i int, w http.ResponseWriter) bool { answerStatus(400)(i, w); return true }, 1, true, false, "http_400", 3},
		{"500 is permanent", func(i int, w http.ResponseWriter) bool { answerStatus(500)(i, w); return true }, 1, true, false, "http_500", 3},
		{"partial success", func(i int, w http.ResponseWriter) bool {
			w.Header().Set("Content-Type", "application/x-protobuf")
			w.Write(partial)
			return true
		}, 1, true, false, ReasonPartialSuccess, 2},
		{"retries exhausted", func(i int, w http.ResponseWriter) bool { answerStatus(503)(i, w); return true }, 4, false, false, ReasonRetriesExhausted, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &reptest.Reporter{}
			f := newFake(t, tc.answer)
			s := &LogsSink{Config: Config{URL: f.url, BatchWait: 10 * time.Millisecond, MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Second, MaxRetries: 3}}
			startLogs(t, s, rec)
			start := time.Now()
			err := send(t, s, testEntries())
			switch {
			case tc.ok && err != nil:
				t.Fatalf("outcome %v, want nil", err)
			case !tc.ok && err == nil:
				t.Fatal("outcome nil, want an error")
			case !tc.ok && ferry.IsPermanent(err) != tc.permanent:
				t.Fatalf("outcome %v: permanent = %v, want %v", err, ferry.IsPermanent(err), tc.permanent)
			}
			if n := len(f.requests()); n != tc.requests {
				t.Errorf("%d requests, want %d", n, tc.requests)
			}
			if tc.dropped != "" && rec.Drops(tc.dropped) != tc.n {
				t.Errorf("dropped %v, want %d %s", rec.AllDrops(), tc.n, tc.dropped)
			}
			if strings.Contains(tc.name, "Retry-After") && time.Since(start) < time.Second {
				t.Errorf("retried after %v, before Retry-After's 1s", time.Since(start))
			}
		})
	}
}

func TestLogsBatching(t *testing.T) {
	f := newFake(t, nil)
	s := &LogsSink{Config: Config{URL: f.url, BatchSize: 10, BatchWait: time.Hour}}
	startLogs(t, s, nil)
	items := make([]ferry.Entry, 25)
	for i := range items {
		items[i] = ferry.Entry{Labels: labels.FromStrings("app", "a"), Timestamp: t0, Line: fmt.Sprint(i)}
	}
	acked := make(chan error, 1)
	s.Send(context.Background(), ferry.NewBatch(items, func(err error) { acked <- err }))
	// Two full requests go at once; the rest waits for Close.
	poll.Until(t, func() bool { return len(f.requests()) >= 2 }, "two requests")
	select {
	case err := <-acked:
		t.Fatalf("batch acknowledged (%v) before its last 5 entries were sent", err)
	default:
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-acked; err != nil {
		t.Fatal(err)
	}
	var n []int
	for _, rl := range f.logs(t) {
		n = append(n, len(rl.GetScopeLogs()[0].GetLogRecords()))
	}
	if fmt.Sprint(n) != "[10 10 5]" {
		t.Errorf("requests of %v records, want [10 10 5]", n)
	}
}

func TestLifecycle(t *testing.T) {
	s := &LogsSink{Config: Config{URL: "http://127.0.0.1:1/v1/logs"}}
	err := s.Send(context.Background(), ferry.NewBatch(testEntries(), nil))
	if !errors.Is(err, ErrNotStarted) {
		t.Errorf("Send before Start: %v", err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Errorf("Close without Start: %v", err)
	}
	err = s.Send(context.Background(), ferry.NewBatch(testEntries(), nil))
	if !errors.Is(err, ErrClosed) || !errors.Is(err, ferry.ErrClosed) {
		t.Errorf("Send after Close: %v", err)
	}
	if err := s.Start(context.Background(), ferry.NopReporter()); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Close: %v", err)
	}
	for _, bad := range []Config{{}, {URL: "ftp://x"}, {URL: "http://x", BatchSize: -1}, {URL: "http://x", MinBackoff: time.Hour, MaxBackoff: time.Second}} {
		if (&LogsSink{Config: bad}).Validate() == nil {
			t.Errorf("%+v: Validate passed", bad)
		}
		if (&MetricsSink{Config: bad}).Start(context.Background(), ferry.NopReporter()) == nil {
			t.Errorf("%+v: Start passed", bad)
		}
	}
}

// TestCloseDeadline checks that Close gives up at its deadline on a
// receiver that keeps failing, acknowledging with ErrClosed.
func TestCloseDeadline(t *testing.T) {
	f := newFake(t, func(i int, w http.ResponseWriter) bool { answerStatus(503)(i, w); return true })
	s := &LogsSink{Config: Config{URL: f.url, BatchWait: time.Millisecond, MinBackoff: time.Hour, MaxBackoff: time.Hour}}
	startLogs(t, s, nil)
	acked := make(chan error, 1)
	s.Send(context.Background(), ferry.NewBatch(testEntries(), func(err error) { acked <- err }))
	poll.Until(t, func() bool { return len(f.requests()) > 0 }, "a request")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.Close(ctx); err == nil {
		t.Error("Close met its deadline with a request failing")
	}
	if err := <-acked; !errors.Is(err, ErrClosed) {
		t.Errorf("outcome %v, want ErrClosed", err)
	}
	if err := s.Send(context.Background(), ferry.NewBatch(testEntries(), nil)); !errors.Is(err, ErrClosed) {
		t.Errorf("Send after Close: %v", err)
	}
}

func TestConformance(t *testing.T) {
	var last *fakeReceiver
	sinktest.Run(t, sinktest.Harness[ferry.Entry]{
		New: func(t *testing.T) sink.Sink[ferry.Entry] {
			last = newFake(t, nil)
			// The harness starts the sink itself (and checks Send before Start).
			return &LogsSink{Config: Config{URL: last.url, BatchWait: 20 * time.Millisecond, BatchSize: 30}}
		},
		Item: func(i int) ferry.Entry {
			return ferry.Entry{Labels: labels.FromStrings("app", "c", "shard", fmt.Sprint(i%3)), Timestamp: t0.Add(time.Duration(i)), Line: fmt.Sprint("line ", i)}
		},
		Delivered: func() []ferry.Entry {
			var out []ferry.Entry
			for _, b := range last.requests() {
				var ld logspb.LogsData
				proto.Unmarshal(b, &ld)
				for _, rl := range ld.ResourceLogs {
					for _, r := range rl.GetScopeLogs()[0].GetLogRecords() {
						out = append(out, ferry.Entry{Timestamp: time.Unix(0, int64(r.GetTimeUnixNano())), Line: r.GetBody().GetStringValue()})
					}
				}
			}
			return out
		},
		Key: func(e ferry.Entry) string { return fmt.Sprint(e.Timestamp.UnixNano(), e.Line) },
	})
}

func testSamples() []ferry.Sample {
	ms := t0.UnixMilli()
	return []ferry.Sample{
		{Labels: labels.FromStrings("__name__", "http_requests_total", "job", "api", "instance", "pod-1", "code", "200"), T: ms, V: 5},
		{Labels: labels.FromStrings("__name__", "temperature_celsius", "job", "api", "instance", "pod-1"), T: ms, V: 21.5},
		{Labels: labels.FromStrings("__name__", "http_requests_total", "job", "api", "instance", "pod-1", "code", "500"), T: ms, V: 1},
		{Labels: labels.FromStrings("__name__", "up", "job", "node"), T: ms, V: math.Float64frombits(value.StaleNaN)},
	}
}

func TestMetricsEncoding(t *testing.T) {
	f := newFake(t, nil)
	s := &MetricsSink{Config: Config{URL: f.url, BatchWait: 10 * time.Millisecond}}
	if err := s.Start(context.Background(), ferry.NopReporter()); err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	if err := send[ferry.Sample](t, s, testSamples()); err != nil {
		t.Fatal(err)
	}
	var md metricspb.MetricsData
	if err := proto.Unmarshal(f.requests()[0], &md); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, rm := range md.ResourceMetrics {
		var res []string
		for _, kv := range rm.GetResource().GetAttributes() {
			res = append(res, kv.GetKey()+"="+kv.GetValue().GetStringValue())
		}
		for _, m := range rm.GetScopeMetrics()[0].GetMetrics() {
			kind, pts := "gauge", m.GetGauge().GetDataPoints()
			if m.GetSum() != nil {
				kind, pts = fmt.Sprintf("sum(monotonic=%v,temporality=%d)", m.GetSum().GetIsMonotonic(), m.GetSum().GetAggregationTemporality()), m.GetSum().GetDataPoints()
			}
			for _, p := range pts {
				var attrs []string
				for _, kv := range p.GetAttributes() {
					attrs = append(attrs, kv.GetKey()+"="+kv.GetValue().GetStringValue())
				}
				got = append(got, fmt.Sprintf("%v %s %s %v %d %v flags=%d", res, m.GetName(), kind, attrs, p.GetTimeUnixNano(), p.GetAsDouble(), p.GetFlags()))
			}
		}
	}
	sort.Strings(got)
	ns := t0.UnixMilli() * 1e6
	want := []string{
		fmt.Sprintf("[service.name=api service.instance.id=pod-1] http_requests_total sum(monotonic=true,temporality=2) [code=200] %d 5 flags=0", ns),
		fmt.Sprintf("[service.name=api service.instance.id=pod-1] http_requests_total sum(monotonic=true,temporality=2) [code=500] %d 1 flags=0", ns),
		fmt.Sprintf("[service.name=api service.instance.id=pod-1] temperature_celsius gauge [] %d 21.5 flags=0", ns),
		fmt.Sprintf("[service.name=node] up gauge [] %d 0 flags=1", ns),
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestMetricsRoundTrip sends samples through the sink to source/otlp's
// receiver: they arrive with the same names and labels.
func TestMetricsRoundTrip(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srvURL, out := runReceiver[ferry.Sample](t, ctx, &srcotlp.MetricsReceiver{})
	got := make(chan []ferry.Sample, 1)
	go func() {
		b := <-out
		got <- b.Items
		b.Done(nil)
	}()
	s := &MetricsSink{Config: Config{URL: srvURL + "/v1/metrics", BatchWait: 10 * time.Millisecond, MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond}}
	if err := s.Start(context.Background(), ferry.NopReporter()); err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	if err := send[ferry.Sample](t, s, testSamples()); err != nil {
		t.Fatal(err)
	}
	format := func(ss []ferry.Sample) string {
		var out []string
		for _, s := range ss {
			out = append(out, fmt.Sprintf("%v %d %v", s.Labels, s.T, value.IsStaleNaN(s.V) || s.V == 5 || s.V == 21.5 || s.V == 1))
		}
		sort.Strings(out)
		return strings.Join(out, "\n")
	}
	if g, w := format(<-got), format(testSamples()); g != w {
		t.Errorf("got:\n%s\nwant:\n%s", g, w)
	}
}
