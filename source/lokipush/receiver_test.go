package lokipush

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/internal/poll"
	"github.com/ferrydev/ferry/sink/loki"
	"github.com/golang/snappy"
	"github.com/grafana/loki/pkg/push"
	"github.com/prometheus/prometheus/model/labels"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 123456789, time.UTC)

// officialRequest is a push built with the official types.
func officialRequest() push.PushRequest {
	return push.PushRequest{Streams: []push.Stream{
		{Labels: `{app="web", env="prod"}`, Entries: []push.Entry{
			{Timestamp: t0, Line: "first"},
			{Timestamp: t0.Add(time.Second), Line: "second", StructuredMetadata: push.LabelsAdapter{{Name: "user", Value: "u1"}, {Name: "trace_id", Value: "abc"}}},
		}},
		{Labels: `{app="db",note="a \"quoted\" \\ value ✓"}`, Entries: []push.Entry{
			{Timestamp: time.Unix(-5, 7), Line: ""},
		}},
	}}
}

func protoBody(t testing.TB, req push.PushRequest) []byte {
	raw, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return snappy.Encode(nil, raw)
}

const jsonBody = `{"streams":[{"stream":{"app":"web","env":"prod"},"values":[
 ["1795608000123456789","first"],
 ["1795608001123456789","second",{"trace_id":"abc","user":"u1"}]]},
 {"stream":{"app":"db","note":"a \"quoted\" \\ value ✓"},"values":[["-4999999993",""]]}]}`

func checkEntries(t *testing.T, got []ferry.Entry, extra ...string) {
	t.Helper()
	want := []ferry.Entry{
		{Labels: labels.FromStrings(append([]string{"app", "web", "env", "prod"}, extra...)...), Timestamp: t0, Line: "first"},
		{Labels: labels.FromStrings(append([]string{"app", "web", "env", "prod"}, extra...)...), Timestamp: t0.Add(time.Second), Line: "second",
			Metadata: labels.FromStrings("trace_id", "abc", "user", "u1")},
		{Labels: labels.FromStrings(append([]string{"app", "db", "note", `a "quoted" \ value ✓`}, extra...)...), Timestamp: time.Unix(-5, 7)},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d entries, want %d: %v", len(got), len(want), got)
	}
	for i := range want {
		g, w := got[i], want[i]
		if !labels.Equal(g.Labels, w.Labels) || !g.Timestamp.Equal(w.Timestamp) || g.Line != w.Line || !labels.Equal(g.Metadata, w.Metadata) {
			t.Errorf("entry %d:\n got %v %v %q %v\nwant %v %v %q %v", i, g.Labels, g.Timestamp, g.Line, g.Metadata, w.Labels, w.Timestamp, w.Line, w.Metadata)
		}
	}
}

// running starts r with an out channel of capacity n and waits until Run
// is attached.
func running(t *testing.T, r *Receiver, n int) chan ferry.Batch[ferry.Entry] {
	out := make(chan ferry.Batch[ferry.Entry], n)
	if err := r.Start(context.Background(), ferry.NopReporter()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx, out); close(done) }()
	t.Cleanup(func() { cancel(); <-done; r.Close(context.Background()) })
	poll.Until(t, r.outlet.Running, "Run to attach")
	return out
}

func do(r http.Handler, method, ctype, cenc string, body []byte, hdr ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, "/loki/api/v1/push", bytes.NewReader(body))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if cenc != "" {
		req.Header.Set("Content-Encoding", cenc)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	r.ServeHTTP(w, req)
	return w
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func zl(b []byte) []byte {
	var buf bytes.Buffer
	w := zlib.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func TestFormats(t *testing.T) {
	pb := protoBody(t, officialRequest())
	for _, tc := range []struct {
		name, ctype, cenc string
		body              []byte
	}{
		{"protobuf", "application/x-protobuf", "", pb},
		{"protobuf-no-content-type", "", "", pb},
		{"protobuf-snappy-encoding", "application/x-protobuf", "snappy", pb},
		{"protobuf-gzip", "application/x-protobuf", "gzip", gz(pb)},
		{"json", "application/json", "", []byte(jsonBody)},
		{"json-charset", "application/json; charset=utf-8", "", []byte(jsonBody)},
		{"json-gzip", "application/json", "gzip", gz([]byte(jsonBody))},
		{"json-deflate", "application/json", "deflate", zl([]byte(jsonBody))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &Receiver{}
			out := running(t, r, 1)
			w := do(r, "POST", tc.ctype, tc.cenc, tc.body)
			if w.Code != http.StatusNoContent {
				t.Fatalf("status %d: %s", w.Code, w.Body)
			}
			b := <-out
			checkEntries(t, b.Items)
			b.Done(nil)
		})
	}
}

func TestTenantAndLabels(t *testing.T) {
	r := &Receiver{Labels: labels.FromStrings("via", "ferry")}
	out := running(t, r, 1)
	w := do(r, "POST", "application/json", "", []byte(jsonBody), "X-Scope-OrgID", "team-a")
	if w.Code != http.StatusNoContent {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	checkEntries(t, (<-out).Items, "__tenant_id__", "team-a", "via", "ferry")
}

func TestMalformed(t *testing.T) {
	r := &Receiver{MaxBodySize: 1 << 10}
	running(t, r, 1)
	bad := func(req push.PushRequest) []byte { return protoBody(t, req) }
	for _, tc := range []struct {
		name, ctype, cenc string
		body              []byte
		status            int
		msg               string
	}{
		{"not-snappy", "application/x-protobuf", "", []byte("hello world, not snappy"), 400, "not snappy block format"},
		{"not-protobuf", "application/x-protobuf", "", snappy.Encode(nil, []byte{0x0a, 0xff, 0xff}), 400, "protobuf: stream 0"},
		{"bad-labels", "", "", bad(push.PushRequest{Streams: []push.Stream{{Labels: `{app="x"`, Entries: []push.Entry{{Line: "x"}}}}}), 400, `invalid labels "{app=\"x\"": must be enclosed in {}`},
		{"empty-labels", "", "", bad(push.PushRequest{Streams: []push.Stream{{Labels: `{}`}}}), 400, "at least one label pair is required"},
		{"dup-labels", "", "", bad(push.PushRequest{Streams: []push.Stream{{Labels: `{a="1", a="2"}`}}}), 400, `duplicate label name "a"`},
		{"bad-name", "", "", bad(push.PushRequest{Streams: []push.Stream{{Labels: `{a-b="1"}`}}}), 400, `expected = after label "a"`},
		{"json-syntax", "application/json", "", []byte(`{"streams":[`), 400, "json: unexpected end"},
		{"json-ts", "application/json", "", []byte(`{"streams":[{"stream":{"a":"b"},"values":[["yesterday","x"]]}]}`), 400, `stream 0 value 0: timestamp "yesterday" is not Unix nanoseconds`},
		{"json-ts-number", "application/json", "", []byte(`{"streams":[{"stream":{"a":"b"},"values":[[1,"x"]]}]}`), 400, "timestamp must be a string"},
		{"json-arity", "application/json", "", []byte(`{"streams":[{"stream":{"a":"b"},"values":[["1"]]}]}`), 400, "got 1 elements"},
		{"json-nested-md", "application/json", "", []byte(`{"streams":[{"stream":{"a":"b"},"values":[["1","x",{"k":{"n":1}}]]}]}`), 400, "structured metadata must be an object of strings"},
		{"json-no-labels", "application/json", "", []byte(`{"streams":[{"stream":{},"values":[["1","x"]]}]}`), 400, "at least one label pair"},
		{"bad-gzip", "application/json", "gzip", []byte("nope"), 400, "gzip body"},
		{"encoding", "application/json", "br", []byte(jsonBody), 415, `unsupported Content-Encoding "br"`},
		{"too-large", "application/json", "", bytes.Repeat([]byte(" "), 2<<10), 413, "larger than 1024 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := do(r, "POST", tc.ctype, tc.cenc, tc.body)
			if w.Code != tc.status || !strings.Contains(w.Body.String(), tc.msg) {
				t.Errorf("got %d %q, want %d containing %q", w.Code, w.Body, tc.status, tc.msg)
			}
		})
	}
	if w := do(r, "GET", "", "", nil); w.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", w.Code)
	}
}

func TestDecodedSizeLimit(t *testing.T) {
	r := &Receiver{MaxDecodedSize: 1000}
	running(t, r, 1)
	big := []byte(`{"streams":[{"stream":{"a":"b"},"values":[["1","` + strings.Repeat("x", 2000) + `"]]}]}`)
	if w := do(r, "POST", "application/json", "gzip", gz(big)); w.Code != 413 {
		t.Errorf("gzip: %d %s", w.Code, w.Body)
	}
	pb := protoBody(t, push.PushRequest{Streams: []push.Stream{{Labels: `{a="b"}`, Entries: []push.Entry{{Line: strings.Repeat("x", 2000)}}}}})
	if w := do(r, "POST", "", "", pb); w.Code != 413 {
		t.Errorf("snappy: %d %s", w.Code, w.Body)
	}
}

func TestNotRunning(t *testing.T) {
	r := &Receiver{}
	if w := do(r, "POST", "application/json", "", []byte(jsonBody)); w.Code != 503 {
		t.Errorf("status %d", w.Code)
	}
}

func TestBackpressure(t *testing.T) {
	t.Run("reject", func(t *testing.T) {
		r := &Receiver{RejectWhenFull: true}
		out := running(t, r, 0) // nobody reads
		w := do(r, "POST", "application/json", "", []byte(jsonBody))
		if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" {
			t.Errorf("status %d, Retry-After %q", w.Code, w.Header().Get("Retry-After"))
		}
		_ = out
	})
	t.Run("block", func(t *testing.T) {
		r := &Receiver{}
		out := running(t, r, 0)
		done := make(chan int)
		go func() { done <- do(r, "POST", "application/json", "", []byte(jsonBody)).Code }()
		poll.Until(t, func() bool { return r.outlet.Sending() == 1 }, "the push to wait for room")
		select {
		case <-done:
			t.Fatal("push answered while the pipeline is full")
		default:
		}
		b := <-out
		b.Done(nil)
		if code := <-done; code != 204 {
			t.Errorf("status %d", code)
		}
	})
}

func TestWaitForAck(t *testing.T) {
	for _, tc := range []struct {
		outcome error
		status  int
	}{
		{nil, 204},
		{ferry.Permanentf("bad labels"), 400},
		{errors.New("sink closed"), 503},
	} {
		r := &Receiver{WaitForAck: true}
		out := running(t, r, 1)
		done := make(chan *httptest.ResponseRecorder)
		go func() { done <- do(r, "POST", "application/json", "", []byte(jsonBody)) }()
		b := <-out
		select {
		case <-done:
			t.Fatal("answered before the ack")
		case <-time.After(50 * time.Millisecond): // no answer within a while: the thing under test
		}
		b.Done(tc.outcome)
		if w := <-done; w.Code != tc.status {
			t.Errorf("outcome %v: status %d, want %d", tc.outcome, w.Code, tc.status)
		}
	}
}

// TestSinkToServer pushes with the Loki sink into a Server on 127.0.0.1.
func TestSinkToServer(t *testing.T) {
	for _, enc := range []loki.Encoding{loki.Protobuf, loki.JSON} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &Server{Listener: ln, Receiver: Receiver{WaitForAck: true}}
		if err := srv.Start(context.Background(), ferry.NopReporter()); err != nil {
			t.Fatal(err)
		}
		out := make(chan ferry.Batch[ferry.Entry], 10)
		ctx, cancel := context.WithCancel(context.Background())
		runErr := make(chan error, 1)
		go func() { runErr <- srv.Run(ctx, out) }()

		s := &loki.Sink{URL: "http://" + ln.Addr().String() + "/loki/api/v1/push", TenantID: "t1", Encoding: enc, BatchWait: 10 * time.Millisecond}
		if err := s.Start(ctx, ferry.NopReporter()); err != nil {
			t.Fatal(err)
		}
		defer s.Close(context.Background())
		acked := make(chan error, 1)
		in := []ferry.Entry{
			{Labels: labels.FromStrings("app", "web", "env", "prod"), Timestamp: t0, Line: "first"},
			{Labels: labels.FromStrings("app", "web", "env", "prod"), Timestamp: t0.Add(time.Second), Line: "second", Metadata: labels.FromStrings("trace_id", "abc", "user", "u1")},
			{Labels: labels.FromStrings("app", "db", "note", `a "quoted" \ value ✓`), Timestamp: time.Unix(-5, 7)},
		}
		s.Send(context.Background(), ferry.NewBatch(in, func(err error) { acked <- err }))
		var got []ferry.Entry
		select {
		case b := <-out:
			got = b.Items
			b.Done(nil)
		case <-time.After(5 * time.Second):
			t.Fatal("nothing received")
		}
		if err := <-acked; err != nil {
			t.Fatal(err)
		}
		// The sink sends streams in first-seen order; the receiver keeps it.
		checkEntries(t, got, "__tenant_id__", "t1")
		s.Close(context.Background())
		cancel()
		if err := <-runErr; err != nil {
			t.Fatal(err)
		}
		if err := srv.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

func TestServerReadyAndShutdown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &Server{Listener: ln}
	if err := srv.Start(context.Background(), ferry.NopReporter()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- srv.Run(ctx, make(chan ferry.Batch[ferry.Entry])) }()
	resp, err := http.Get("http://" + ln.Addr().String() + "/ready")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("ready: %d", resp.StatusCode)
	}
	cancel()
	select {
	case err := <-runErr:
		if err != nil {
			t.Error(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	// After Run, the server still answers, with 503, until Close.
	resp, err = http.Post("http://"+ln.Addr().String()+"/loki/api/v1/push", "application/json", strings.NewReader(jsonBody))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("push after Run: %d, want 503", resp.StatusCode)
	}
	for range 2 {
		if err := srv.Close(context.Background()); err != nil {
			t.Error(err)
		}
	}
	if _, err := http.Get("http://" + ln.Addr().String() + "/ready"); err == nil {
		t.Error("still serving after Close")
	}
}

// TestStartRequired checks the lifecycle errors: Run without Start says
// so, and an address in use fails Start rather than Run.
func TestStartRequired(t *testing.T) {
	if err := (&Receiver{}).Run(context.Background(), nil); !errors.Is(err, ErrNotStarted) {
		t.Errorf("Receiver.Run without Start: %v", err)
	}
	if err := (&Server{Addr: "127.0.0.1:0"}).Run(context.Background(), nil); !errors.Is(err, ErrNotStarted) {
		t.Errorf("Server.Run without Start: %v", err)
	}
	if err := (&Server{}).Close(context.Background()); err != nil {
		t.Errorf("Close without Start: %v", err)
	}
	closed := &Receiver{}
	closed.Start(context.Background(), ferry.NopReporter())
	closed.Close(context.Background())
	if err := closed.Run(context.Background(), nil); !errors.Is(err, ErrClosed) || !errors.Is(err, ferry.ErrClosed) {
		t.Errorf("Run after Close: %v, want ErrClosed", err)
	}
	if err := closed.Start(context.Background(), ferry.NopReporter()); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Close: %v, want ErrClosed", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	err = (&Server{Addr: ln.Addr().String()}).Start(context.Background(), ferry.NopReporter())
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("Start on an address in use: %v", err)
	}
	if err := (&Server{Addr: "256.0.0.1:1"}).Start(context.Background(), ferry.NopReporter()); err == nil {
		t.Error("no listen error")
	}
}

func TestValidate(t *testing.T) {
	if err := (&Server{}).Validate(); err == nil {
		t.Error("Server without Addr: no error")
	}
	if err := (&Server{Addr: ":0", Receiver: Receiver{Labels: labels.FromStrings("bad-name", "x")}}).Validate(); err == nil {
		t.Error("bad label: no error")
	}
	if err := (&Server{Addr: "127.0.0.1:3500"}).Validate(); err != nil {
		t.Error(err)
	}
}
