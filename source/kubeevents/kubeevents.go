// Package kubeevents reads Kubernetes Events (core/v1) from the API server
// as log entries, as Alloy's loki.source.kubernetes_events does: one entry
// per event added or changed (a repeated event, whose count grows, is an
// entry again), labelled job and namespace, its line in logfmt or JSON.
//
// For each watched namespace (or the whole cluster) Source lists the
// events, then watches them from the list's resourceVersion with
// bookmarks. The resourceVersion is the position: it advances only past
// events delivered (at-least-once), is kept in a positions.File, and a
// restarted Source watches from it. A watch the server ends is resumed from
// the last resourceVersion seen; a "410 Gone" (the version is older than
// the server's history) makes Source list again and emit only the events
// newer than the last one read, comparing resourceVersions as the numbers
// (etcd revisions) the API server gives. Without a stored position the
// first list emits the events the server still holds (one hour by
// default), so that a new agent starts with recent history.
package kubeevents

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/discovery/kubernetes"
	"github.com/ferrydev/ferry/internal/lifecycle"
	"github.com/ferrydev/ferry/internal/retry"
	"github.com/ferrydev/ferry/positions"
	"github.com/ferrydev/ferry/source"
)

// Defaults of the zero Source's fields.
const (
	// DefaultJob is the job label, Alloy's, so that queries written for
	// loki.source.kubernetes_events keep working.
	DefaultJob = "loki.source.kubernetes_events"
	// DefaultPositionKey prefixes the position of each namespace (the
	// namespace's name, or "*" for all).
	DefaultPositionKey = "kubeevents/"
	// DefaultBatchSize bounds the entries of a batch of listed events.
	DefaultBatchSize = 500
)

// Format is the format of an entry's line.
type Format int

// The formats, both names of LogQL parsers.
const (
	FormatLogfmt Format = iota
	FormatJSON
)

// The errors of Run before Start and after Close.
var (
	ErrNotStarted = fmt.Errorf("kubeevents: Run before Start: %w", ferry.ErrNotStarted)
	ErrClosed     = fmt.Errorf("kubeevents: %w", ferry.ErrClosed)
)

// Source reads Kubernetes Events. The zero value reads every namespace's
// events with the in-cluster service account, which needs get, list and
// watch on events (at the cluster scope, or in each of Namespaces).
type Source struct {
	// KubeConfig is the path of a kubeconfig file; empty means the
	// in-cluster configuration (see kubernetes.Discoverer.RESTConfig for
	// the errors when there is none).
	KubeConfig string
	// Namespaces restricts reading to these namespaces; empty means all.
	Namespaces []string
	// Job is the job label; default DefaultJob.
	Job string
	// Instance, if set, is the instance label.
	Instance string
	// Format of the lines; default FormatLogfmt.
	Format Format
	// Positions keeps the resourceVersion of each namespace under
	// PositionKey (default DefaultPositionKey) + namespace ("*" for all);
	// nil keeps it in memory, across restarts of Run but not of the
	// process.
	Positions   *positions.File
	PositionKey string
	// BatchSize bounds the entries of a batch of listed events (default
	// DefaultBatchSize); each watched event is a batch of its own.
	BatchSize int
	// Backoff is the wait between attempts after an error (default 1s
	// doubling to 30s, with jitter).
	Backoff retry.Backoff

	life lifecycle.State
	rc   *rest.Config
	hc   *http.Client
	rep  ferry.Reporter

	mu       sync.Mutex
	trackers map[string]*positions.Tracker[string] // namespace -> resourceVersion
}

var (
	_ source.Source[ferry.Entry] = (*Source)(nil)
	_ source.Closer              = (*Source)(nil)
	_ ferry.Starter              = (*Source)(nil)
)

// Validate reports a configuration that cannot work.
func (s *Source) Validate() error {
	var errs []error
	if s.Format != FormatLogfmt && s.Format != FormatJSON {
		errs = append(errs, fmt.Errorf("kubeevents: unknown Format %d", s.Format))
	}
	if s.BatchSize < 0 {
		errs = append(errs, errors.New("kubeevents: negative BatchSize"))
	}
	for _, ns := range s.Namespaces {
		if ns == "" || strings.ContainsAny(ns, "/ ") {
			errs = append(errs, fmt.Errorf("kubeevents: invalid namespace %q", ns))
		}
	}
	return errors.Join(errs...)
}

// Start validates the configuration, builds the client (a missing
// kubeconfig or service account token fails here, clearly) and loads the
// stored positions.
func (s *Source) Start(ctx context.Context, r ferry.Reporter) error {
	return s.life.Start(ErrClosed, func() error {
		if err := s.Validate(); err != nil {
			return err
		}
		rc, err := (&kubernetes.Discoverer{KubeConfig: s.KubeConfig}).RESTConfig()
		if err != nil {
			return fmt.Errorf("kubeevents: %w", err)
		}
		hc, err := rest.HTTPClientFor(rc)
		if err != nil {
			return fmt.Errorf("kubeevents: %w", err)
		}
		if r == nil {
			r = ferry.NopReporter()
		}
		s.rc, s.hc, s.rep = rc, hc, r
		s.trackers = map[string]*positions.Tracker[string]{}
		for _, ns := range s.namespaces() {
			key := s.key(ns)
			var rv string
			var ok bool
			if s.Positions != nil {
				rv, ok = s.Positions.Get(key)
			}
			s.trackers[ns] = positions.NewTracker(rv, ok && rv != "", func(rv string) {
				if s.Positions != nil {
					s.Positions.Set(key, rv)
				}
			})
		}
		return nil
	})
}

// Close saves the positions. It is safe without Start and safe twice.
func (s *Source) Close(ctx context.Context) error {
	return s.life.Close(func(started bool) error {
		if s.Positions != nil {
			return s.Positions.Save()
		}
		return nil
	})
}

// Position returns the committed resourceVersion of namespace ns ("" when
// reading all namespaces): every event up to it was delivered.
func (s *Source) Position(ns string) (string, bool) {
	s.mu.Lock()
	t := s.trackers[ns]
	s.mu.Unlock()
	if t == nil {
		return "", false
	}
	return t.Committed()
}

func (s *Source) namespaces() []string {
	if len(s.Namespaces) == 0 {
		return []string{""}
	}
	return slices.Compact(slices.Sorted(slices.Values(s.Namespaces)))
}

func (s *Source) key(ns string) string {
	p := s.PositionKey
	if p == "" {
		p = DefaultPositionKey
	}
	if ns == "" {
		ns = "*"
	}
	return p + ns
}

// Run reads the events of every namespace until ctx is done. Errors (the
// API server unreachable, RBAC refusing) make the source Failing and are
// retried with backoff; the next watch established makes it Healthy.
func (s *Source) Run(ctx context.Context, out chan<- ferry.Batch[ferry.Entry]) error {
	if err := s.life.Err(ErrNotStarted, ErrClosed); err != nil {
		return err
	}
	var wg sync.WaitGroup
	for _, ns := range s.namespaces() {
		s.mu.Lock()
		t := s.trackers[ns]
		s.mu.Unlock()
		t.Reset() // batches of a previous Run are read again
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.follow(ctx, ns, t, out)
		}()
	}
	wg.Wait()
	return nil
}

// errGone is a resourceVersion older than the server's history.
var errGone = errors.New("resource version too old (410 Gone)")

// reader reads the events of one namespace.
type reader struct {
	s   *Source
	ns  string
	t   *positions.Tracker[string]
	out chan<- ferry.Batch[ferry.Entry]
	lb  *labels.Builder
	// rv is the resourceVersion read up to: the last event sent, or the
	// last list or bookmark.
	rv string
}

func (s *Source) follow(ctx context.Context, ns string, t *positions.Tracker[string], out chan<- ferry.Batch[ferry.Entry]) {
	bo := s.Backoff
	if bo.Min == 0 {
		bo = retry.Backoff{Min: time.Second, Max: 30 * time.Second, Jitter: true}
	}
	r := &reader{s: s, ns: ns, t: t, out: out, lb: labels.NewBuilder(labels.EmptyLabels())}
	r.rv, _ = t.Committed()
	list := r.rv == ""
	for ctx.Err() == nil {
		var err error
		if list {
			err = r.list(ctx)
			list = err != nil
		}
		if err == nil {
			err = r.watch(ctx)
		}
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, errGone):
			s.rep.Logger().Info("kubernetes events: resourceVersion too old, listing again", "namespace", ns, "rv", r.rv)
			list = true
			continue
		case err == nil: // the server ended the watch; resume it
			bo.Reset()
			continue
		}
		s.rep.SetHealth(ferry.Failing, err)
		s.rep.Logger().Warn("kubernetes events", "namespace", ns, "err", err)
		s.rep.Retried()
		if retry.Sleep(ctx, bo.Next()) != nil {
			return
		}
	}
}

// url returns the events URL of r's namespace with query q.
func (r *reader) url(q url.Values) string {
	base := strings.TrimSuffix(r.s.rc.Host, "/")
	if !strings.Contains(base, "://") {
		base = "https://" + base
	}
	p := strings.TrimSuffix(r.s.rc.APIPath, "/") + "/api/v1/"
	if r.ns != "" {
		p += "namespaces/" + url.PathEscape(r.ns) + "/"
	}
	return base + p + "events?" + q.Encode()
}

func (r *reader) get(ctx context.Context, q url.Values) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url(q), nil)
	if err != nil {
		return nil, fmt.Errorf("kubeevents: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := r.s.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("kubernetes events: API server unreachable: %w", err)
	}
	if resp.StatusCode == http.StatusOK {
		return resp, nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode == http.StatusGone {
		return nil, errGone
	}
	msg := strings.TrimSpace(string(body))
	var st metav1.Status
	if json.Unmarshal(body, &st) == nil && st.Message != "" {
		msg = st.Message
	}
	return nil, fmt.Errorf("kubernetes events: %s %s: %s", r.where(), resp.Status, msg)
}

func (r *reader) where() string {
	if r.ns == "" {
		return "events in all namespaces"
	}
	return fmt.Sprintf("events in namespace %q", r.ns)
}

// newer reports whether resourceVersion a is after b (empty b: always).
func newer(a, b string) bool {
	if b == "" {
		return true
	}
	x, err1 := strconv.ParseUint(a, 10, 64)
	y, err2 := strconv.ParseUint(b, 10, 64)
	if err1 != nil || err2 != nil {
		return a != b
	}
	return x > y
}

// list lists the events (in pages), sends those newer than r.rv in
// resourceVersion order, and moves r.rv to the list's resourceVersion.
func (r *reader) list(ctx context.Context) error {
	var items []corev1.Event
	var listRV, cont string
	for {
		q := url.Values{"limit": {"500"}}
		if cont != "" {
			q.Set("continue", cont)
		}
		resp, err := r.get(ctx, q)
		if err != nil {
			if errors.Is(err, errGone) && cont != "" {
				cont, items = "", items[:0] // the continue token expired: again from the start
				continue
			}
			return err
		}
		var l corev1.EventList
		err = json.NewDecoder(resp.Body).Decode(&l)
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("kubernetes events: list %s: %w", r.where(), err)
		}
		for _, e := range l.Items {
			if newer(e.ResourceVersion, r.rv) {
				items = append(items, e)
			}
		}
		if listRV == "" {
			listRV = l.ResourceVersion
		}
		if cont = l.Continue; cont == "" {
			break
		}
	}
	slices.SortStableFunc(items, func(a, b corev1.Event) int {
		switch {
		case newer(a.ResourceVersion, b.ResourceVersion):
			return 1
		case newer(b.ResourceVersion, a.ResourceVersion):
			return -1
		}
		return 0
	})
	size := r.s.BatchSize
	if size == 0 {
		size = DefaultBatchSize
	}
	for len(items) > 0 {
		n := min(size, len(items))
		if err := r.send(ctx, items[:n]); err != nil {
			return err
		}
		items = items[n:]
	}
	r.mark(listRV)
	return nil
}

// mark moves the position to rv once everything before is delivered.
func (r *reader) mark(rv string) {
	if rv == "" || !newer(rv, r.rv) {
		return
	}
	r.rv = rv
	r.t.Track(rv)(nil)
}

// send sends the events as one batch whose position is the last one's
// resourceVersion.
func (r *reader) send(ctx context.Context, evs []corev1.Event) error {
	entries := make([]ferry.Entry, len(evs))
	for i := range evs {
		entries[i] = r.entry(&evs[i])
	}
	rv := evs[len(evs)-1].ResourceVersion
	b := ferry.NewBatch(entries, r.t.Track(rv))
	select {
	case r.out <- b:
		r.rv = rv
		return nil
	case <-ctx.Done():
		b.Done(ctx.Err())
		return ctx.Err()
	}
}

// watchEvent is one line of a watch stream.
type watchEvent struct {
	Type   string          `json:"type"`
	Object json.RawMessage `json:"object"`
}

// watch watches from r.rv until the server ends the stream (nil), an
// error, or ctx is done.
func (r *reader) watch(ctx context.Context) error {
	q := url.Values{"watch": {"true"}, "resourceVersion": {r.rv}, "allowWatchBookmarks": {"true"},
		// As client-go's reflector: end each watch after 5 to 10 minutes.
		"timeoutSeconds": {strconv.Itoa(300 + rand.IntN(300))}}
	resp, err := r.get(ctx, q)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	r.s.rep.SetHealth(ferry.Healthy, nil)
	return r.stream(ctx, resp.Body)
}

// stream reads watch events from body until it ends (nil), an error, or
// ctx is done.
func (r *reader) stream(ctx context.Context, body io.Reader) error {
	dec := json.NewDecoder(bufio.NewReader(body))
	for {
		var we watchEvent
		if err := dec.Decode(&we); err != nil {
			if ctx.Err() != nil || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil
			}
			return fmt.Errorf("kubernetes events: watch %s: %w", r.where(), err)
		}
		switch we.Type {
		case "ADDED", "MODIFIED":
			var e corev1.Event
			if err := json.Unmarshal(we.Object, &e); err != nil {
				return fmt.Errorf("kubernetes events: watch %s: %w", r.where(), err)
			}
			if !newer(e.ResourceVersion, r.rv) {
				continue // already sent
			}
			if err := r.send(ctx, []corev1.Event{e}); err != nil {
				return err
			}
		case "DELETED", "BOOKMARK":
			var m struct {
				Metadata metav1.ObjectMeta `json:"metadata"`
			}
			if json.Unmarshal(we.Object, &m) == nil {
				r.mark(m.Metadata.ResourceVersion)
			}
		case "ERROR":
			var st metav1.Status
			_ = json.Unmarshal(we.Object, &st)
			if st.Code == http.StatusGone || st.Reason == metav1.StatusReasonExpired || st.Reason == metav1.StatusReasonGone {
				return errGone
			}
			return fmt.Errorf("kubernetes events: watch %s: %d %s: %s", r.where(), st.Code, st.Reason, st.Message)
		}
	}
}
