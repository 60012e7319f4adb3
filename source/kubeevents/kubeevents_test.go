package kubeevents

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/discovery/kubernetes/kubetest"
	"github.com/ferrydev/ferry/internal/poll"
	"github.com/ferrydev/ferry/internal/reptest"
	"github.com/ferrydev/ferry/internal/retry"
	"github.com/ferrydev/ferry/positions"
	"github.com/ferrydev/ferry/source"
	"github.com/ferrydev/ferry/source/sourcetest"
)

// fakeAPI serves core/v1 events as the API server does: lists (with
// resourceVersion and continue pages), watches from a resourceVersion with
// bookmarks, "410 Gone" for versions older than its history, 403
// Forbidden, and watches it ends on demand.
type fakeAPI struct {
	t   testing.TB
	srv *httptest.Server

	mu        sync.Mutex
	rv        int
	events    map[string]map[string]any // ns/name -> event
	history   []watchLine
	goneBelow int
	forbidden string
	watchers  map[chan watchLine]bool
	watches   int
	lists     int
}

type watchLine struct {
	rv  int
	typ string
	obj map[string]any
}

func newFakeAPI(t testing.TB) *fakeAPI {
	f := &fakeAPI{t: t, rv: 1000, events: map[string]map[string]any{}, watchers: map[chan watchLine]bool{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(func() { f.endWatches(); f.srv.Close() })
	return f
}

func (f *fakeAPI) kubeconfig(t testing.TB) string {
	return kubetest.Kubeconfig(t, f.srv.URL, "x", false)
}

// event adds event name of ns, or changes it (count+1) if it exists, and
// returns its resourceVersion.
func (f *fakeAPI) event(ns, name, reason, msg string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rv++
	key := ns + "/" + name
	typ, count := "ADDED", 1
	if old, ok := f.events[key]; ok {
		typ, count = "MODIFIED", int(old["count"].(float64))+1
	}
	ts := time.Date(2026, 12, 5, 8, 0, 0, 0, time.UTC).Add(time.Duration(f.rv) * time.Second).Format(time.RFC3339)
	obj := map[string]any{"kind": "Event", "apiVersion": "v1",
		"metadata":       map[string]any{"name": name, "namespace": ns, "resourceVersion": strconv.Itoa(f.rv)},
		"involvedObject": map[string]any{"kind": "Pod", "namespace": ns, "name": "web-1", "apiVersion": "v1", "resourceVersion": "77"},
		"reason":         reason, "message": msg, "type": "Normal", "count": float64(count),
		"source":         map[string]any{"component": "kubelet", "host": "node-a"},
		"firstTimestamp": ts, "lastTimestamp": ts}
	f.events[key] = obj
	f.emit(watchLine{f.rv, typ, obj})
	return f.rv
}

func (f *fakeAPI) emit(l watchLine) {
	f.history = append(f.history, l)
	for ch := range f.watchers {
		select {
		case ch <- l:
		default:
		}
	}
}

// bookmark sends a bookmark at a new resourceVersion and returns it.
func (f *fakeAPI) bookmark() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rv++
	f.emit(watchLine{f.rv, "BOOKMARK", map[string]any{"kind": "Event", "apiVersion": "v1",
		"metadata": map[string]any{"resourceVersion": strconv.Itoa(f.rv)}}})
	return f.rv
}

// expire makes every resourceVersion up to now too old for a watch.
func (f *fakeAPI) expire() {
	f.mu.Lock()
	f.goneBelow = f.rv
	f.mu.Unlock()
}

func (f *fakeAPI) forbid(msg string) {
	f.mu.Lock()
	f.forbidden = msg
	f.mu.Unlock()
}

// endWatches ends every open watch, as the server does on timeoutSeconds.
func (f *fakeAPI) endWatches() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for ch := range f.watchers {
		close(ch)
		delete(f.watchers, ch)
	}
}

func (f *fakeAPI) counts() (lists, watches int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lists, f.watches
}

func (f *fakeAPI) serve(w http.ResponseWriter, r *http.Request) {
	status := func(code int, reason, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(map[string]any{"kind": "Status", "apiVersion": "v1", "status": "Failure",
			"message": msg, "reason": reason, "code": code})
	}
	ns := ""
	switch p := r.URL.Path; {
	case p == "/api/v1/events":
	case strings.HasPrefix(p, "/api/v1/namespaces/") && strings.HasSuffix(p, "/events"):
		ns = strings.TrimSuffix(strings.TrimPrefix(p, "/api/v1/namespaces/"), "/events")
	default:
		status(http.StatusNotFound, "NotFound", "not found")
		return
	}
	f.mu.Lock()
	if f.forbidden != "" {
		msg := f.forbidden
		f.mu.Unlock()
		status(http.StatusForbidden, "Forbidden", msg)
		return
	}
	q := r.URL.Query()
	if q.Get("watch") != "true" {
		f.lists++
		// Pages of 2 events, as a server with a small limit; the continue
		// token is the index of the next.
		var items []any
		for _, l := range f.history {
			if l.typ == "BOOKMARK" || ns != "" && l.obj["metadata"].(map[string]any)["namespace"] != ns {
				continue
			}
			if cur := f.events[l.obj["metadata"].(map[string]any)["namespace"].(string)+"/"+l.obj["metadata"].(map[string]any)["name"].(string)]; cur != nil && cur["metadata"].(map[string]any)["resourceVersion"] == strconv.Itoa(l.rv) {
				items = append(items, cur)
			}
		}
		from, _ := strconv.Atoi(q.Get("continue"))
		end := min(from+2, len(items))
		cont := ""
		if end < len(items) {
			cont = strconv.Itoa(end)
		}
		body, _ := json.Marshal(map[string]any{"kind": "EventList", "apiVersion": "v1",
			"metadata": map[string]any{"resourceVersion": strconv.Itoa(f.rv), "continue": cont}, "items": items[from:end]})
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
		return
	}
	f.watches++
	from, _ := strconv.Atoi(q.Get("resourceVersion"))
	if from < f.goneBelow {
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"type": "ERROR", "object": map[string]any{"kind": "Status", "apiVersion": "v1",
			"status": "Failure", "reason": "Expired", "code": 410, "message": fmt.Sprintf("too old resource version: %d (%d)", from, f.goneBelow)}})
		return
	}
	var backlog []watchLine
	for _, l := range f.history {
		if l.rv > from {
			backlog = append(backlog, l)
		}
	}
	ch := make(chan watchLine, 1024)
	f.watchers[ch] = true
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	send := func(l watchLine) {
		if l.typ != "BOOKMARK" && ns != "" && l.obj["metadata"].(map[string]any)["namespace"] != ns {
			return
		}
		enc.Encode(map[string]any{"type": l.typ, "object": l.obj})
		w.(http.Flusher).Flush()
	}
	for _, l := range backlog {
		send(l)
	}
	w.(http.Flusher).Flush()
	for {
		select {
		case <-r.Context().Done():
			f.mu.Lock()
			delete(f.watchers, ch)
			f.mu.Unlock()
			return
		case l, ok := <-ch:
			if !ok {
				return
			}
			send(l)
		}
	}
}

// collector runs a Source and records what it sends; it acknowledges
// every batch unless hold is set.
type collector struct {
	mu      sync.Mutex
	entries []ferry.Entry
	held    []ferry.Batch[ferry.Entry]
	hold    bool
}

func (c *collector) lines() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, e := range c.entries {
		out = append(out, e.Line)
	}
	return out
}

func (c *collector) ackHeld() {
	c.mu.Lock()
	held := c.held
	c.held, c.hold = nil, false
	c.mu.Unlock()
	for _, b := range held {
		b.Done(nil)
	}
}

// start starts s and runs it until the test ends (or stop is called).
func start(t *testing.T, s *Source) (*collector, *reptest.Reporter, func()) {
	t.Helper()
	rep := &reptest.Reporter{}
	if err := s.Start(context.Background(), rep); err != nil {
		t.Fatal(err)
	}
	c := &collector{}
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan ferry.Batch[ferry.Entry])
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, out) }()
	go func() {
		for {
			select {
			case b := <-out:
				c.mu.Lock()
				c.entries = append(c.entries, b.Items...)
				if c.hold {
					c.held = append(c.held, b)
					c.mu.Unlock()
					continue
				}
				c.mu.Unlock()
				b.Done(nil)
			case <-ctx.Done():
				return
			}
		}
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
			if err := s.Close(context.Background()); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return c, rep, stop
}

// messages returns the msg= values of lines.
func messages(lines []string) []string {
	var out []string
	for _, l := range lines {
		_, m, _ := strings.Cut(l, "msg=")
		if u, err := strconv.Unquote(m); err == nil {
			m = u
		}
		out = append(out, m)
	}
	return out
}

func waitMessages(t *testing.T, c *collector, want ...string) {
	t.Helper()
	waitMessagesOf(t, c, func(string) bool { return true }, want...)
}

// waitMessagesOf is waitMessages for the lines that keep accepts: a test
// against a real API server watching every namespace sees the server's
// own events too (its cluster IP repair, in the default namespace).
func waitMessagesOf(t *testing.T, c *collector, keep func(line string) bool, want ...string) {
	t.Helper()
	got := func() []string {
		var lines []string
		for _, l := range c.lines() {
			if keep(l) {
				lines = append(lines, l)
			}
		}
		return messages(lines)
	}
	if !poll.Wait(10*time.Second, func() bool { return strings.Join(got(), "|") == strings.Join(want, "|") }) {
		t.Fatalf("messages %q, want %q (all lines: %q)", got(), want, c.lines())
	}
}

var fast = retry.Backoff{Min: 10 * time.Millisecond, Max: 50 * time.Millisecond}

// TestListThenWatch: the events the server holds (over list pages), then
// new and repeated ones from the watch, each once, with labels and a
// logfmt line; the position follows the acknowledgements.
func TestListThenWatch(t *testing.T) {
	f := newFakeAPI(t)
	f.event("default", "a", "Scheduled", "one")
	f.event("kube-system", "b", "Pulled", "two")
	f.event("default", "c", "Started", "three")
	s := &Source{KubeConfig: f.kubeconfig(t), Instance: "node-a", Backoff: fast}
	c, rep, _ := start(t, s)
	waitMessages(t, c, "one", "two", "three")
	c.mu.Lock()
	c.hold = true
	c.mu.Unlock()
	before, _ := s.Position("")
	rv := f.event("default", "d", "Killing", "four words, with = and \"quotes\"")
	f.event("default", "a", "Scheduled", "one") // repeated: count 2
	waitMessages(t, c, "one", "two", "three", `four words, with = and "quotes"`, "one")
	if pos, _ := s.Position(""); pos != before {
		t.Errorf("position moved to %s before the acknowledgements (from %s)", pos, before)
	}
	c.ackHeld()
	if !poll.Wait(5*time.Second, func() bool { p, _ := s.Position(""); return p == strconv.Itoa(rv+1) }) {
		p, _ := s.Position("")
		t.Errorf("position %s, want %d", p, rv+1)
	}
	c.mu.Lock()
	e := c.entries[len(c.entries)-1]
	c.mu.Unlock()
	if got, want := e.Labels.String(), `{instance="node-a", job="loki.source.kubernetes_events", namespace="default"}`; got != want {
		t.Errorf("labels %s, want %s", got, want)
	}
	if want := fmt.Sprintf("kind=Pod name=web-1 objectAPIversion=v1 objectRV=77 eventRV=%d type=Normal reason=Scheduled count=2 "+
		"sourcecomponent=kubelet sourcehost=node-a msg=one", rv+1); e.Line != want {
		t.Errorf("line\n %s\nwant\n %s", e.Line, want)
	}
	if !e.Timestamp.Equal(time.Date(2026, 12, 5, 8, 0, 0, 0, time.UTC).Add(time.Duration(rv+1) * time.Second)) {
		t.Errorf("timestamp %v", e.Timestamp)
	}
	if h, err := rep.Health(); h != ferry.Healthy {
		t.Errorf("health %v %v", h, err)
	}
}

// TestRestartAndGone: a Source restarted on the same positions file reads
// only what came after; watches the server ends are resumed; a position
// older than the server's history (410 Gone) makes it list again and send
// only the newer events, none twice.
func TestRestartAndGone(t *testing.T) {
	f := newFakeAPI(t)
	pf := positions.Memory()
	f.event("default", "a", "R", "one")
	c, _, stop := start(t, &Source{KubeConfig: f.kubeconfig(t), Positions: pf, Namespaces: []string{"default"}, Backoff: fast})
	waitMessages(t, c, "one")
	f.event("kube-system", "x", "R", "other namespace")
	f.event("default", "b", "R", "two")
	waitMessages(t, c, "one", "two")
	_, w0 := f.counts()
	f.endWatches()
	f.event("default", "c", "R", "three")
	waitMessages(t, c, "one", "two", "three")
	if _, w := f.counts(); w <= w0 {
		t.Errorf("watches %d after the server ended one, want more than %d", w, w0)
	}
	stop()
	if p, ok := pf.Get(DefaultPositionKey + "default"); !ok || p == "" {
		t.Fatalf("no position saved: %q", p)
	}

	f.event("default", "d", "R", "four") // while stopped
	c, _, stop = start(t, &Source{KubeConfig: f.kubeconfig(t), Positions: pf, Namespaces: []string{"default"}, Backoff: fast})
	waitMessages(t, c, "four")
	stop()

	f.event("default", "e", "R", "five")
	f.event("default", "b", "R", "two") // repeated while stopped
	f.expire()
	lists0, _ := f.counts()
	c, _, _ = start(t, &Source{KubeConfig: f.kubeconfig(t), Positions: pf, Namespaces: []string{"default"}, Backoff: fast})
	waitMessages(t, c, "five", "two")
	if lists, _ := f.counts(); lists <= lists0 {
		t.Errorf("no list after 410 Gone")
	}
	f.event("default", "f", "R", "six")
	waitMessages(t, c, "five", "two", "six")
}

// TestBookmark: a bookmark moves the position with nothing to deliver.
func TestBookmark(t *testing.T) {
	f := newFakeAPI(t)
	f.event("default", "a", "R", "one")
	s := &Source{KubeConfig: f.kubeconfig(t), Backoff: fast}
	c, _, _ := start(t, s)
	waitMessages(t, c, "one")
	rv := f.bookmark()
	if !poll.Wait(5*time.Second, func() bool { p, _ := s.Position(""); return p == strconv.Itoa(rv) }) {
		p, _ := s.Position("")
		t.Fatalf("position %s after a bookmark at %d", p, rv)
	}
}

// TestForbidden: RBAC refusing makes the source Failing with the server's
// message; once allowed it reads and is Healthy.
func TestForbidden(t *testing.T) {
	f := newFakeAPI(t)
	f.event("default", "a", "R", "one")
	msg := `events is forbidden: User "system:serviceaccount:ferry:agent" cannot list resource "events" in API group "" at the cluster scope`
	f.forbid(msg)
	c, rep, _ := start(t, &Source{KubeConfig: f.kubeconfig(t), Backoff: fast})
	if !poll.Wait(10*time.Second, func() bool {
		h, err := rep.Health()
		return h == ferry.Failing && err != nil && strings.Contains(err.Error(), "403") && strings.Contains(err.Error(), msg)
	}) {
		h, err := rep.Health()
		t.Fatalf("health %v %v", h, err)
	}
	f.forbid("")
	waitMessages(t, c, "one")
	if !poll.Wait(10*time.Second, func() bool { h, _ := rep.Health(); return h == ferry.Healthy }) {
		t.Fatal("not Healthy once allowed")
	}
}

func TestServerGone(t *testing.T) {
	f := newFakeAPI(t)
	kc := f.kubeconfig(t)
	f.srv.Close()
	_, rep, _ := start(t, &Source{KubeConfig: kc, Backoff: fast})
	if !poll.Wait(10*time.Second, func() bool {
		h, err := rep.Health()
		return h == ferry.Failing && err != nil && strings.Contains(err.Error(), "unreachable")
	}) {
		h, err := rep.Health()
		t.Fatalf("health %v %v", h, err)
	}
	if rep.Retries() == 0 {
		t.Error("no retry counted")
	}
}

func TestErrors(t *testing.T) {
	err := (&Source{}).Run(context.Background(), make(chan ferry.Batch[ferry.Entry]))
	if !errors.Is(err, ferry.ErrNotStarted) {
		t.Errorf("Run before Start: %v", err)
	}
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("KUBERNETES_SERVICE_PORT", "")
	if err := (&Source{}).Start(context.Background(), nil); err == nil || !strings.Contains(err.Error(), "not running in a cluster") {
		t.Errorf("Start outside a cluster: %v", err)
	}
	for _, tc := range []struct {
		s    *Source
		want string
	}{
		{&Source{Format: 7}, "unknown Format"},
		{&Source{BatchSize: -1}, "negative BatchSize"},
		{&Source{Namespaces: []string{"a/b"}}, "invalid namespace"},
	} {
		if err := tc.s.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate = %v, want %q", err, tc.want)
		}
	}
}

func TestFormat(t *testing.T) {
	fs := []field{{"kind", "Pod"}, {"msg", "Back-off restarting failed container"}, {"x", ""}}
	if got, want := format(FormatLogfmt, fs), `kind=Pod msg="Back-off restarting failed container" x=""`; got != want {
		t.Errorf("logfmt %s, want %s", got, want)
	}
	if got, want := format(FormatJSON, fs), `{"kind":"Pod","msg":"Back-off restarting failed container","x":""}`; got != want {
		t.Errorf("json %s, want %s", got, want)
	}
}

func TestConformance(t *testing.T) {
	f := newFakeAPI(t)
	for i := range 5 {
		f.event("default", fmt.Sprint("e", i), "R", fmt.Sprint("m", i))
	}
	sourcetest.Run(t, sourcetest.Harness[ferry.Entry]{
		New: func(t *testing.T) source.Source[ferry.Entry] {
			return &Source{KubeConfig: f.kubeconfig(t), Backoff: fast, BatchSize: 2}
		},
		Want: 5,
	})
}

// FuzzStream feeds arbitrary watch streams to the reader: it returns, with
// an error or not, and never panics.
func FuzzStream(f *testing.F) {
	f.Add([]byte(`{"type":"ADDED","object":{"metadata":{"name":"a","namespace":"n","resourceVersion":"5"},"message":"m","count":1}}` + "\n" +
		`{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"9"}}}`))
	f.Add([]byte(`{"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired"}}`))
	f.Add([]byte(`{"type":"MODIFIED","object":{"series":{"count":3},"lastTimestamp":"bad"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		out := make(chan ferry.Batch[ferry.Entry])
		drained := make(chan struct{})
		go func() {
			defer close(drained)
			for b := range out {
				b.Done(nil)
			}
		}()
		r := &reader{s: &Source{}, t: positions.NewTracker("", false, nil), out: out, lb: labels.NewBuilder(labels.EmptyLabels()), rv: "1"}
		_ = r.stream(context.Background(), bytes.NewReader(data))
		close(out)
		<-drained
	})
}
