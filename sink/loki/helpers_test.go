package loki

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/golang/snappy"
	"github.com/grafana/loki/pkg/push"
)

// testReporter records what a component reports.
type testReporter struct {
	mu      sync.Mutex
	dropped map[string]int
	retries int
	health  ferry.Health
	logs    bytes.Buffer
	logger  *slog.Logger
}

func newTestReporter() *testReporter {
	r := &testReporter{dropped: map[string]int{}}
	r.logger = slog.New(slog.NewTextHandler(lockedWriter{r}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return r
}

type lockedWriter struct{ r *testReporter }

func (w lockedWriter) Write(p []byte) (int, error) {
	w.r.mu.Lock()
	defer w.r.mu.Unlock()
	return w.r.logs.Write(p)
}

func (r *testReporter) Logger() *slog.Logger { return r.logger }
func (r *testReporter) SetHealth(h ferry.Health, _ error) {
	r.mu.Lock()
	r.health = h
	r.mu.Unlock()
}
func (r *testReporter) Dropped(reason string, n int) {
	r.mu.Lock()
	r.dropped[reason] += n
	r.mu.Unlock()
}
func (r *testReporter) Retried() {
	r.mu.Lock()
	r.retries++
	r.mu.Unlock()
}
func (r *testReporter) droppedFor(reason string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.dropped[reason]
}
func (r *testReporter) Retries() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.retries
}
func (r *testReporter) Logs() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.logs.String()
}

// received is one push request as the fake Loki decoded it with the
// official push types.
type received struct {
	Header http.Header
	Req    push.PushRequest
}

// fakeLoki is a push API receiver that decodes every body with
// github.com/grafana/loki/pkg/push and answers with respond.
type fakeLoki struct {
	t   testing.TB
	srv *httptest.Server

	mu       sync.Mutex
	reqs     []received
	attempts int
	respond  func(attempt int, w http.ResponseWriter, r *http.Request) bool // true: handled
}

func newFakeLoki(t testing.TB, respond func(attempt int, w http.ResponseWriter, r *http.Request) bool) *fakeLoki {
	f := &fakeLoki{t: t, respond: respond}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeLoki) url() string { return f.srv.URL + "/loki/api/v1/push" }

func (f *fakeLoki) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	attempt := f.attempts
	f.attempts++
	f.mu.Unlock()
	if f.respond != nil && f.respond(attempt, w, r) {
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	req, err := decodeOfficial(r.Header.Get("Content-Type"), body)
	if err != nil {
		f.t.Errorf("fake loki: %v", err)
		http.Error(w, err.Error(), 400)
		return
	}
	f.mu.Lock()
	f.reqs = append(f.reqs, received{Header: r.Header.Clone(), Req: req})
	f.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (f *fakeLoki) received() []received {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]received(nil), f.reqs...)
}

func (f *fakeLoki) attemptCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.attempts
}

// decodeOfficial decodes a push body with the official types: snappy and
// push.PushRequest.Unmarshal for protobuf; for JSON, the documented format
// with push.LabelsAdapter's own JSON decoding for labels and metadata.
func decodeOfficial(ctype string, body []byte) (push.PushRequest, error) {
	var req push.PushRequest
	if ctype != "application/json" {
		raw, err := snappy.Decode(nil, body)
		if err != nil {
			return req, fmt.Errorf("snappy: %w", err)
		}
		if err := req.Unmarshal(raw); err != nil {
			return req, fmt.Errorf("protobuf: %w", err)
		}
		return req, nil
	}
	var jr struct {
		Streams []struct {
			Stream push.LabelsAdapter  `json:"stream"`
			Values [][]json.RawMessage `json:"values"`
		} `json:"streams"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&jr); err != nil {
		return req, fmt.Errorf("json: %w", err)
	}
	for _, s := range jr.Streams {
		ps := push.Stream{Labels: labelsString(s.Stream)}
		for _, v := range s.Values {
			if len(v) < 2 || len(v) > 3 {
				return req, fmt.Errorf("json: value with %d elements", len(v))
			}
			var tss, line string
			if err := json.Unmarshal(v[0], &tss); err != nil {
				return req, fmt.Errorf("json ts: %w", err)
			}
			if err := json.Unmarshal(v[1], &line); err != nil {
				return req, fmt.Errorf("json line: %w", err)
			}
			ns, err := strconv.ParseInt(tss, 10, 64)
			if err != nil {
				return req, fmt.Errorf("json ts: %w", err)
			}
			e := push.Entry{Timestamp: time.Unix(0, ns).UTC(), Line: line}
			if len(v) == 3 {
				if err := json.Unmarshal(v[2], &e.StructuredMetadata); err != nil {
					return req, fmt.Errorf("json metadata: %w", err)
				}
			}
			ps.Entries = append(ps.Entries, e)
		}
		req.Streams = append(req.Streams, ps)
	}
	return req, nil
}

// labelsString renders sorted labels as the sink does.
func labelsString(ls push.LabelsAdapter) string {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, l := range ls {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(l.Name + "=" + strconv.Quote(l.Value))
	}
	b.WriteByte('}')
	return b.String()
}

// ackRecorder collects batch outcomes.
type ackRecorder struct {
	ch chan error
}

func newAckRecorder() *ackRecorder { return &ackRecorder{ch: make(chan error, 100)} }

func (a *ackRecorder) batch(items []ferry.Entry) ferry.Batch[ferry.Entry] {
	return ferry.NewBatch(items, func(err error) { a.ch <- err })
}

func (a *ackRecorder) wait(t testing.TB, d time.Duration) error {
	t.Helper()
	select {
	case err := <-a.ch:
		return err
	case <-time.After(d):
		t.Fatalf("no acknowledgement within %v", d)
		return nil
	}
}

func (a *ackRecorder) none(t testing.TB, d time.Duration) {
	t.Helper()
	select {
	case err := <-a.ch:
		t.Fatalf("unexpected acknowledgement: %v", err)
	case <-time.After(d):
	}
}

// started starts s with rep (a recording one when nil) and fails t if that
// fails.
func started(t testing.TB, s *Sink, rep ferry.Reporter) *Sink {
	t.Helper()
	if rep == nil {
		rep = newTestReporter()
	}
	if err := s.Start(context.Background(), rep); err != nil {
		t.Fatalf("start: %v", err)
	}
	return s
}

func closeSink(t testing.TB, s *Sink) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
}
