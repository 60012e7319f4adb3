package loki

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/httpconf"
	"github.com/ferrydev/ferry/internal/poll"
	"github.com/grafana/loki/pkg/push"
	"github.com/prometheus/prometheus/model/labels"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 123456789, time.UTC)

func testEntries() []ferry.Entry {
	return []ferry.Entry{
		{Labels: labels.FromStrings("app", "web", "env", "prod", "__path__", "/x"), Timestamp: t0, Line: "first"},
		{Labels: labels.FromStrings("app", "db"), Timestamp: t0.Add(time.Second), Line: "other stream \"quoted\" \n\t✓",
			Metadata: labels.FromStrings("trace_id", "abc", "user", "u1")},
		{Labels: labels.FromStrings("app", "web", "env", "prod", "__path__", "/x"), Timestamp: t0.Add(time.Millisecond), Line: "second"},
		{Labels: labels.FromStrings("app", "web", "env", "prod", "__tenant_id__", "team-a"), Timestamp: t0, Line: "tenant a"},
	}
}

// want is what Loki must receive for testEntries with external label
// cluster="c1", by tenant.
func wantRequests(fallbackTenant string) map[string][]push.Stream {
	return map[string][]push.Stream{
		fallbackTenant: {
			{Labels: `{app="web", cluster="c1", env="prod"}`, Entries: []push.Entry{
				{Timestamp: t0, Line: "first"},
				{Timestamp: t0.Add(time.Millisecond), Line: "second"},
			}},
			{Labels: `{app="db", cluster="c1"}`, Entries: []push.Entry{
				{Timestamp: t0.Add(time.Second), Line: "other stream \"quoted\" \n\t✓",
					StructuredMetadata: push.LabelsAdapter{{Name: "trace_id", Value: "abc"}, {Name: "user", Value: "u1"}}},
			}},
		},
		"team-a": {
			{Labels: `{app="web", cluster="c1", env="prod"}`, Entries: []push.Entry{{Timestamp: t0, Line: "tenant a"}}},
		},
	}
}

func compareStreams(t *testing.T, got, want []push.Stream) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d streams, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Labels != w.Labels {
			t.Errorf("stream %d: labels %s, want %s", i, g.Labels, w.Labels)
		}
		if g.Hash != 0 {
			t.Errorf("stream %d: hash %d set", i, g.Hash)
		}
		if len(g.Entries) != len(w.Entries) {
			t.Fatalf("stream %d: %d entries, want %d", i, len(g.Entries), len(w.Entries))
		}
		for j := range w.Entries {
			ge, we := g.Entries[j], w.Entries[j]
			if !ge.Timestamp.Equal(we.Timestamp) || ge.Line != we.Line || len(ge.Parsed) != 0 {
				t.Errorf("stream %d entry %d: got %v %q, want %v %q", i, j, ge.Timestamp, ge.Line, we.Timestamp, we.Line)
			}
			if len(ge.StructuredMetadata) != len(we.StructuredMetadata) {
				t.Errorf("stream %d entry %d: metadata %v, want %v", i, j, ge.StructuredMetadata, we.StructuredMetadata)
				continue
			}
			for k := range we.StructuredMetadata {
				if ge.StructuredMetadata[k] != we.StructuredMetadata[k] {
					t.Errorf("stream %d entry %d: metadata %v, want %v", i, j, ge.StructuredMetadata, we.StructuredMetadata)
				}
			}
		}
	}
}

func TestBodiesDecodeWithOfficialTypes(t *testing.T) {
	for _, enc := range []Encoding{Protobuf, JSON} {
		name := map[Encoding]string{Protobuf: "protobuf", JSON: "json"}[enc]
		t.Run(name, func(t *testing.T) {
			f := newFakeLoki(t, nil)
			s := started(t, &Sink{
				URL:            f.url(),
				TenantID:       "static",
				Encoding:       enc,
				BatchWait:      time.Hour,
				ExternalLabels: labels.FromStrings("cluster", "c1", "app", "ignored"),
				Headers:        map[string]string{"X-Custom": "yes", "Content-Type": "text/plain"},
				UserAgent:      "ferry-test/1",
			}, nil)
			acks := newAckRecorder()
			if err := s.Send(context.Background(), acks.batch(testEntries())); err != nil {
				t.Fatal(err)
			}
			acks.none(t, 50*time.Millisecond) // held until delivered
			closeSink(t, s)
			if err := acks.wait(t, time.Second); err != nil {
				t.Fatalf("ack: %v", err)
			}
			want := wantRequests("static")
			got := f.received()
			if len(got) != 2 {
				t.Fatalf("got %d requests, want 2 (one per tenant)", len(got))
			}
			for _, r := range got {
				tenant := r.Header.Get("X-Scope-OrgID")
				w, ok := want[tenant]
				if !ok {
					t.Fatalf("unexpected tenant %q", tenant)
				}
				delete(want, tenant)
				compareStreams(t, r.Req.Streams, w)
				wantCT := "application/x-protobuf"
				if enc == JSON {
					wantCT = "application/json"
				}
				if ct := r.Header.Get("Content-Type"); ct != wantCT {
					t.Errorf("Content-Type %q, want %q", ct, wantCT)
				}
				if ua := r.Header.Get("User-Agent"); ua != "ferry-test/1" {
					t.Errorf("User-Agent %q", ua)
				}
				if h := r.Header.Get("X-Custom"); h != "yes" {
					t.Errorf("X-Custom %q", h)
				}
				if ce := r.Header.Get("Content-Encoding"); ce != "" {
					t.Errorf("Content-Encoding %q, want none", ce)
				}
			}
		})
	}
}

func TestNoTenantSendsNoHeader(t *testing.T) {
	f := newFakeLoki(t, nil)
	s := started(t, &Sink{URL: f.url(), BatchWait: 10 * time.Millisecond}, nil)
	acks := newAckRecorder()
	s.Send(context.Background(), acks.batch([]ferry.Entry{{Labels: labels.FromStrings("a", "b"), Line: "x"}}))
	if err := acks.wait(t, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	closeSink(t, s)
	r := f.received()
	if len(r) != 1 || len(r[0].Header.Values("X-Scope-OrgID")) != 0 {
		t.Fatalf("want one request without X-Scope-OrgID: %+v", r)
	}
	// A zero timestamp becomes the time of sending.
	if ts := r[0].Req.Streams[0].Entries[0].Timestamp; time.Since(ts) > time.Minute || time.Since(ts) < 0 {
		t.Errorf("timestamp %v not the time of sending", ts)
	}
}

func TestOrderPerStream(t *testing.T) {
	f := newFakeLoki(t, nil)
	s := started(t, &Sink{URL: f.url(), BatchWait: time.Hour}, nil)
	ls := labels.FromStrings("app", "x")
	var items []ferry.Entry
	for _, d := range []int{5, 1, 3, 1, 2} {
		items = append(items, ferry.Entry{Labels: ls, Timestamp: t0.Add(time.Duration(d)), Line: "l" + string(rune('0'+d)) + "-" + string(rune('a'+len(items)))})
	}
	acks := newAckRecorder()
	s.Send(context.Background(), acks.batch(items))
	closeSink(t, s)
	acks.wait(t, time.Second)
	got := f.received()[0].Req.Streams[0].Entries
	var lines []string
	for _, e := range got {
		lines = append(lines, e.Line)
	}
	if strings.Join(lines, ",") != "l1-b,l1-d,l2-e,l3-c,l5-a" {
		t.Fatalf("order: %v", lines)
	}
}

func TestBatchBySizeAcksAfterAllRequests(t *testing.T) {
	release := make(chan struct{})
	var served atomic.Int32
	f := newFakeLoki(t, func(attempt int, w http.ResponseWriter, r *http.Request) bool {
		if attempt == 3 {
			<-release // hold a request with entries of the second batch only
		}
		served.Add(1)
		return false
	})
	s := started(t, &Sink{URL: f.url(), BatchBytes: 250, BatchWait: time.Hour}, nil)
	var items []ferry.Entry
	for i := range 10 {
		items = append(items, ferry.Entry{Labels: labels.FromStrings("app", "x"), Timestamp: t0.Add(time.Duration(i)), Line: strings.Repeat("x", 100)})
	}
	acks := newAckRecorder()
	s.Send(context.Background(), acks.batch(items[:5]))
	s.Send(context.Background(), acks.batch(items[5:]))
	// 10 entries of 100 bytes in requests of at most 250 bytes: 5 requests.
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Close(ctx)
	}()
	if err := acks.wait(t, 5*time.Second); err != nil { // first batch: requests 0, 1, 2
		t.Fatal(err)
	}
	t.Log("first batch acked; served", served.Load())
	close(release)
	if err := acks.wait(t, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	got := f.received()
	if len(got) != 5 {
		t.Fatalf("%d requests, want 5", len(got))
	}
	n := 0
	for _, r := range got {
		for _, e := range r.Req.Streams[0].Entries {
			if !e.Timestamp.Equal(t0.Add(time.Duration(n))) {
				t.Errorf("entry %d has timestamp %v", n, e.Timestamp)
			}
			n++
		}
	}
	if n != 10 {
		t.Fatalf("%d entries delivered, want 10", n)
	}
}

func TestBatchHeldUntilLastRequestAccepted(t *testing.T) {
	release := make(chan struct{})
	f := newFakeLoki(t, func(attempt int, w http.ResponseWriter, r *http.Request) bool {
		if attempt == 1 {
			<-release
		}
		return false
	})
	s := started(t, &Sink{URL: f.url(), BatchBytes: 150, BatchWait: 10 * time.Millisecond}, nil)
	defer closeSink(t, s)
	var items []ferry.Entry
	for i := range 3 {
		items = append(items, ferry.Entry{Labels: labels.FromStrings("app", "x"), Timestamp: t0.Add(time.Duration(i)), Line: strings.Repeat("x", 100)})
	}
	acks := newAckRecorder()
	s.Send(context.Background(), acks.batch(items))
	acks.none(t, 300*time.Millisecond)
	close(release)
	if err := acks.wait(t, 5*time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestBatchByTime(t *testing.T) {
	f := newFakeLoki(t, nil)
	s := started(t, &Sink{URL: f.url(), BatchWait: 100 * time.Millisecond}, nil)
	defer closeSink(t, s)
	acks := newAckRecorder()
	start := time.Now()
	s.Send(context.Background(), acks.batch([]ferry.Entry{{Labels: labels.FromStrings("a", "b"), Line: "x"}}))
	if err := acks.wait(t, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 100*time.Millisecond || d > 2*time.Second {
		t.Errorf("sent after %v, want about 100ms", d)
	}
}

func TestRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		name  string
		value func() string
	}{
		{"seconds", func() string { return "1" }},
		{"http-date", func() string { return time.Now().Add(2 * time.Second).UTC().Format(http.TimeFormat) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var first time.Time
			var second time.Time
			f := newFakeLoki(t, func(attempt int, w http.ResponseWriter, r *http.Request) bool {
				if attempt == 0 {
					first = time.Now()
					w.Header().Set("Retry-After", tc.value())
					http.Error(w, "slow down", http.StatusTooManyRequests)
					return true
				}
				second = time.Now()
				return false
			})
			rep := newTestReporter()
			ctx := ferry.WithReporter(context.Background(), rep)
			s := started(t, &Sink{URL: f.url(), BatchWait: 10 * time.Millisecond, MinBackoff: time.Millisecond, MaxBackoff: time.Minute}, rep)
			defer closeSink(t, s)
			acks := newAckRecorder()
			s.Send(ctx, acks.batch([]ferry.Entry{{Labels: labels.FromStrings("a", "b"), Line: "x"}}))
			if err := acks.wait(t, 10*time.Second); err != nil {
				t.Fatal(err)
			}
			if d := second.Sub(first); d < 900*time.Millisecond {
				t.Errorf("retried after %v, before Retry-After", d)
			}
			if rep.Retries() != 1 || len(f.received()) != 1 {
				t.Errorf("retries %d, delivered %d", rep.Retries(), len(f.received()))
			}
		})
	}
}

func Test429WithoutRetryAfterAnd500Storm(t *testing.T) {
	f := newFakeLoki(t, func(attempt int, w http.ResponseWriter, r *http.Request) bool {
		switch {
		case attempt == 0:
			http.Error(w, "rate limited", http.StatusTooManyRequests)
		case attempt < 6:
			http.Error(w, "ingester down", 500+attempt%4)
		default:
			return false
		}
		return true
	})
	rep := newTestReporter()
	ctx := ferry.WithReporter(context.Background(), rep)
	s := started(t, &Sink{URL: f.url(), BatchWait: 10 * time.Millisecond, MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond}, rep)
	defer closeSink(t, s)
	acks := newAckRecorder()
	s.Send(ctx, acks.batch(testEntries()[:3]))
	if err := acks.wait(t, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if rep.Retries() != 6 {
		t.Errorf("%d retries, want 6", rep.Retries())
	}
	got := f.received()
	if len(got) != 1 || len(got[0].Req.Streams) != 2 {
		t.Fatalf("want exactly one delivery of 2 streams: %+v", got)
	}
}

func TestRejectedBatchDropped(t *testing.T) {
	long := strings.Repeat("e", 5000)
	f := newFakeLoki(t, func(attempt int, w http.ResponseWriter, r *http.Request) bool {
		http.Error(w, "entry too far behind, entry timestamp is: x "+long, http.StatusBadRequest)
		return true
	})
	rep := newTestReporter()
	ctx := ferry.WithReporter(context.Background(), rep)
	s := started(t, &Sink{URL: f.url(), BatchWait: 10 * time.Millisecond, MinBackoff: time.Millisecond}, rep)
	defer closeSink(t, s)
	acks := newAckRecorder()
	s.Send(ctx, acks.batch(testEntries()[:3]))
	err := acks.wait(t, 5*time.Second)
	if !ferry.IsPermanent(err) || !strings.Contains(err.Error(), "400") {
		t.Fatalf("ack %v, want a permanent error naming 400", err)
	}
	if len(err.Error()) > 2000 {
		t.Errorf("error not truncated: %d bytes", len(err.Error()))
	}
	time.Sleep(50 * time.Millisecond) // time for a retry that must not happen
	if n := f.attemptCount(); n != 1 {
		t.Errorf("%d attempts, want 1 (no retry on 400)", n)
	}
	if n := rep.droppedFor("too_far_behind"); n != 3 {
		t.Errorf("dropped too_far_behind = %d, want 3: %v", n, rep.dropped)
	}
	logs := rep.Logs()
	if !strings.Contains(logs, "entry too far behind") || strings.Contains(logs, long) {
		t.Errorf("log must hold the truncated body: %.300s", logs)
	}
}

func TestRetriesExhausted(t *testing.T) {
	f := newFakeLoki(t, func(attempt int, w http.ResponseWriter, r *http.Request) bool {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return true
	})
	rep := newTestReporter()
	ctx := ferry.WithReporter(context.Background(), rep)
	s := started(t, &Sink{URL: f.url(), BatchWait: 10 * time.Millisecond, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, MaxRetries: 2}, rep)
	defer closeSink(t, s)
	acks := newAckRecorder()
	s.Send(ctx, acks.batch(testEntries()[:1]))
	err := acks.wait(t, 5*time.Second)
	if err == nil || ferry.Settled(err) {
		t.Fatalf("ack %v, want an unsettled error", err)
	}
	if n := f.attemptCount(); n != 3 {
		t.Errorf("%d attempts, want 3", n)
	}
	if rep.droppedFor(ReasonRetriesExhausted) != 1 {
		t.Errorf("drops: %v", rep.dropped)
	}
}

// TestConnectionResetsAndDowntime: the receiver resets connections, then is
// down, then comes back on the same address; nothing is lost or duplicated.
func TestConnectionResetsAndDowntime(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	f := &fakeLoki{t: t}
	f.respond = func(attempt int, w http.ResponseWriter, r *http.Request) bool {
		if attempt < 3 {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				if tc, ok := conn.(*net.TCPConn); ok {
					tc.SetLinger(0) // RST
				}
				conn.Close()
			}
			return true
		}
		return false
	}
	srv := &http.Server{Handler: http.HandlerFunc(f.serve)}
	go srv.Serve(ln)
	rep := newTestReporter()
	ctx := ferry.WithReporter(context.Background(), rep)
	s := started(t, &Sink{URL: "http://" + addr + "/loki/api/v1/push", BatchWait: 10 * time.Millisecond, MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, MaxRetries: -1}, rep)
	defer closeSink(t, s)
	acks := newAckRecorder()
	s.Send(ctx, acks.batch(testEntries()[:1]))
	poll.Until(t, func() bool { return f.attemptCount() >= 3 }, "3 attempts")
	srv.Close()                        // down
	time.Sleep(300 * time.Millisecond) // the receiver stays down a while: retries fail meanwhile
	acks.none(t, 10*time.Millisecond)
	ln2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s again: %v", addr, err)
	}
	srv2 := &http.Server{Handler: http.HandlerFunc(f.serve)}
	go srv2.Serve(ln2)
	defer srv2.Close()
	if err := acks.wait(t, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if n := len(f.received()); n != 1 {
		t.Fatalf("%d deliveries, want 1", n)
	}
	if rep.Retries() < 4 {
		t.Errorf("%d retries", rep.Retries())
	}
}

func TestSlowResponseTimesOutAndRetries(t *testing.T) {
	f := newFakeLoki(t, func(attempt int, w http.ResponseWriter, r *http.Request) bool {
		if attempt == 0 {
			select {
			case <-r.Context().Done():
			case <-time.After(time.Second):
			}
			return true
		}
		return false
	})
	s := started(t, &Sink{URL: f.url(), BatchWait: 10 * time.Millisecond, Timeout: 100 * time.Millisecond, MinBackoff: time.Millisecond}, nil)
	defer closeSink(t, s)
	acks := newAckRecorder()
	s.Send(context.Background(), acks.batch(testEntries()[:1]))
	if err := acks.wait(t, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if len(f.received()) != 1 {
		t.Fatal("not delivered once")
	}
}

func TestInvalidLabelsDropped(t *testing.T) {
	f := newFakeLoki(t, nil)
	rep := newTestReporter()
	ctx := ferry.WithReporter(context.Background(), rep)
	s := started(t, &Sink{URL: f.url(), BatchWait: 10 * time.Millisecond, MaxLabelValueLength: 10}, rep)
	defer closeSink(t, s)
	for _, tc := range []struct {
		lbls labels.Labels
		msg  string
	}{
		{labels.FromStrings("__only", "internal"), "no labels left"},
		{labels.FromStrings("bad-name", "x"), `label name "bad-name" is invalid`},
		{labels.FromStrings("a", strings.Repeat("v", 11)), "more than the limit of 10"},
		{labels.FromStrings("a", "\xff"), "not valid UTF-8"},
	} {
		acks := newAckRecorder()
		s.Send(ctx, acks.batch([]ferry.Entry{{Labels: tc.lbls, Line: "x"}, {Labels: labels.FromStrings("ok", "1"), Line: "y"}}))
		err := acks.wait(t, 5*time.Second)
		if !ferry.IsPermanent(err) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%v: ack %v, want permanent error containing %q", tc.lbls, err, tc.msg)
		}
	}
	many := labels.NewScratchBuilder(16)
	for i := range 16 {
		many.Add("l"+string(rune('a'+i)), "v")
	}
	acks := newAckRecorder()
	s.Send(ctx, acks.batch([]ferry.Entry{{Labels: many.Labels(), Line: "x"}}))
	if err := acks.wait(t, 5*time.Second); err == nil || !strings.Contains(err.Error(), "16 labels") {
		t.Errorf("16 labels: %v", err)
	}
	if n := rep.droppedFor(ReasonInvalidLabels); n != 5 {
		t.Errorf("dropped invalid_labels = %d, want 5", n)
	}
	n := 0
	for _, r := range f.received() {
		for _, st := range r.Req.Streams {
			n += len(st.Entries)
		}
	}
	if n != 4 {
		t.Errorf("%d valid entries delivered, want 4", n)
	}
}

func TestBackpressureBlocks(t *testing.T) {
	release := make(chan struct{})
	f := newFakeLoki(t, func(attempt int, w http.ResponseWriter, r *http.Request) bool {
		<-release
		return false
	})
	s := started(t, &Sink{URL: f.url(), BatchWait: time.Millisecond, MaxBufferedBytes: 250, BatchBytes: 100}, nil)
	defer closeSink(t, s)
	e := func() []ferry.Entry {
		return []ferry.Entry{{Labels: labels.FromStrings("a", "b"), Line: strings.Repeat("x", 100)}}
	}
	acks := newAckRecorder()
	for range 2 {
		if err := s.Send(context.Background(), acks.batch(e())); err != nil {
			t.Fatal(err)
		}
	}
	// The third does not fit: Send blocks until ctx ends.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	err := s.Send(ctx, acks.batch(e()))
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Send = %v, want DeadlineExceeded", err)
	}
	if err := acks.wait(t, time.Second); !errors.Is(err, context.DeadlineExceeded) || ferry.Settled(err) {
		t.Fatalf("ack of refused batch: %v", err)
	}
	done := make(chan error)
	go func() { done <- s.Send(context.Background(), acks.batch(e())) }()
	select {
	case <-done:
		t.Fatal("Send did not block")
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := acks.wait(t, 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
}

func TestDropWhenFull(t *testing.T) {
	release := make(chan struct{})
	f := newFakeLoki(t, func(attempt int, w http.ResponseWriter, r *http.Request) bool {
		<-release
		return false
	})
	rep := newTestReporter()
	ctx := ferry.WithReporter(context.Background(), rep)
	s := started(t, &Sink{URL: f.url(), BatchWait: time.Millisecond, MaxBufferedBytes: 250, DropWhenFull: true}, rep)
	defer closeSink(t, s)
	defer close(release)
	var items []ferry.Entry
	for range 5 {
		items = append(items, ferry.Entry{Labels: labels.FromStrings("a", "b"), Line: strings.Repeat("x", 100)})
	}
	acks := newAckRecorder()
	start := time.Now()
	if err := s.Send(ctx, acks.batch(items)); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > 50*time.Millisecond {
		t.Error("Send blocked")
	}
	if n := rep.droppedFor(ReasonBufferFull); n != 3 {
		t.Errorf("dropped %d, want 3", n)
	}
	release <- struct{}{}
	if err := acks.wait(t, 5*time.Second); !ferry.IsPermanent(err) {
		t.Fatalf("ack %v, want permanent", err)
	}
}

func TestMultiEndpointIndependentQueues(t *testing.T) {
	release := make(chan struct{})
	slow := newFakeLoki(t, func(attempt int, w http.ResponseWriter, r *http.Request) bool {
		<-release
		return false
	})
	fast := newFakeLoki(t, nil)
	s := started(t, &Sink{
		URL:       fast.url(),
		TenantID:  "fast-tenant",
		Endpoints: []Endpoint{{URL: slow.url(), TenantID: "slow-tenant"}},
		BatchWait: 5 * time.Millisecond,
	}, nil)
	defer closeSink(t, s)
	acks := newAckRecorder()
	for i := range 3 {
		s.Send(context.Background(), acks.batch([]ferry.Entry{{Labels: labels.FromStrings("a", "b"), Timestamp: t0.Add(time.Duration(i)), Line: "x"}}))
		time.Sleep(20 * time.Millisecond) // past BatchWait: each entry is a request of its own
	}
	// The fast endpoint got everything although the slow one is stuck.
	poll.Wait(5*time.Second, func() bool { return len(fast.received()) >= 3 })
	if n := len(fast.received()); n != 3 {
		t.Fatalf("fast endpoint got %d requests, want 3", n)
	}
	if h := fast.received()[0].Header.Get("X-Scope-OrgID"); h != "fast-tenant" {
		t.Errorf("tenant %q", h)
	}
	acks.none(t, 50*time.Millisecond) // not acked until the slow one has them too
	close(release)
	for range 3 {
		if err := acks.wait(t, 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if h := slow.received()[0].Header.Get("X-Scope-OrgID"); h != "slow-tenant" {
		t.Errorf("tenant %q", h)
	}
}

func TestCloseFlushesAndGivesUp(t *testing.T) {
	f := newFakeLoki(t, nil)
	s := started(t, &Sink{URL: f.url(), BatchWait: time.Hour}, nil)
	acks := newAckRecorder()
	s.Send(context.Background(), acks.batch(testEntries()[:1]))
	start := time.Now()
	closeSink(t, s)
	if time.Since(start) > time.Second {
		t.Error("Close did not flush at once")
	}
	if err := acks.wait(t, time.Second); err != nil || len(f.received()) != 1 {
		t.Fatalf("ack %v, %d requests", err, len(f.received()))
	}
	if err := s.Send(context.Background(), acks.batch(testEntries()[:1])); !errors.Is(err, ErrClosed) {
		t.Errorf("Send after Close = %v", err)
	}
	if err := acks.wait(t, time.Second); !errors.Is(err, ErrClosed) {
		t.Errorf("ack after Close = %v", err)
	}
	closeSink(t, s) // twice is fine

	// A receiver that is down: Close gives up at the deadline and acks with
	// an error that lets sources read again.
	down := newFakeLoki(t, func(int, http.ResponseWriter, *http.Request) bool { return false })
	down.srv.Close()
	s2 := started(t, &Sink{URL: down.url(), BatchWait: time.Hour, MinBackoff: 10 * time.Millisecond}, nil)
	s2.Send(context.Background(), acks.batch(testEntries()[:1]))
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := s2.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close = %v, want deadline exceeded", err)
	}
	if err := acks.wait(t, time.Second); !errors.Is(err, ErrClosed) || ferry.Settled(err) {
		t.Errorf("ack = %v, want ErrClosed", err)
	}

	var never Sink
	if err := never.Close(context.Background()); err != nil {
		t.Errorf("Close without Send: %v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, s := range []*Sink{
		{},
		{URL: "ftp://x"},
		{URL: "http://x", MinBackoff: time.Hour, MaxBackoff: time.Second},
		{URL: "http://x", ExternalLabels: labels.FromStrings("bad-name", "x")},
		{URL: "http://x", HTTPClient: httpconf.Config{Authorization: &httpconf.Authorization{Credentials: "a", CredentialsFile: "b"}}},
	} {
		if err := s.Validate(); err == nil {
			t.Errorf("%+v: no error", s)
		}
	}
	s := &Sink{URL: "ftp://user:hunter2@x"}
	if err := s.Start(context.Background(), ferry.NopReporter()); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("Start = %v", err)
	}
	// A batch sent to a sink that did not start is not delivered and not
	// settled: a source may read it again. Before Start existed, the sink
	// started in its first Send and acknowledged a configuration error as
	// permanent, which let sources advance past data never delivered.
	acks := newAckRecorder()
	if err := s.Send(context.Background(), acks.batch(testEntries())); !errors.Is(err, ErrNotStarted) {
		t.Errorf("Send = %v, want ErrNotStarted", err)
	}
	if err := acks.wait(t, time.Second); !errors.Is(err, ErrNotStarted) || ferry.Settled(err) {
		t.Errorf("ack %v, want ErrNotStarted, not settled", err)
	}
	missing := t.TempDir() + "/missing"
	for _, cfg := range []httpconf.Config{
		{Authorization: &httpconf.Authorization{CredentialsFile: missing}},
		{TLS: httpconf.TLS{CAFile: missing}},
	} {
		if err := (&Sink{URL: "http://x", HTTPClient: cfg}).Validate(); err == nil || !strings.Contains(err.Error(), "missing") {
			t.Errorf("%+v: Validate = %v, want an unreadable file", cfg, err)
		}
	}
}

func TestAuthAndSecrets(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	os.WriteFile(tokenFile, []byte("tok1"), 0o600)
	var mu sync.Mutex
	var auths []string
	f := newFakeLoki(t, func(attempt int, w http.ResponseWriter, r *http.Request) bool {
		mu.Lock()
		auths = append(auths, r.Header.Get("Authorization"))
		mu.Unlock()
		if attempt == 2 {
			http.Error(w, "forbidden", http.StatusForbidden)
			return true
		}
		return false
	})
	rep := newTestReporter()
	ctx := ferry.WithReporter(context.Background(), rep)
	s := started(t, &Sink{
		URL:        f.url(),
		HTTPClient: httpconf.Config{Authorization: &httpconf.Authorization{Type: "Bearer", CredentialsFile: tokenFile}},
		Endpoints:  []Endpoint{{URL: f.url(), HTTPClient: httpconf.Config{BasicAuth: &httpconf.BasicAuth{Username: "u", Password: "s3cret-pw"}}}},
		BatchWait:  5 * time.Millisecond,
	}, rep)
	defer closeSink(t, s)
	acks := newAckRecorder()
	s.Send(ctx, acks.batch(testEntries()[:1]))
	acks.wait(t, 5*time.Second)
	os.WriteFile(tokenFile, []byte("tok2"), 0o600)
	s.Send(ctx, acks.batch(testEntries()[:1]))
	err := acks.wait(t, 5*time.Second)
	mu.Lock()
	got := strings.Join(auths, "|")
	mu.Unlock()
	for _, want := range []string{"Bearer tok1", "Bearer tok2", "Basic dTpzM2NyZXQtcHc="} {
		if !strings.Contains(got, want) {
			t.Errorf("Authorization headers %q lack %q", got, want)
		}
	}
	// One of the four requests was refused: its error and logs hold no secret.
	if !ferry.IsPermanent(err) {
		t.Errorf("ack %v, want the 403 drop", err)
	}
	for _, out := range []string{err.Error(), rep.Logs()} {
		for _, secret := range []string{"tok1", "tok2", "s3cret-pw", "dTpzM2NyZXQtcHc"} {
			if strings.Contains(out, secret) {
				t.Errorf("secret %q leaked: %s", secret, out)
			}
		}
	}
}

func TestURLPasswordNotLogged(t *testing.T) {
	f := newFakeLoki(t, func(attempt int, w http.ResponseWriter, r *http.Request) bool {
		http.Error(w, "no", http.StatusUnauthorized)
		return true
	})
	rep := newTestReporter()
	ctx := ferry.WithReporter(context.Background(), rep)
	u := strings.Replace(f.url(), "http://", "http://user:pa55word@", 1)
	s := started(t, &Sink{URL: u, BatchWait: 5 * time.Millisecond}, rep)
	defer closeSink(t, s)
	acks := newAckRecorder()
	s.Send(ctx, acks.batch(testEntries()[:1]))
	err := acks.wait(t, 5*time.Second)
	if err == nil || strings.Contains(err.Error(), "pa55word") || strings.Contains(rep.Logs(), "pa55word") {
		t.Errorf("password leaked or no error: %v\n%s", err, rep.Logs())
	}
}

func TestRejectReason(t *testing.T) {
	for _, tc := range []struct {
		status int
		body   string
		want   string
	}{
		{400, "entry for stream '{a=\"b\"}' has timestamp too old: 2020-01-01, oldest acceptable timestamp is: 2026-01-01", "greater_than_max_sample_age"},
		{400, "Max entry size '262144' bytes exceeded for stream '{a=\"b\"}'", "line_too_long"},
		{400, "something new", "http_400"},
		{401, "timestamp too old", "http_401"},
		{413, "", "http_413"},
	} {
		if got := rejectReason(tc.status, tc.body); got != tc.want {
			t.Errorf("rejectReason(%d, %q) = %q, want %q", tc.status, tc.body, got, tc.want)
		}
	}
}

func TestConcurrentSends(t *testing.T) {
	f := newFakeLoki(t, nil)
	s := started(t, &Sink{URL: f.url(), BatchWait: 5 * time.Millisecond, BatchBytes: 500}, nil)
	var wg sync.WaitGroup
	var acked atomic.Int32
	for g := range 4 {
		wg.Go(func() {
			for i := range 50 {
				items := []ferry.Entry{{Labels: labels.FromStrings("g", string(rune('a'+g))), Timestamp: t0.Add(time.Duration(i)), Line: "line"}}
				s.Send(context.Background(), ferry.NewBatch(items, func(err error) {
					if err == nil {
						acked.Add(1)
					}
				}))
			}
		})
	}
	wg.Wait()
	closeSink(t, s)
	if acked.Load() != 200 {
		t.Fatalf("%d acked, want 200", acked.Load())
	}
	per := map[string][]time.Time{}
	for _, r := range f.received() {
		for _, st := range r.Req.Streams {
			for _, e := range st.Entries {
				per[st.Labels] = append(per[st.Labels], e.Timestamp)
			}
		}
	}
	for k, ts := range per {
		if len(ts) != 50 {
			t.Errorf("%s: %d entries", k, len(ts))
		}
		for i := 1; i < len(ts); i++ {
			if ts[i].Before(ts[i-1]) {
				t.Errorf("%s: out of order at %d", k, i)
			}
		}
	}
}

func TestIdleTenantQueuesExit(t *testing.T) {
	old := queueIdleTimeout
	queueIdleTimeout = 50 * time.Millisecond
	defer func() { queueIdleTimeout = old }()
	f := newFakeLoki(t, nil)
	s := started(t, &Sink{URL: f.url(), BatchWait: 5 * time.Millisecond}, nil)
	defer closeSink(t, s)
	acks := newAckRecorder()
	for i := range 5 {
		s.Send(context.Background(), acks.batch([]ferry.Entry{{Labels: labels.FromStrings("a", "b", "__tenant_id__", fmt.Sprint("t", i)), Line: "x"}}))
	}
	for range 5 {
		if err := acks.wait(t, 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	ep := s.eps[0]
	poll.Until(t, func() bool {
		ep.mu.Lock()
		defer ep.mu.Unlock()
		return len(ep.queues) == 0
	}, "the idle tenant queues to go")
	// A tenant that comes back gets a new queue.
	s.Send(context.Background(), acks.batch([]ferry.Entry{{Labels: labels.FromStrings("a", "b", "__tenant_id__", "t1"), Line: "y"}}))
	if err := acks.wait(t, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if n := len(f.received()); n != 6 {
		t.Fatalf("%d requests, want 6", n)
	}
}

// One lifecycle (issue 17): Send before Start and after Close refuses with
// errors wrapping ferry's, Close is idempotent, and a closed sink does not
// start again.
func TestLifecycle(t *testing.T) {
	f := newFakeLoki(t, nil)
	s := &Sink{URL: f.url()}
	acks := newAckRecorder()
	if err := s.Send(context.Background(), acks.batch(testEntries()[:1])); !errors.Is(err, ferry.ErrNotStarted) {
		t.Errorf("Send before Start = %v, want ferry.ErrNotStarted", err)
	}
	if err := acks.wait(t, time.Second); !errors.Is(err, ferry.ErrNotStarted) || ferry.Settled(err) {
		t.Errorf("ack before Start = %v", err)
	}
	started(t, s, nil)
	closeSink(t, s)
	closeSink(t, s)
	if err := s.Send(context.Background(), acks.batch(testEntries()[:1])); !errors.Is(err, ferry.ErrClosed) {
		t.Errorf("Send after Close = %v, want ferry.ErrClosed", err)
	}
	if err := acks.wait(t, time.Second); !errors.Is(err, ferry.ErrClosed) || ferry.Settled(err) {
		t.Errorf("ack after Close = %v", err)
	}
	if err := s.Start(context.Background(), ferry.NopReporter()); !errors.Is(err, ferry.ErrClosed) {
		t.Errorf("Start after Close = %v, want ferry.ErrClosed", err)
	}
	if n := len(f.received()); n != 0 {
		t.Errorf("%d requests, want none", n)
	}
}
