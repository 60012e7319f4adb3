package otlp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/internal/poll"
	"github.com/ferrydev/ferry/internal/receiver/receivertest"
	"github.com/ferrydev/ferry/internal/reptest"
	"github.com/klauspost/compress/gzip"
	"github.com/prometheus/prometheus/model/labels"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/protobuf/encoding/protowire"
)

var (
	t0      = time.Date(2026, 12, 4, 10, 0, 0, 123456789, time.UTC)
	traceID = []byte{0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03, 0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f, 0xc6, 0x0c}
	spanID  = []byte{0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74}
)

// testLogs is a request with two resources, the second without
// service.name, a non-string body and a record with only an observed time.
func testLogs() *logspb.LogsData {
	return &logspb.LogsData{ResourceLogs: []*logspb.ResourceLogs{
		{
			Resource: &resourcepb.Resource{Attributes: append(kvs(
				"service.name", "checkout",
				"k8s.namespace.name", "shop",
				"host.name", "node-1"),
				kv("process.pid", &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: 42}}))},
			ScopeLogs: []*logspb.ScopeLogs{{
				Scope: &commonpb.InstrumentationScope{Name: "app.logger", Version: "1.2"},
				LogRecords: []*logspb.LogRecord{
					{
						TimeUnixNano:   uint64(t0.UnixNano()),
						SeverityNumber: logspb.SeverityNumber_SEVERITY_NUMBER_ERROR,
						SeverityText:   "ERROR",
						Body:           str("payment failed"),
						Attributes:     kvs("http.method", "POST", "host.name", "override"),
						TraceId:        traceID,
						SpanId:         spanID,
						Flags:          1,
					},
					{
						ObservedTimeUnixNano: uint64(t0.Add(time.Second).UnixNano()),
						Body: &commonpb.AnyValue{Value: &commonpb.AnyValue_KvlistValue{KvlistValue: &commonpb.KeyValueList{
							Values: []*commonpb.KeyValue{kv("msg", str("hi")), kv("n", &commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: 1.5}})},
						}}},
					},
				},
			}},
		},
		{
			Resource: &resourcepb.Resource{Attributes: kvs("deployment.environment", "prod")},
			ScopeLogs: []*logspb.ScopeLogs{{LogRecords: []*logspb.LogRecord{
				{TimeUnixNano: uint64(t0.UnixNano()), Body: str("plain")},
			}}},
		},
	}}
}

// wantLogs is what testLogs becomes with the default rule.
func wantLogs() []ferry.Entry {
	stream1 := labels.FromStrings("service_name", "checkout", "k8s_namespace_name", "shop")
	return []ferry.Entry{
		{
			Labels: stream1, Timestamp: t0, Line: "payment failed",
			Metadata: labels.FromStrings(
				"host_name", "override", "process_pid", "42",
				"scope_name", "app.logger", "scope_version", "1.2",
				"http_method", "POST",
				"severity_text", "ERROR", "severity_number", "17",
				"trace_id", "5b8efff798038103d269b633813fc60c", "span_id", "eee19b7ec3c1b174",
				"flags", "1"),
		},
		{
			Labels: stream1, Timestamp: t0.Add(time.Second), Line: `{"msg":"hi","n":1.5}`,
			Metadata: labels.FromStrings("host_name", "node-1", "process_pid", "42", "scope_name", "app.logger", "scope_version", "1.2"),
		},
		{
			Labels:    labels.FromStrings("deployment_environment", "prod", "service_name", "unknown_service"),
			Timestamp: t0, Line: "plain", Metadata: labels.EmptyLabels(),
		},
	}
}

// testLogsJSON is testLogs in OTLP JSON: hex IDs, enums as numbers,
// 64-bit integers as strings, plus unknown fields.
const testLogsJSON = `{"resourceLogs":[
 {"resource":{"attributes":[
   {"key":"service.name","value":{"stringValue":"checkout"}},
   {"key":"k8s.namespace.name","value":{"stringValue":"shop"}},
   {"key":"host.name","value":{"stringValue":"node-1"}},
   {"key":"process.pid","value":{"intValue":"42"}}]},
  "scopeLogs":[{"scope":{"name":"app.logger","version":"1.2"},"logRecords":[
   {"timeUnixNano":"1796378400123456789","severityNumber":17,"severityText":"ERROR",
    "body":{"stringValue":"payment failed"},
    "attributes":[{"key":"http.method","value":{"stringValue":"POST"}},{"key":"host.name","value":{"stringValue":"override"}}],
    "traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","flags":1,
    "someFutureField":{"x":[1,2]}},
   {"observedTimeUnixNano":"1796378401123456789",
    "body":{"kvlistValue":{"values":[{"key":"msg","value":{"stringValue":"hi"}},{"key":"n","value":{"doubleValue":1.5}}]}}}]}]},
 {"resource":{"attributes":[{"key":"deployment.environment","value":{"stringValue":"prod"}}]},
  "scopeLogs":[{"logRecords":[{"timeUnixNano":1796378400123456789,"body":{"stringValue":"plain"}}]}]}],
 "unknownTopLevel":true}`

func startLogs(t *testing.T, r *LogsReceiver, rep ferry.Reporter) string {
	t.Helper()
	return startReceiver(t, r, rep, LogsPath)
}

func checkEntries(t *testing.T, got, want []ferry.Entry) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d entries, want %d:\n%v", len(got), len(want), got)
	}
	for i := range want {
		g, w := got[i], want[i]
		if !labels.Equal(g.Labels, w.Labels) || !g.Timestamp.Equal(w.Timestamp) || g.Line != w.Line || !labels.Equal(g.Metadata, w.Metadata) {
			t.Errorf("entry %d:\n got %v %v %q %v\nwant %v %v %q %v", i, g.Labels, g.Timestamp, g.Line, g.Metadata, w.Labels, w.Timestamp, w.Line, w.Metadata)
		}
	}
}

func TestLogsEncodings(t *testing.T) {
	proto := mustMarshal(t, testLogs())
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(proto)
	zw.Close()
	for _, tc := range []struct {
		name, ctype, encoding string
		body                  []byte
	}{
		{"protobuf", "application/x-protobuf", "", proto},
		{"protobuf+gzip", "application/x-protobuf", "gzip", gz.Bytes()},
		{"json", "application/json", "", []byte(testLogsJSON)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &LogsReceiver{}
			url := startLogs(t, r, nil)
			c, _ := runSource(t, &r.c, r.Run, 1, true, nil)
			resp := post(t, url, tc.ctype, tc.encoding, tc.body)
			if resp.status != http.StatusOK {
				t.Fatalf("status %d: %s", resp.status, resp.body)
			}
			if ct := resp.header.Get("Content-Type"); ct != tc.ctype {
				t.Errorf("response Content-Type %q, want %q", ct, tc.ctype)
			}
			wantBody := "{}"
			if tc.ctype != "application/json" {
				wantBody = ""
			}
			if string(resp.body) != wantBody {
				t.Errorf("response body %q, want %q", resp.body, wantBody)
			}
			checkEntries(t, c.got(), wantLogs())
		})
	}
}

func TestLogsLabelRule(t *testing.T) {
	r := &LogsReceiver{ResourceLabels: []string{"host.name"}, Labels: labels.FromStrings("source", "otlp")}
	url := startLogs(t, r, nil)
	c, _ := runSource(t, &r.c, r.Run, 1, true, nil)
	if resp := post(t, url, "application/x-protobuf", "", mustMarshal(t, testLogs())); resp.status != 200 {
		t.Fatalf("status %d: %s", resp.status, resp.body)
	}
	got := c.got()
	if want := labels.FromStrings("host_name", "node-1", "source", "otlp"); !labels.Equal(got[0].Labels, want) {
		t.Errorf("labels %v, want %v", got[0].Labels, want)
	}
	if v := got[0].Metadata.Get("service_name"); v != "checkout" {
		t.Errorf("service_name in metadata = %q, want checkout", v)
	}
	if want := labels.FromStrings("source", "otlp"); !labels.Equal(got[2].Labels, want) {
		t.Errorf("labels of a resource without promoted attributes %v, want %v", got[2].Labels, want)
	}
}

func TestLogsBadRequests(t *testing.T) {
	r := &LogsReceiver{Limits: Limits{MaxBodySize: 1000, MaxDecodedSize: 5000}}
	url := startLogs(t, r, nil)
	c, _ := runSource(t, &r.c, r.Run, 1, true, nil)
	var bomb bytes.Buffer
	zw := gzip.NewWriter(&bomb)
	zw.Write(make([]byte, 10000))
	zw.Close()
	for _, tc := range []struct {
		name, ctype, encoding string
		body                  []byte
		status                int
		msg                   string
	}{
		{"truncated protobuf", "application/x-protobuf", "", mustMarshal(t, testLogs())[:50], 400, "malformed logs request"},
		{"length past the end", "application/x-protobuf", "", []byte{0x0a, 0x05, 0x01}, 400, "malformed"},
		{"bad json", "application/json", "", []byte(`{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":"x"}]}]}]}`), 400, "malformed"},
		{"bad trace id", "application/json", "", []byte(`{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"traceId":"zz8efff798038103d269b633813fc60c"}]}]}]}`), 400, "traceId"},
		{"too large", "application/x-protobuf", "", make([]byte, 1001), 413, "larger than 1000"},
		{"gzip bomb", "application/x-protobuf", "gzip", bomb.Bytes(), 413, "decompresses to more than 5000"},
		{"bad gzip", "application/x-protobuf", "gzip", []byte("not gzip"), 400, "gzip"},
		{"content type", "text/plain", "", []byte("x"), 415, "Content-Type"},
		{"content encoding", "application/x-protobuf", "br", []byte("x"), 415, "Content-Encoding"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := post(t, url, tc.ctype, tc.encoding, tc.body)
			if resp.status != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.status, tc.status, resp.body)
			}
			if !strings.Contains(string(resp.body), tc.msg) {
				t.Errorf("body %q does not say %q", resp.body, tc.msg)
			}
		})
	}
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: status %d, want 405", resp.StatusCode)
	}
	if n := len(c.got()); n != 0 {
		t.Errorf("%d entries emitted from bad requests", n)
	}
}

func TestLogsLifecycle(t *testing.T) {
	ctx := context.Background()
	r := &LogsReceiver{}
	if err := r.Run(ctx, nil); !errors.Is(err, ErrNotStarted) || !errors.Is(err, ferry.ErrNotStarted) {
		t.Errorf("Run before Start: %v, want ErrNotStarted", err)
	}
	r.Start(ctx, ferry.NopReporter())
	for range 2 {
		if err := r.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Run(ctx, nil); !errors.Is(err, ErrClosed) || !errors.Is(err, ferry.ErrClosed) {
		t.Errorf("Run after Close: %v, want ErrClosed", err)
	}
	if err := r.Start(ctx, ferry.NopReporter()); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Close: %v, want ErrClosed", err)
	}
}

func TestLogsNotRunning(t *testing.T) {
	r := &LogsReceiver{}
	url := newServer(t, r).URL
	resp := post(t, url, "application/x-protobuf", "", mustMarshal(t, testLogs()))
	if resp.status != http.StatusServiceUnavailable || resp.header.Get("Retry-After") == "" {
		t.Errorf("before Start: status %d, Retry-After %q; want 503 with Retry-After", resp.status, resp.header.Get("Retry-After"))
	}
	url = startLogs(t, r, nil)
	resp = post(t, url, "application/x-protobuf", "", mustMarshal(t, testLogs()))
	if resp.status != http.StatusServiceUnavailable || resp.header.Get("Retry-After") != "1" {
		t.Errorf("before Run: status %d, Retry-After %q; want 503 with Retry-After 1", resp.status, resp.header.Get("Retry-After"))
	}
}

func TestLogsBackpressure(t *testing.T) {
	rec := &reptest.Reporter{}
	r := &LogsReceiver{Limits: Limits{FullWait: -1, RetryAfter: 3 * time.Second}}
	url := startLogs(t, r, rec)
	runSource(t, &r.c, r.Run, 0, false, nil) // nobody reads: the pipeline is full
	resp := post(t, url, "application/x-protobuf", "", mustMarshal(t, testLogs()))
	if resp.status != http.StatusTooManyRequests || resp.header.Get("Retry-After") != "3" {
		t.Fatalf("status %d, Retry-After %q; want 429 with Retry-After 3: %s", resp.status, resp.header.Get("Retry-After"), resp.body)
	}
	if n := rec.Drops("pipeline_full"); n != 3 {
		t.Errorf("pipeline_full drops = %d, want 3", n)
	}
}

func TestLogsAcknowledgement(t *testing.T) {
	for _, tc := range []struct {
		name    string
		outcome error
		status  int
		check   func(t *testing.T, resp response)
	}{
		{"delivered", nil, 200, nil},
		{"retryable", errors.New("sink down"), 503, func(t *testing.T, resp response) {
			if resp.header.Get("Retry-After") == "" {
				t.Error("no Retry-After")
			}
		}},
		{"permanent", ferry.Permanentf("too old"), 200, func(t *testing.T, resp response) {
			// ExportLogsServiceResponse{partial_success{rejected_log_records: 3, error_message}}
			rejected, msg := decodePartial(t, resp.body)
			if rejected != 3 || !strings.Contains(msg, "too old") {
				t.Errorf("partial success (%d, %q), want (3, …too old…)", rejected, msg)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &LogsReceiver{}
			url := startLogs(t, r, nil)
			runSource(t, &r.c, r.Run, 1, true, func(b ferry.Batch[ferry.Entry]) { b.Done(tc.outcome) })
			resp := post(t, url, "application/x-protobuf", "", mustMarshal(t, testLogs()))
			if resp.status != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.status, tc.status, resp.body)
			}
			if tc.check != nil {
				tc.check(t, resp)
			}
		})
	}
	t.Run("timeout", func(t *testing.T) {
		r := &LogsReceiver{Limits: Limits{RequestTimeout: 50 * time.Millisecond}}
		url := startLogs(t, r, nil)
		held := make(chan ferry.Batch[ferry.Entry], 1)
		runSource(t, &r.c, r.Run, 1, true, func(b ferry.Batch[ferry.Entry]) { held <- b })
		resp := post(t, url, "application/json", "", []byte(testLogsJSON))
		if resp.status != http.StatusServiceUnavailable || resp.header.Get("Retry-After") == "" {
			t.Fatalf("status %d, want 503 with Retry-After: %s", resp.status, resp.body)
		}
		if !strings.HasPrefix(string(resp.body), `{"code":14,"message":`) {
			t.Errorf("JSON error body %s is not a google.rpc.Status", resp.body)
		}
		(<-held).Done(nil) // a late acknowledgement goes nowhere
	})
}

// decodePartial reads an ExportLogsServiceResponse's partial_success.
func decodePartial(t *testing.T, b []byte) (int64, string) {
	t.Helper()
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 || num != 1 || typ != protowire.BytesType {
		t.Fatalf("response %x has no partial_success", b)
	}
	ps, _ := protowire.ConsumeBytes(b[n:])
	var rejected int64
	var msg string
	for len(ps) > 0 {
		num, _, n := protowire.ConsumeTag(ps)
		ps = ps[n:]
		switch num {
		case 1:
			v, n := protowire.ConsumeVarint(ps)
			rejected, ps = int64(v), ps[n:]
		case 2:
			v, n := protowire.ConsumeBytes(ps)
			msg, ps = string(v), ps[n:]
		default:
			t.Fatalf("unexpected field %d", num)
		}
	}
	return rejected, msg
}

// TestLogsRunWaitsForRequests checks that a request blocked on a full
// pipeline when Run ends is answered 503 and that Run returns only after
// it stopped trying to send.
func TestLogsRunWaitsForRequests(t *testing.T) {
	r := &LogsReceiver{Limits: Limits{FullWait: time.Minute}}
	url := startLogs(t, r, nil)
	_, stop := runSource(t, &r.c, r.Run, 0, false, nil)
	done := make(chan response, 1)
	go func() { done <- post(t, url, "application/x-protobuf", "", mustMarshal(t, testLogs())) }()
	poll.Until(t, func() bool { return r.c.outlet.Sending() > 0 }, "the request to wait for the pipeline")
	stop()
	if resp := <-done; resp.status != http.StatusServiceUnavailable {
		t.Errorf("status %d, want 503", resp.status)
	}
}

func TestServerSharesAddress(t *testing.T) {
	srv := &Server{Addr: "127.0.0.1:0"}
	logs := &LogsReceiver{Server: srv}
	metrics := &MetricsReceiver{Server: srv}
	ctx := context.Background()
	if err := logs.Start(ctx, ferry.NopReporter()); err != nil {
		t.Fatal(err)
	}
	if err := metrics.Start(ctx, ferry.NopReporter()); err != nil {
		t.Fatal(err)
	}
	addr := srv.ListenAddr().String()
	lc, _ := runSource(t, &logs.c, logs.Run, 1, true, nil)
	mc, _ := runSource(t, &metrics.c, metrics.Run, 1, true, nil)
	if resp := post(t, "http://"+addr+LogsPath, "application/x-protobuf", "", mustMarshal(t, testLogs())); resp.status != 200 {
		t.Fatalf("logs: %d %s", resp.status, resp.body)
	}
	if resp := post(t, "http://"+addr+MetricsPath, "application/x-protobuf", "", mustMarshal(t, testMetrics())); resp.status != 200 {
		t.Fatalf("metrics: %d %s", resp.status, resp.body)
	}
	if len(lc.got()) != 3 || len(mc.got()) == 0 {
		t.Errorf("got %d entries and %d samples", len(lc.got()), len(mc.got()))
	}
	if err := logs.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if resp := post(t, "http://"+addr+LogsPath, "application/x-protobuf", "", nil); resp.status != http.StatusNotFound {
		t.Errorf("logs after its Close: %d, want 404", resp.status)
	}
	if err := metrics.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := metrics.Close(ctx); err != nil {
		t.Fatal("second Close:", err)
	}
	if _, err := http.Get("http://" + addr + "/ready"); err == nil {
		t.Error("server still listening after the last Close")
	}
}

func TestValidate(t *testing.T) {
	for _, r := range []interface{ Validate() error }{
		&LogsReceiver{Labels: labels.FromStrings("bad-name", "x")},
		&LogsReceiver{Server: &Server{}},
		&LogsReceiver{Limits: Limits{MaxBodySize: -1}},
		&MetricsReceiver{Labels: labels.FromStrings("1x", "x")},
	} {
		if r.Validate() == nil {
			t.Errorf("%#v: Validate passed", r)
		}
	}
	if err := (&LogsReceiver{}).Validate(); err != nil {
		t.Errorf("zero LogsReceiver: %v", err)
	}
	if err := (&MetricsReceiver{}).Run(context.Background(), nil); err == nil {
		t.Error("Run before Start passed")
	}
}

func TestLogsScopeLabels(t *testing.T) {
	req := testLogs()
	req.ResourceLogs[0].ScopeLogs[0].Scope.Attributes = kvs("scope.team", "payments", "scope.other", "x")
	body := mustMarshal(t, req)
	for _, tc := range []struct {
		name, ctype string
		body        []byte
	}{{"protobuf", "application/x-protobuf", body}, {"json", "application/json", []byte(strings.Replace(testLogsJSON,
		`"scope":{"name":"app.logger","version":"1.2"}`,
		`"scope":{"name":"app.logger","version":"1.2","attributes":[{"key":"scope.team","value":{"stringValue":"payments"}},{"key":"scope.other","value":{"stringValue":"x"}}]}`, 1))}} {
		t.Run(tc.name, func(t *testing.T) {
			r := &LogsReceiver{ScopeLabels: []string{"scope.team"}}
			url := startLogs(t, r, nil)
			c, _ := runSource(t, &r.c, r.Run, 1, true, nil)
			if resp := post(t, url, tc.ctype, "", tc.body); resp.status != 200 {
				t.Fatalf("status %d: %s", resp.status, resp.body)
			}
			got := c.got()
			if want := labels.FromStrings("k8s_namespace_name", "shop", "scope_team", "payments", "service_name", "checkout"); !labels.Equal(got[0].Labels, want) {
				t.Errorf("labels %v, want %v", got[0].Labels, want)
			}
			if got[0].Metadata.Get("scope_other") != "x" || got[0].Metadata.Has("scope_team") {
				t.Errorf("metadata %v: want scope_other and no scope_team", got[0].Metadata)
			}
			if got[2].Labels.Has("scope_team") {
				t.Errorf("another resource's scope got the label: %v", got[2].Labels)
			}
		})
	}
}

// TestRequestsRacingShutdown: requests race the return of Run, and the
// caller closes out as soon as Run returned: none may send afterwards.
func TestRequestsRacingShutdown(t *testing.T) {
	body := mustMarshal(t, testLogs())
	for range 5 {
		r := &LogsReceiver{Limits: Limits{FullWait: time.Millisecond}}
		if err := r.Start(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
		receivertest.RaceRunReturn(t, receivertest.Receiver[ferry.Entry]{
			Run: r.Run,
			Push: func() (int, error) {
				req := httptest.NewRequest(http.MethodPost, LogsPath, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/x-protobuf")
				w := httptest.NewRecorder()
				r.ServeHTTP(w, req)
				switch w.Code {
				case http.StatusOK:
					return 3, nil // testLogs holds 3 records
				case http.StatusTooManyRequests, http.StatusServiceUnavailable:
					return 0, nil
				}
				return 0, fmt.Errorf("status %d: %s", w.Code, w.Body)
			},
		})
		r.Close(context.Background())
	}
}
