package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	promconfig "github.com/prometheus/prometheus/config"
	promk8s "github.com/prometheus/prometheus/discovery/kubernetes"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/scrape"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/discovery/kubernetes/kubetest"
)

// signal lets a test wait for a change of some state: wait returns a
// channel that notify closes.
type signal struct {
	mu sync.Mutex
	ch chan struct{}
}

func (s *signal) wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

func (s *signal) notify() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
}

// await waits until cond holds, checking it again at every notification
// of sig, and fails t after timeout.
func await(t testing.TB, sig *signal, timeout time.Duration, cond func() bool, what func() string) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		changed := sig.wait() // before cond: a change meanwhile is not missed
		if cond() {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("timed out after %v waiting for %s", timeout, what())
		}
	}
}

type testReporter struct {
	mu     sync.Mutex
	health ferry.Health
	err    error
	sig    *signal
}

func (r *testReporter) Logger() *slog.Logger { return slog.New(slog.DiscardHandler) }
func (r *testReporter) SetHealth(h ferry.Health, err error) {
	r.mu.Lock()
	r.health, r.err = h, err
	r.mu.Unlock()
	if r.sig != nil {
		r.sig.notify()
	}
}
func (r *testReporter) Dropped(string, int) {}
func (r *testReporter) Retried()            {}
func (r *testReporter) get() (ferry.Health, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.health, r.err
}

// running is a started Discoverer whose sets and health are recorded.
type running struct {
	rep  *testReporter
	sig  signal // a set was sent or the health changed
	mu   sync.Mutex
	sets [][]labels.Labels
	done chan error
}

func (r *running) last() ([]labels.Labels, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.sets) == 0 {
		return nil, 0
	}
	return r.sets[len(r.sets)-1], len(r.sets)
}

func run(t testing.TB, d *Discoverer) *running {
	t.Helper()
	r := &running{done: make(chan error, 1)}
	r.rep = &testReporter{sig: &r.sig}
	ctx, cancel := context.WithCancel(context.Background())
	if err := d.Start(ctx, r.rep); err != nil {
		cancel()
		t.Fatal(err)
	}
	up := make(chan []labels.Labels)
	go func() { r.done <- d.Run(ctx, up) }()
	go func() {
		for {
			select {
			case s := <-up:
				r.mu.Lock()
				r.sets = append(r.sets, s)
				r.mu.Unlock()
				r.sig.notify()
			case <-ctx.Done():
				return
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after cancel")
		}
		d.Close(context.Background())
	})
	return r
}

// waitSet waits until the last set sent satisfies cond.
func (r *running) waitSet(t testing.TB, what string, cond func([]labels.Labels) bool) []labels.Labels {
	t.Helper()
	var s []labels.Labels
	await(t, &r.sig, 30*time.Second, func() bool {
		var n int
		s, n = r.last()
		return n > 0 && cond(s)
	}, func() string {
		s, n := r.last()
		h, err := r.rep.get()
		return fmt.Sprintf("%s: %d sets sent, the last of %d targets (pods %v); health %v %v", what, n, len(s), pods(s), h, err)
	})
	return s
}

// waitHealth waits until the health and its error satisfy cond.
func (r *running) waitHealth(t testing.TB, what string, cond func(ferry.Health, error) bool) {
	t.Helper()
	await(t, &r.sig, 30*time.Second, func() bool { return cond(r.rep.get()) }, func() string {
		h, err := r.rep.get()
		return fmt.Sprintf("%s: health %v %v", what, h, err)
	})
}

// healthy is a waitHealth condition.
func healthy(h ferry.Health, _ error) bool { return h == ferry.Healthy }

// failing is a waitHealth condition: Failing with an error that contains
// every one of parts.
func failing(parts ...string) func(ferry.Health, error) bool {
	return func(h ferry.Health, err error) bool {
		if h != ferry.Failing || err == nil {
			return false
		}
		for _, p := range parts {
			if !strings.Contains(err.Error(), p) {
				return false
			}
		}
		return true
	}
}

func pods(set []labels.Labels) []string {
	var out []string
	for _, t := range set {
		p := t.Get(LabelNamespace) + "/" + t.Get(LabelPodName)
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

func hasPods(want ...string) func([]labels.Labels) bool {
	slices.Sort(want)
	return func(s []labels.Labels) bool { return slices.Equal(pods(s), want) }
}

func populate(f *fakeAPI) {
	f.put("nodes", node("node-a"))
	f.put("nodes", node("node-b"))
	f.put("pods", pod("default", "web", "uid-web", "node-a", "web", "sidecar"))
	f.put("pods", pod("kube-system", "dns", "uid-dns", "node-a", "dns"))
	f.put("pods", pod("default", "db", "uid-db", "node-b", "db"))
}

// prometheusTargets runs Prometheus's kubernetes SD over cfg until the
// groups hold want targets, and builds their labels with Prometheus's
// scrape target building (PopulateDiscoveredLabels), without the labels
// that building adds for scraping.
func prometheusTargets(t *testing.T, cfg *promk8s.SDConfig, want int) []labels.Labels {
	t.Helper()
	reg := prometheus.NewRegistry()
	m := cfg.NewDiscovererMetrics(reg, nil)
	if err := m.Register(); err != nil {
		t.Fatal(err)
	}
	defer m.Unregister()
	pd, err := promk8s.New(slog.New(slog.DiscardHandler), m, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := make(chan []*targetgroup.Group)
	go pd.Run(ctx, ch)
	groups := map[string]*targetgroup.Group{}
	count := func() int {
		n := 0
		for _, g := range groups {
			n += len(g.Targets)
		}
		return n
	}
	timeout := time.After(20 * time.Second)
	for count() != want {
		select {
		case tgs := <-ch:
			for _, g := range tgs {
				groups[g.Source] = g
			}
		case <-timeout:
			t.Fatalf("prometheus discovery: %d targets, want %d", count(), want)
		}
	}
	sc := &promconfig.ScrapeConfig{JobName: "j"}
	lb := labels.NewBuilder(labels.EmptyLabels())
	var out []labels.Labels
	for _, g := range groups {
		for _, tl := range g.Targets {
			scrape.PopulateDiscoveredLabels(lb, sc, tl, g.Labels)
			for _, n := range []string{"job", "__scrape_interval__", "__scrape_timeout__", "__metrics_path__", "__scheme__"} {
				if _, ok := tl[model.LabelName(n)]; !ok {
					if _, ok := g.Labels[model.LabelName(n)]; !ok {
						lb.Del(n)
					}
				}
			}
			lb.Range(func(l labels.Label) {
				if strings.HasPrefix(l.Name, "__") && strings.HasSuffix(l.Name, "__") && !strings.HasPrefix(l.Name, "__meta_") && l.Name != "__address__" {
					lb.Del(l.Name)
				}
			})
			out = append(out, lb.Labels())
		}
	}
	return out
}

func sortSets(s []labels.Labels) []labels.Labels {
	s = slices.Clone(s)
	slices.SortFunc(s, labels.Compare)
	return s
}

// TestDifferential runs Ferry's discoverer and Prometheus's kubernetes SD
// over the same API server and objects, for every role (pod, node,
// service, ingress, endpoints, endpointslice), with NodeName, namespaces,
// label selectors and node metadata, and requires the same label sets.
func TestDifferential(t *testing.T) {
	f := newFakeAPI(t)
	populate(f)
	f.put("services", service("default", "web"))
	f.put("services", service("kube-system", "dns"))
	f.put("ingresses", ingress("default", "web"))
	f.put("endpoints", endpoints("default", "web"))
	f.put("endpointslices", endpointSlice("default", "web-x1", "web"))
	kc := kubetest.Kubeconfig(t, f.URL(), "t0ken", false)
	for _, tc := range []struct {
		d    *Discoverer
		want int
	}{
		// web: 2 ports of web + sidecar + init; dns: 2 ports + init; db: 2 ports + init.
		{&Discoverer{KubeConfig: kc, AttachMetadata: AttachMetadata{Node: true}}, 10},
		{&Discoverer{KubeConfig: kc, NodeName: "node-a", AttachMetadata: AttachMetadata{Node: true}}, 7},
		{&Discoverer{KubeConfig: kc, Namespaces: []string{"kube-system"}}, 3},
		{&Discoverer{KubeConfig: kc, Role: RoleNode}, 2},
		{&Discoverer{KubeConfig: kc, Selectors: []Selector{{Role: RolePod, Label: "app=web"}}}, 4},
		{&Discoverer{KubeConfig: kc, Role: RoleService}, 4},
		{&Discoverer{KubeConfig: kc, Role: RoleService, Selectors: []Selector{{Role: RoleService, Label: "app=web"}}}, 2},
		{&Discoverer{KubeConfig: kc, Role: RoleIngress}, 1},
		// endpoints and slices: web:8080 (ready), db:8080, and the pods'
		// other container port 9090 (web's, and db's unless NodeName
		// leaves db's pod out).
		{&Discoverer{KubeConfig: kc, Role: RoleEndpoints, AttachMetadata: AttachMetadata{Node: true}}, 4},
		{&Discoverer{KubeConfig: kc, Role: RoleEndpoints, NodeName: "node-a", Namespaces: []string{"default"}}, 3},
		{&Discoverer{KubeConfig: kc, Role: RoleEndpointSlice, AttachMetadata: AttachMetadata{Node: true}}, 4},
		{&Discoverer{KubeConfig: kc, Role: RoleEndpointSlice, NodeName: "node-a"}, 3},
	} {
		t.Run(fmt.Sprintf("%s-%s-%v-%d", tc.d.Role, tc.d.NodeName, tc.d.Namespaces, len(tc.d.Selectors)), func(t *testing.T) {
			tc.d.UpdateDelay = 20 * time.Millisecond
			r := run(t, tc.d)
			got := r.waitSet(t, "targets", func(s []labels.Labels) bool { return len(s) == tc.want })
			cfg, err := tc.d.SDConfig()
			if err != nil {
				t.Fatal(err)
			}
			want := prometheusTargets(t, cfg, tc.want)
			got, want = sortSets(got), sortSets(want)
			if !slices.EqualFunc(got, want, labels.Equal) {
				t.Fatalf("labels differ from Prometheus's:\nferry:\n%v\nprometheus:\n%v", got, want)
			}
		})
	}
}

// TestPodLabels checks the labels the pod log helpers and users rely on.
func TestPodLabels(t *testing.T) {
	f := newFakeAPI(t)
	populate(f)
	r := run(t, &Discoverer{KubeConfig: kubetest.Kubeconfig(t, f.URL(), "x", false), NodeName: "node-a",
		AttachMetadata: AttachMetadata{Node: true}, UpdateDelay: 20 * time.Millisecond})
	s := r.waitSet(t, "node-a pods", hasPods("default/web", "kube-system/dns"))
	var web8080, init labels.Labels
	for _, l := range s {
		if l.Get(LabelPodName) == "web" && l.Get("__meta_kubernetes_pod_container_port_number") == "8080" {
			web8080 = l
		}
		if l.Get(LabelPodName) == "web" && l.Get(LabelContainerInit) == "true" {
			init = l
		}
	}
	for name, want := range map[string]string{
		"__address__":      "10.1.0.1:8080",
		LabelPodUID:        "uid-web",
		LabelContainerName: "web",
		LabelPodNodeName:   "node-a",
		"__meta_kubernetes_pod_container_port_name":                "http",
		"__meta_kubernetes_pod_label_app":                          "web",
		"__meta_kubernetes_pod_labelpresent_app":                   "true",
		"__meta_kubernetes_pod_annotation_example_com_scrape":      "true",
		"__meta_kubernetes_pod_controller_kind":                    "ReplicaSet",
		"__meta_kubernetes_pod_ready":                              "true",
		"__meta_kubernetes_node_label_topology_kubernetes_io_zone": "z1",
		"__meta_kubernetes_node_annotation_node_example_com_rack":  "r7",
	} {
		if got := web8080.Get(name); got != want {
			t.Errorf("%s = %q, want %q (target %v)", name, got, want, web8080)
		}
	}
	if init.Get(LabelContainerName) != "init" {
		t.Errorf("no init container target: %v", s)
	}
}

func TestNodeNameSelector(t *testing.T) {
	d := &Discoverer{NodeName: "n1", Selectors: []Selector{{Role: RolePod, Label: "app=web", Field: "status.phase=Running"}},
		AttachMetadata: AttachMetadata{Node: true}}
	cfg, err := d.SDConfig()
	if err != nil {
		t.Fatal(err)
	}
	want := []promk8s.SelectorConfig{
		{Role: "pod", Label: "app=web", Field: "spec.nodeName=n1,status.phase=Running"},
		{Role: "node", Field: "metadata.name=n1"},
	}
	if !slices.Equal(cfg.Selectors, want) {
		t.Fatalf("selectors %+v, want %+v", cfg.Selectors, want)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		d    *Discoverer
		want string
	}{
		{&Discoverer{Role: "deployment"}, "unknown role"},
		{&Discoverer{Role: RoleService, NodeName: "n"}, "NodeName does not apply"},
		{&Discoverer{Role: RoleService, Selectors: []Selector{{Role: RolePod, Label: "a=b"}}}, "service role supports only service selectors"},
		{&Discoverer{Selectors: []Selector{{Role: RolePod, Field: "a="}, {Role: RolePod}}}, "duplicated selector role"},
		{&Discoverer{Selectors: []Selector{{Role: RolePod, Label: "a b c"}}}, "unable to parse"},
		{&Discoverer{KubeConfig: "k", APIServer: "https://x"}, "cannot use 'kubeconfig_file' and 'api_server'"},
		{&Discoverer{UpdateDelay: -1}, "negative"},
	} {
		err := tc.d.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: Validate() = %v, want %q", tc.d.Role, err, tc.want)
		}
	}
	if err := (&Discoverer{}).Validate(); err != nil {
		t.Errorf("zero Discoverer: %v", err)
	}
}

func TestStartErrors(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("KUBERNETES_SERVICE_PORT", "")
	err := (&Discoverer{}).Start(context.Background(), &testReporter{})
	if err == nil || !strings.Contains(err.Error(), "not running in a cluster") {
		t.Errorf("outside a cluster: %v", err)
	}
	missing := filepath.Join(t.TempDir(), "nope")
	err = (&Discoverer{KubeConfig: missing}).Start(context.Background(), &testReporter{})
	if err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing kubeconfig: %v", err)
	}
	err = (&Discoverer{}).Run(context.Background(), make(chan []labels.Labels))
	if !ferry.IsPermanent(err) || !errors.Is(err, ferry.ErrNotStarted) {
		t.Errorf("Run before Start: %v, want a permanent error wrapping ferry.ErrNotStarted", err)
	}
}

// TestInClusterMissingToken: the environment of a pod without a mounted
// service account token.
func TestInClusterMissingToken(t *testing.T) {
	if _, err := os.Stat(DefaultServiceAccountDir + "/token"); err == nil {
		t.Skip("running in a pod with a service account")
	}
	t.Setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
	t.Setenv("KUBERNETES_SERVICE_PORT", "6443")
	err := (&Discoverer{}).Start(context.Background(), &testReporter{})
	if err == nil || !strings.Contains(err.Error(), "service account token") {
		t.Errorf("Start = %v", err)
	}
}

// TestReconnect: watches are cut, the history expires (410 Gone), and
// objects change meanwhile; the discoverer lists again and converges.
func TestReconnect(t *testing.T) {
	f := newFakeAPI(t)
	populate(f)
	r := run(t, &Discoverer{KubeConfig: kubetest.Kubeconfig(t, f.URL(), "x", false), NodeName: "node-a", UpdateDelay: 20 * time.Millisecond})
	r.waitSet(t, "first set", hasPods("default/web", "kube-system/dns"))
	lists0, _ := f.counts()

	f.disconnect()
	f.put("pods", pod("default", "api", "uid-api", "node-a", "api"))
	r.waitSet(t, "pod added during the disconnect", hasPods("default/api", "default/web", "kube-system/dns"))

	f.expireHistory()
	f.disconnect()
	f.del("pods", "default", "web")
	f.put("pods", pod("default", "other-node", "uid-o", "node-b", "o"))
	r.waitSet(t, "pod deleted after 410 Gone", hasPods("default/api", "kube-system/dns"))
	if lists, _ := f.counts(); lists <= lists0 {
		// watch-list clients resume with a new streaming watch instead
		_, watches := f.counts()
		t.Logf("lists %d -> %d, watches %d", lists0, lists, watches)
	}
}

func TestForbiddenThenAllowed(t *testing.T) {
	f := newFakeAPI(t)
	populate(f)
	msg := `pods is forbidden: User "system:serviceaccount:ferry:agent" cannot list resource "pods" in API group "" at the cluster scope`
	f.setForbidden(msg)
	r := run(t, &Discoverer{KubeConfig: kubetest.Kubeconfig(t, f.URL(), "x", false), UpdateDelay: 20 * time.Millisecond,
		CheckInterval: 50 * time.Millisecond})
	r.waitHealth(t, "Failing with the server's message", failing(msg, "403"))
	f.setForbidden("")
	r.waitSet(t, "targets once allowed", hasPods("default/db", "default/web", "kube-system/dns"))
	r.waitHealth(t, "Healthy", healthy)
}

// TestServerGone: the API server goes away: the discoverer turns Failing
// and sends nothing (the last set stays in force); it comes back: the
// informers reconnect (client-go's backoff), changes made meanwhile arrive,
// and the discoverer turns Healthy.
func TestServerGone(t *testing.T) {
	f := newFakeAPI(t)
	populate(f)
	r := run(t, &Discoverer{KubeConfig: kubetest.Kubeconfig(t, f.URL(), "x", false), UpdateDelay: 20 * time.Millisecond,
		CheckInterval: 50 * time.Millisecond})
	r.waitSet(t, "first set", hasPods("default/db", "default/web", "kube-system/dns"))
	r.waitHealth(t, "Healthy", healthy)
	_, n := r.last()
	f.stop()
	r.waitHealth(t, "Failing", failing("unreachable"))
	if s, n2 := r.last(); n2 != n || len(pods(s)) != 3 {
		t.Fatalf("a set was sent while the server was gone: %d -> %d sets, last %v", n, n2, pods(s))
	}
	f.del("pods", "default", "db")
	f.put("pods", pod("default", "api", "uid-api", "node-b", "api"))
	f.start()
	r.waitSet(t, "the changes made while away", hasPods("default/api", "default/web", "kube-system/dns"))
	r.waitHealth(t, "Healthy again", healthy)
}

func TestResourcePath(t *testing.T) {
	for _, tc := range []struct {
		res  resource
		ns   string
		want string
	}{
		{resPods, "", "/api/v1/pods"},
		{resPods, "a", "/api/v1/namespaces/a/pods"},
		{resNodes, "a", "/api/v1/nodes"},
		{resEndpointSlices, "a", "/apis/discovery.k8s.io/v1/namespaces/a/endpointslices"},
		{resIngresses, "", "/apis/networking.k8s.io/v1/ingresses"},
		{resJobs, "b c", "/apis/batch/v1/namespaces/b%20c/jobs"},
	} {
		if got := tc.res.path(tc.ns); got != tc.want {
			t.Errorf("%s %q: %s, want %s", tc.res.name, tc.ns, got, tc.want)
		}
	}
}

// TestWatches: the health check lists what Prometheus's discoverer
// watches, in every namespace.
func TestWatches(t *testing.T) {
	str := func(ws []watch) []string {
		var out []string
		for _, w := range ws {
			s := w.String()
			if w.sel.Field != "" || w.sel.Label != "" {
				s += " [" + w.sel.Field + "|" + w.sel.Label + "]"
			}
			out = append(out, s)
		}
		return out
	}
	for _, tc := range []struct {
		d    *Discoverer
		ns   []string
		want []string
	}{
		{&Discoverer{}, nil, []string{"pods in all namespaces"}},
		{&Discoverer{NodeName: "n1", AttachMetadata: AttachMetadata{Node: true, Namespace: true}}, []string{"a", "b"},
			[]string{`pods in namespace "a" [spec.nodeName=n1|]`, `pods in namespace "b" [spec.nodeName=n1|]`,
				"nodes [metadata.name=n1|]", "namespaces"}},
		{&Discoverer{Role: RoleEndpoints, Selectors: []Selector{{Role: RoleService, Label: "app=web"}},
			AttachMetadata: AttachMetadata{Deployment: true, CronJob: true}}, []string{"a", "b"},
			[]string{`endpoints in namespace "a"`, `endpoints in namespace "b"`,
				`services in namespace "a" [|app=web]`, `services in namespace "b" [|app=web]`,
				`pods in namespace "a"`, `pods in namespace "b"`,
				`replicasets in namespace "a"`, `replicasets in namespace "b"`, `jobs in namespace "a"`, `jobs in namespace "b"`}},
		{&Discoverer{Role: RoleEndpointSlice}, []string{"a"},
			[]string{`endpointslices in namespace "a"`, `services in namespace "a"`, `pods in namespace "a"`}},
		{&Discoverer{Role: RoleService, AttachMetadata: AttachMetadata{Namespace: true}}, nil,
			[]string{"services in all namespaces", "namespaces"}},
		{&Discoverer{Role: RoleIngress}, []string{"a"}, []string{`ingresses in namespace "a"`}},
		{&Discoverer{Role: RoleNode, NodeName: "n1"}, []string{"a"}, []string{"nodes [metadata.name=n1|]"}},
	} {
		cfg, err := tc.d.SDConfig()
		if err != nil {
			t.Fatal(err)
		}
		if got := str(watches(cfg, tc.ns)); !slices.Equal(got, tc.want) {
			t.Errorf("%s %v:\n got %q\nwant %q", tc.d.Role, tc.ns, got, tc.want)
		}
	}
}

// TestCheckEveryNamespace: RBAC that grants one watched namespace and not
// another makes the discoverer Failing, naming the refused namespace.
func TestCheckEveryNamespace(t *testing.T) {
	f := newFakeAPI(t)
	f.put("pods", pod("a", "web", "uid-web", "node-a", "web"))
	f.put("pods", pod("b", "db", "uid-db", "node-a", "db"))
	msg := `pods is forbidden: User "system:serviceaccount:ferry:agent" cannot list resource "pods" in API group "" in the namespace "b"`
	f.forbidNamespace("b", msg)
	r := run(t, &Discoverer{KubeConfig: kubetest.Kubeconfig(t, f.URL(), "x", false), Namespaces: []string{"a", "b"},
		UpdateDelay: 20 * time.Millisecond, CheckInterval: 50 * time.Millisecond})
	r.waitSet(t, "the pods of namespace a", hasPods("a/web"))
	r.waitHealth(t, "Failing, naming namespace b", func(h ferry.Health, err error) bool {
		return failing(`list pods in namespace "b": 403`, msg)(h, err) && !strings.Contains(err.Error(), `namespace "a"`)
	})
	f.forbidNamespace("b", "")
	r.waitSet(t, "the pods of both namespaces", hasPods("a/web", "b/db"))
	r.waitHealth(t, "Healthy", healthy)
}

// TestMetricsRegisteredOnce: two discoverers on one registry start (no
// duplicate registration) and Prometheus's kubernetes SD metrics count
// both's events.
func TestMetricsRegisteredOnce(t *testing.T) {
	f := newFakeAPI(t)
	populate(f)
	reg := prometheus.NewRegistry()
	kc := kubetest.Kubeconfig(t, f.URL(), "x", false)
	for _, node := range []string{"node-a", "node-b"} {
		r := run(t, &Discoverer{KubeConfig: kc, NodeName: node, Registerer: reg, UpdateDelay: 20 * time.Millisecond})
		r.waitSet(t, "targets of "+node, func(s []labels.Labels) bool { return len(s) > 0 })
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var adds float64
	for _, mf := range mfs {
		if mf.GetName() != "prometheus_sd_kubernetes_events_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var role, event string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "role":
					role = l.GetValue()
				case "event":
					event = l.GetValue()
				}
			}
			if role == "pod" && event == "add" {
				adds += m.GetCounter().GetValue()
			}
		}
	}
	if adds != 3 { // web and dns on node-a, db on node-b
		t.Errorf("prometheus_sd_kubernetes_events_total{role=pod,event=add} = %v, want 3", adds)
	}
}
