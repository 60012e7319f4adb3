package podlogs_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/discovery"
	"github.com/ferrydev/ferry/relabel"
	"github.com/ferrydev/ferry/source/podlogs"
)

var (
	web     = ctr{"default", "web", "uid-web", "web", "node-a"}
	sidecar = ctr{"default", "web", "uid-web", "sidecar", "node-a"}
	dns     = ctr{"kube-system", "dns", "uid-dns", "dns", "node-a"}
)

func TestRules(t *testing.T) {
	rs := relabel.MustNew(podlogs.Rules("/var/log/pods")...)
	got, keep := rs.Apply(web.target())
	if !keep {
		t.Fatal("pod target dropped")
	}
	for name, want := range map[string]string{
		"__path__":  "/var/log/pods/default_web_uid-web/web/*.log",
		"namespace": "default", "pod": "web", "container": "web", "node": "node-a",
	} {
		if got.Get(name) != want {
			t.Errorf("%s = %q, want %q", name, got.Get(name), want)
		}
	}
	if _, keep := rs.Apply(labels.FromStrings("__meta_kubernetes_namespace", "x")); keep {
		t.Error("a target without pod labels was kept")
	}
}

// recorder runs a Discoverer and keeps the last set.
type recorder struct {
	mu      sync.Mutex
	last    []labels.Labels
	n       int
	changed chan struct{} // receives after every set (one pending notice)
}

func (r *recorder) paths() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, t := range r.last {
		out = append(out, t.Get("__path__"))
	}
	return out
}

func runDisc(t *testing.T, d discovery.Discoverer) *recorder {
	t.Helper()
	r := &recorder{changed: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	up := make(chan []labels.Labels)
	done := make(chan error, 1)
	if s, ok := d.(ferry.Starter); ok {
		if err := s.Start(ctx, ferry.NopReporter()); err != nil {
			t.Fatal(err)
		}
	}
	go func() { done <- d.Run(ctx, up) }()
	go func() {
		for {
			select {
			case s := <-up:
				r.mu.Lock()
				r.last, r.n = s, r.n+1
				r.mu.Unlock()
				select {
				case r.changed <- struct{}{}:
				default:
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return r
}

func waitPaths(t *testing.T, r *recorder, want ...string) {
	t.Helper()
	slices.Sort(want)
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for {
		got := r.paths()
		slices.Sort(got)
		if slices.Equal(got, want) {
			return
		}
		select {
		case <-r.changed:
		case <-deadline.C:
			t.Fatalf("paths %v, want %v", got, want)
		}
	}
}

// pods is a discoverer whose sets the test replaces.
type pods struct{ ch chan []labels.Labels }

func (p pods) Run(ctx context.Context, up chan<- []labels.Labels) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case s := <-p.ch:
			select {
			case up <- s:
			case <-ctx.Done():
				return nil
			}
		}
	}
}

func TestDiscoverer(t *testing.T) {
	root := t.TempDir()
	k := newKubelet(t, root)
	k.write(web, 0, "hello")
	p := pods{make(chan []labels.Labels)}
	d := &podlogs.Discoverer{Pods: p, Root: root, RefreshInterval: 20 * time.Millisecond}
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	r := runDisc(t, d)
	// web twice (two ports), sidecar and dns whose files do not exist yet.
	p.ch <- []labels.Labels{web.target(), web.target(), sidecar.target(), dns.target()}
	waitPaths(t, r, k.file(web, 0))

	k.write(dns, 0, "up")     // a directory that appears later
	k.write(sidecar, 0, "up") // a container that starts later
	waitPaths(t, r, k.file(web, 0), k.file(dns, 0), k.file(sidecar, 0))

	k.write(web, 1, "restarted") // container restart: a new file next to the old
	rotated := k.rotate(dns, 0)  // rotated files are not targets
	waitPaths(t, r, k.file(web, 0), k.file(web, 1), k.file(dns, 0), k.file(sidecar, 0))
	if _, err := os.Stat(rotated); err != nil {
		t.Fatal(err)
	}

	p.ch <- []labels.Labels{web.target()} // dns and the sidecar went away
	waitPaths(t, r, k.file(web, 0), k.file(web, 1))

	r.mu.Lock()
	var got labels.Labels
	for _, l := range r.last {
		if strings.HasSuffix(l.Get("__path__"), "1.log") {
			got = l
		}
	}
	r.mu.Unlock()
	want := labels.FromStrings("__path__", k.file(web, 1), "container", "web", "namespace", "default",
		"node", "node-a", "pod", "web")
	// The pod's __meta labels travel along, for rules of the user's.
	got = labels.NewBuilder(got).Del("__address__", "__meta_kubernetes_namespace", "__meta_kubernetes_pod_name",
		"__meta_kubernetes_pod_uid", "__meta_kubernetes_pod_container_name", "__meta_kubernetes_pod_node_name",
		"__meta_kubernetes_pod_label_app").Labels()
	if !labels.Equal(got, want) {
		t.Errorf("target %v, want %v", got, want)
	}
}

func TestValidate(t *testing.T) {
	err := (&podlogs.Discoverer{}).Validate()
	if err == nil || !strings.Contains(err.Error(), "Pods is nil") {
		t.Errorf("Validate: %v", err)
	}
	err = (&podlogs.Discoverer{Pods: discovery.Static{}, Rules: []relabel.Rule{relabel.Keep([]string{"a"}, "(")}}).Validate()
	if err == nil {
		t.Error("a bad rule passed Validate")
	}
	// Start and Close pass through to a Pods without them.
	d := &podlogs.Discoverer{Pods: discovery.Static{}, Root: t.TempDir()}
	if err := d.Start(context.Background(), ferry.NopReporter()); err != nil {
		t.Error(err)
	}
	if err := d.Close(context.Background()); err != nil {
		t.Error(err)
	}
}

// TestRootMissing: an agent whose container lacks the node's pod log
// directory (the host path is not mounted) stops at Start with a clear
// error, instead of finding no files forever.
func TestRootMissing(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "pods")
	err := (&podlogs.Discoverer{Pods: discovery.Static{}, Root: missing}).Start(context.Background(), ferry.NopReporter())
	if err == nil || !strings.Contains(err.Error(), missing) || !strings.Contains(err.Error(), "mounted") {
		t.Errorf("Start with a missing Root: %v", err)
	}
	file := filepath.Join(t.TempDir(), "f")
	os.WriteFile(file, nil, 0o644)
	err = (&podlogs.Discoverer{Pods: discovery.Static{}, Root: file}).Start(context.Background(), ferry.NopReporter())
	if err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("Start with a file as Root: %v", err)
	}
}

// One lifecycle (issue 17): Run before Start and after Close refuses with
// errors wrapping ferry's, Close is idempotent and closes Pods once, and a
// closed Discoverer does not start again.
func TestLifecycle(t *testing.T) {
	ctx := context.Background()
	p := &closeCounter{}
	d := &podlogs.Discoverer{Pods: p, Root: t.TempDir()}
	up := make(chan []labels.Labels, 1)
	if err := d.Run(ctx, up); !errors.Is(err, ferry.ErrNotStarted) {
		t.Errorf("Run before Start = %v, want ferry.ErrNotStarted", err)
	}
	if err := d.Start(ctx, ferry.NopReporter()); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := d.Close(ctx); err != nil {
			t.Errorf("Close %d: %v", i+1, err)
		}
	}
	if err := d.Run(ctx, up); !errors.Is(err, ferry.ErrClosed) {
		t.Errorf("Run after Close = %v, want ferry.ErrClosed", err)
	}
	if err := d.Start(ctx, ferry.NopReporter()); !errors.Is(err, ferry.ErrClosed) {
		t.Errorf("Start after Close = %v, want ferry.ErrClosed", err)
	}
	if p.starts != 1 || p.closes != 1 || p.runs != 0 {
		t.Errorf("Pods started %d, closed %d, run %d times; want 1, 1, 0", p.starts, p.closes, p.runs)
	}
}

// closeCounter is a pod discoverer that counts its lifecycle calls.
type closeCounter struct{ starts, closes, runs int }

func (c *closeCounter) Start(context.Context, ferry.Reporter) error { c.starts++; return nil }
func (c *closeCounter) Close(context.Context) error                 { c.closes++; return nil }
func (c *closeCounter) Run(ctx context.Context, _ chan<- []labels.Labels) error {
	c.runs++
	<-ctx.Done()
	return nil
}
