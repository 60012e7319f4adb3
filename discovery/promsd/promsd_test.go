package promsd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/discovery"
	promhttp "github.com/prometheus/prometheus/discovery/http"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/ferrydev/ferry"
)

// fakeConfig is a mechanism whose groups the test sends.
type fakeConfig struct {
	groups chan []*targetgroup.Group
	runs   int
	mu     sync.Mutex
}

func (c *fakeConfig) Name() string { return "fake" }
func (c *fakeConfig) NewDiscoverer(discovery.DiscovererOptions) (discovery.Discoverer, error) {
	c.mu.Lock()
	c.runs++
	c.mu.Unlock()
	return c, nil
}
func (c *fakeConfig) NewDiscovererMetrics(prometheus.Registerer, discovery.RefreshMetricsInstantiator) discovery.DiscovererMetrics {
	return &discovery.NoopDiscovererMetrics{}
}
func (c *fakeConfig) Run(ctx context.Context, up chan<- []*targetgroup.Group) {
	for {
		select {
		case <-ctx.Done():
			return
		case g := <-c.groups:
			select {
			case up <- g:
			case <-ctx.Done():
				return
			}
		}
	}
}

type healthRec struct {
	mu      sync.Mutex
	h       ferry.Health
	err     error
	changed chan struct{} // if not nil, receives after every SetHealth
}

func (r *healthRec) Logger() *slog.Logger { return slog.New(slog.DiscardHandler) }
func (r *healthRec) SetHealth(h ferry.Health, err error) {
	r.mu.Lock()
	r.h, r.err = h, err
	r.mu.Unlock()
	if r.changed != nil {
		select {
		case r.changed <- struct{}{}:
		default: // one pending notice is enough: the waiter reads the state
		}
	}
}
func (r *healthRec) Dropped(string, int) {}
func (r *healthRec) Retried()            {}

func group(src string, glabels model.LabelSet, targets ...model.LabelSet) *targetgroup.Group {
	return &targetgroup.Group{Source: src, Labels: glabels, Targets: targets}
}

func recv(t *testing.T, up <-chan []labels.Labels) []labels.Labels {
	t.Helper()
	select {
	case s := <-up:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("no set sent")
		return nil
	}
}

func strs(s []labels.Labels) []string {
	var out []string
	for _, l := range s {
		out = append(out, l.String())
	}
	return out
}

func start(t *testing.T, d *Discoverer, r ferry.Reporter) <-chan []labels.Labels {
	t.Helper()
	if err := d.Start(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	up := make(chan []labels.Labels)
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, up) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return up
}

func TestGroupsToSets(t *testing.T) {
	c := &fakeConfig{groups: make(chan []*targetgroup.Group)}
	up := start(t, &Discoverer{Config: c, UpdateDelay: time.Millisecond}, &healthRec{})

	c.groups <- []*targetgroup.Group{
		group("b", model.LabelSet{"job": "g", "zone": "z"}, model.LabelSet{"__address__": "b1", "zone": "own"}),
		group("a", nil, model.LabelSet{"__address__": "a1"}, model.LabelSet{"__address__": "a2"}),
	}
	want := []string{`{__address__="a1"}`, `{__address__="a2"}`, `{__address__="b1", job="g", zone="own"}`}
	if got := strs(recv(t, up)); !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	// An update replaces its source; an empty group removes it.
	c.groups <- []*targetgroup.Group{group("a", nil)}
	c.groups <- []*targetgroup.Group{group("b", model.LabelSet{"job": "h"}, model.LabelSet{"__address__": "b2"})}
	want = []string{`{__address__="b2", job="h"}`}
	var got []string
	for !slices.Equal(got, want) {
		got = strs(recv(t, up))
		if len(got) > 0 && !slices.Equal(got, want) && !slices.Contains([]string{`{__address__="b1", job="g", zone="own"}`}, got[0]) {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
}

func TestEmptyFirstSet(t *testing.T) {
	c := &fakeConfig{groups: make(chan []*targetgroup.Group)}
	up := start(t, &Discoverer{Config: c, FirstSetTimeout: 20 * time.Millisecond}, &healthRec{})
	if s := recv(t, up); len(s) != 0 {
		t.Fatalf("first set %v, want empty", s)
	}
}

func TestStaticClosesChannel(t *testing.T) {
	up := start(t, &Discoverer{Config: discovery.StaticConfig{group("s", model.LabelSet{"job": "x"},
		model.LabelSet{"__address__": "h:1"})}}, &healthRec{})
	if got := strs(recv(t, up)); !slices.Equal(got, []string{`{__address__="h:1", job="x"}`}) {
		t.Fatalf("got %v", got)
	}
}

func TestLifecycle(t *testing.T) {
	if err := (&Discoverer{}).Validate(); err == nil || !strings.Contains(err.Error(), "Config is nil") {
		t.Errorf("Validate: %v", err)
	}
	err := (&Discoverer{Config: &fakeConfig{}}).Run(context.Background(), nil)
	if !ferry.IsPermanent(err) || !errors.Is(err, ferry.ErrNotStarted) {
		t.Errorf("Run before Start: %v, want a permanent error wrapping ferry.ErrNotStarted", err)
	}
	// Run twice after one Start: a fresh Prometheus discoverer each time.
	c := &fakeConfig{groups: make(chan []*targetgroup.Group)}
	d := &Discoverer{Config: c, FirstSetTimeout: time.Millisecond}
	if err := d.Start(context.Background(), &healthRec{}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		ctx, cancel := context.WithCancel(context.Background())
		up := make(chan []labels.Labels)
		done := make(chan error)
		go func() { done <- d.Run(ctx, up) }()
		recv(t, up)
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if c.runs != 2 {
		t.Errorf("NewDiscoverer called %d times, want 2", c.runs)
	}
	if err := d.Close(context.Background()); err != nil {
		t.Error(err)
	}
}

func TestCheckHealth(t *testing.T) {
	var mu sync.Mutex
	fail := fmt.Errorf("backend says no")
	c := &fakeConfig{groups: make(chan []*targetgroup.Group)}
	r := &healthRec{changed: make(chan struct{}, 1)}
	start(t, &Discoverer{Config: c, CheckInterval: 5 * time.Millisecond, Check: func(context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		return fail
	}}, r)
	wait := func(h ferry.Health) {
		t.Helper()
		deadline := time.NewTimer(10 * time.Second)
		defer deadline.Stop()
		for {
			r.mu.Lock()
			got, err := r.h, r.err
			r.mu.Unlock()
			if got == h && (h != ferry.Failing || err == fail) {
				return
			}
			select {
			case <-r.changed:
			case <-deadline.C:
				t.Fatalf("health %v (%v), want %v", got, err, h)
			}
		}
	}
	wait(ferry.Failing)
	mu.Lock()
	fail = nil
	mu.Unlock()
	wait(ferry.Healthy)
}

// TestHTTPSD runs Prometheus's http_sd mechanism against an HTTP server,
// twice on one registry: its metrics are registered once.
func TestHTTPSD(t *testing.T) {
	var mu sync.Mutex
	body := `[{"targets":["10.0.0.1:9100","10.0.0.2:9100"],"labels":{"env":"prod"}}]`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, body)
	}))
	defer srv.Close()
	reg := prometheus.NewRegistry()
	mk := func() *Discoverer {
		cfg := promhttp.DefaultSDConfig
		cfg.URL = srv.URL
		cfg.RefreshInterval = model.Duration(20 * time.Millisecond)
		return &Discoverer{Config: &cfg, Registerer: reg, UpdateDelay: time.Millisecond}
	}
	up1 := start(t, mk(), &healthRec{})
	up2 := start(t, mk(), &healthRec{})
	want := []string{`{__address__="10.0.0.1:9100", __meta_url="` + srv.URL + `", env="prod"}`,
		`{__address__="10.0.0.2:9100", __meta_url="` + srv.URL + `", env="prod"}`}
	for _, up := range []<-chan []labels.Labels{up1, up2} {
		if got := strs(recv(t, up)); !slices.Equal(got, want) {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	mu.Lock()
	body = `[{"targets":["10.0.0.3:9100"]}]`
	mu.Unlock()
	want = []string{`{__address__="10.0.0.3:9100", __meta_url="` + srv.URL + `"}`}
	deadline := time.Now().Add(10 * time.Second)
	for got := strs(recv(t, up1)); !slices.Equal(got, want); got = strs(recv(t, up1)) {
		if time.Now().After(deadline) {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	if !slices.Contains(names, "prometheus_sd_http_failures_total") || !slices.Contains(names, "prometheus_sd_refresh_duration_seconds") {
		t.Errorf("metrics %v lack prometheus_sd_http_failures_total or the refresh metrics", names)
	}
}
