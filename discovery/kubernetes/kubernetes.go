// Package kubernetes discovers Kubernetes pods, nodes, services,
// endpoints, endpoint slices and ingresses as targets, with exactly the
// __meta_kubernetes_* labels of Prometheus's kubernetes_sd_config.
//
// It is a typed front over Prometheus's own discovery/kubernetes, run by
// discovery/promsd: the labels are Prometheus's by construction (container
// ports and init containers, the _present labels, annotations, node labels
// with AttachMetadata.Node), and so are the informers' behaviour on
// disconnects: a watch that ends or fails is re-established with client-go's
// backoff, a 410 Gone ("too old resource version") triggers a new list, and
// the last set of targets stays in force meanwhile.
//
// NodeName restricts pod discovery to the pods of one node with the field
// selector spec.nodeName=<node>, evaluated by the API server: a DaemonSet
// agent then holds in memory the pods of its node only, not of the cluster.
package kubernetes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/config"
	promdisc "github.com/prometheus/prometheus/discovery"
	promk8s "github.com/prometheus/prometheus/discovery/kubernetes"
	"github.com/prometheus/prometheus/model/labels"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/ferrydev/ferry"
	fdisc "github.com/ferrydev/ferry/discovery"
	"github.com/ferrydev/ferry/discovery/promsd"
	"github.com/ferrydev/ferry/relabel"
)

// Role is the kind of object discovered.
type Role string

// The roles, as Prometheus names them.
const (
	RolePod           Role = "pod"
	RoleNode          Role = "node"
	RoleService       Role = "service"
	RoleEndpoints     Role = "endpoints"
	RoleEndpointSlice Role = "endpointslice"
	RoleIngress       Role = "ingress"
)

// Labels of pod targets used by the pod log helpers, as Prometheus names
// them. Every other label is documented with Prometheus's
// kubernetes_sd_config.
const (
	LabelNamespace     = relabel.KubernetesNamespaceLabel
	LabelPodName       = relabel.KubernetesPodNameLabel
	LabelPodUID        = relabel.KubernetesPodUIDLabel
	LabelPodNodeName   = relabel.KubernetesPodNodeNameLabel
	LabelContainerName = relabel.KubernetesPodContainerNameLabel
	LabelContainerInit = relabel.KubernetesPodContainerInitLabel
)

// Selector restricts the objects of one role that are watched, with a
// label selector ("app=web,tier!=cache") and a field selector
// ("spec.nodeName=n1"), as the API server evaluates them. Which roles'
// selectors a discovery accepts depends on its Role, as in Prometheus: pod
// takes pod and node; endpoints and endpointslice take pod, service and
// their own; the others their own.
type Selector struct {
	Role  Role
	Label string
	Field string
}

// AttachMetadata adds labels of related objects, at the cost of watching
// them too.
type AttachMetadata struct {
	// Node adds __meta_kubernetes_node_* labels (labels, annotations) of
	// the pod's node (roles pod, endpoints, endpointslice). With NodeName
	// set, only that node is watched.
	Node bool
	// Namespace adds __meta_kubernetes_namespace_label_* and _annotation_*.
	Namespace bool
	// Deployment, Job and CronJob add the names of the pod's owners.
	Deployment, Job, CronJob bool
}

// DefaultServiceAccountDir is where Kubernetes mounts a pod's service
// account token, CA and namespace.
const DefaultServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// Discoverer finds Kubernetes objects of one Role. The zero value discovers
// every pod of the cluster with the in-cluster service account.
//
// The connection is, in this order: KubeConfig if set (the file's current
// context); APIServer if set, with HTTPClientConfig; else the in-cluster
// configuration (KUBERNETES_SERVICE_HOST/PORT and the service account
// token), which Start reports clearly when it is missing.
//
// Run keeps the component's health current by listing, every
// CheckInterval, one object of every resource the discovery watches (pods,
// and nodes with AttachMetadata.Node, say) in every namespace it watches,
// with its selectors, since RBAC may grant one namespace and not another:
// an API server that cannot be reached or refuses a request (RBAC: 403
// Forbidden, with the server's message, for each refused namespace) makes
// it Failing, with the last set of targets kept; the next successful check
// makes it Healthy.
type Discoverer struct {
	// Role is what to discover; default RolePod.
	Role Role
	// NodeName, if set, watches only the pods of that node (roles pod,
	// endpoints, endpointslice: field selector spec.nodeName, combined
	// with any pod Selector) or only that node (role node:
	// metadata.name). Set it from the downward API (spec.nodeName) in a
	// DaemonSet.
	NodeName string
	// Namespaces restricts discovery to these namespaces; empty means all.
	Namespaces []string
	// OwnNamespace adds the namespace the program runs in (in-cluster
	// only).
	OwnNamespace bool
	// Selectors restrict the watched objects; at most one per role.
	Selectors []Selector
	// AttachMetadata adds labels of related objects.
	AttachMetadata AttachMetadata

	// KubeConfig is the path of a kubeconfig file.
	KubeConfig string
	// APIServer is the API server's URL, used with HTTPClientConfig
	// (authorization, TLS) when KubeConfig is empty.
	APIServer string
	// HTTPClientConfig configures the client for APIServer; nil means
	// Prometheus's default.
	HTTPClientConfig *config.HTTPClientConfig

	// Registerer receives Prometheus's kubernetes SD metrics
	// (prometheus_sd_kubernetes_*), registered once per Registerer.
	Registerer prometheus.Registerer
	// UpdateDelay is how long changes are collected before a new set is
	// sent; default promsd.DefaultUpdateDelay.
	UpdateDelay time.Duration
	// FirstSetTimeout is how long Run waits for the first pods before it
	// sends an empty set (Prometheus's discoverer sends nothing when there
	// is nothing); default promsd.DefaultFirstSetTimeout.
	FirstSetTimeout time.Duration
	// CheckInterval is the period of the health check; default
	// promsd.DefaultCheckInterval.
	CheckInterval time.Duration

	mu         sync.Mutex
	sd         *promsd.Discoverer
	rc         *rest.Config
	hc         *http.Client
	cfg        *promk8s.SDConfig
	namespaces []string // watched; empty: all
}

var (
	_ fdisc.Discoverer = (*Discoverer)(nil)
	_ ferry.Starter    = (*Discoverer)(nil)
)

// SDConfig returns the Prometheus configuration d runs, validated as
// Prometheus validates a kubernetes_sd_config.
func (d *Discoverer) SDConfig() (*promk8s.SDConfig, error) {
	role := d.Role
	if role == "" {
		role = RolePod
	}
	c := promk8s.DefaultSDConfig
	c.Role = promk8s.Role(role)
	c.KubeConfig = d.KubeConfig
	if d.APIServer != "" {
		u, err := url.Parse(d.APIServer)
		if err != nil {
			return nil, fmt.Errorf("kubernetes discovery: APIServer: %w", err)
		}
		c.APIServer = config.URL{URL: u}
	}
	if d.HTTPClientConfig != nil {
		c.HTTPClientConfig = *d.HTTPClientConfig
	}
	c.NamespaceDiscovery = promk8s.NamespaceDiscovery{IncludeOwnNamespace: d.OwnNamespace, Names: d.Namespaces}
	c.AttachMetadata = promk8s.AttachMetadataConfig{Node: d.AttachMetadata.Node, Namespace: d.AttachMetadata.Namespace,
		PodMetadataConfig: promk8s.PodMetadataConfig{Deployment: d.AttachMetadata.Deployment, Job: d.AttachMetadata.Job, CronJob: d.AttachMetadata.CronJob}}
	sels := map[Role]Selector{}
	var order []Role
	for _, s := range d.Selectors {
		if _, dup := sels[s.Role]; dup {
			return nil, fmt.Errorf("kubernetes discovery: duplicated selector role %q", s.Role)
		}
		sels[s.Role] = s
		order = append(order, s.Role)
	}
	if d.NodeName != "" {
		add := func(r Role, field string) {
			s, ok := sels[r]
			if !ok {
				order = append(order, r)
				s.Role = r
			}
			if s.Field != "" {
				field += "," + s.Field
			}
			s.Field = field
			sels[r] = s
		}
		switch role {
		case RolePod, RoleEndpoints, RoleEndpointSlice:
			add(RolePod, "spec.nodeName="+d.NodeName)
			if d.AttachMetadata.Node && role == RolePod {
				if _, ok := sels[RoleNode]; !ok {
					add(RoleNode, "metadata.name="+d.NodeName)
				}
			}
		case RoleNode:
			add(RoleNode, "metadata.name="+d.NodeName)
		default:
			return nil, fmt.Errorf("kubernetes discovery: NodeName does not apply to role %q", role)
		}
	}
	for _, r := range order {
		s := sels[r]
		c.Selectors = append(c.Selectors, promk8s.SelectorConfig{Role: promk8s.Role(s.Role), Label: s.Label, Field: s.Field})
	}
	// Prometheus validates in UnmarshalYAML; run it over c. Its unmarshal
	// function receives a pointer to an unexported copy of SDConfig's type.
	var out promk8s.SDConfig
	err := out.UnmarshalYAML(func(v any) error {
		rv := reflect.ValueOf(v).Elem()
		rv.Set(reflect.ValueOf(c).Convert(rv.Type()))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("kubernetes discovery: %w", err)
	}
	if r := promk8s.Role(role); r != promk8s.RolePod && r != promk8s.RoleNode && r != promk8s.RoleService &&
		r != promk8s.RoleEndpoint && r != promk8s.RoleEndpointSlice && r != promk8s.RoleIngress {
		return nil, fmt.Errorf("kubernetes discovery: unknown role %q", role)
	}
	return &out, nil
}

// Validate reports a configuration Prometheus would reject, an unknown
// role, and NodeName on a role it does not apply to.
func (d *Discoverer) Validate() error {
	if _, err := d.SDConfig(); err != nil {
		return err
	}
	if d.UpdateDelay < 0 || d.CheckInterval < 0 || d.FirstSetTimeout < 0 {
		return errors.New("kubernetes discovery: negative UpdateDelay, FirstSetTimeout or CheckInterval")
	}
	return nil
}

// RESTConfig returns the client configuration d connects with, or a clear
// error when there is none: a KubeConfig that cannot be read, or no
// KubeConfig and APIServer outside a cluster (no service account token).
func (d *Discoverer) RESTConfig() (*rest.Config, error) {
	switch {
	case d.KubeConfig != "":
		rc, err := clientcmd.BuildConfigFromFlags("", d.KubeConfig)
		if err != nil {
			return nil, fmt.Errorf("kubernetes discovery: kubeconfig %s: %w", d.KubeConfig, err)
		}
		return rc, nil
	case d.APIServer != "":
		hc := config.DefaultHTTPClientConfig
		if d.HTTPClientConfig != nil {
			hc = *d.HTTPClientConfig
		}
		rt, err := config.NewRoundTripperFromConfig(hc, "kubernetes_sd")
		if err != nil {
			return nil, fmt.Errorf("kubernetes discovery: %w", err)
		}
		return &rest.Config{Host: d.APIServer, Transport: rt}, nil
	}
	rc, err := rest.InClusterConfig()
	if err != nil {
		if errors.Is(err, rest.ErrNotInCluster) {
			return nil, errors.New("kubernetes discovery: no KubeConfig or APIServer set, and not running in a cluster " +
				"(KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set)")
		}
		return nil, fmt.Errorf("kubernetes discovery: in-cluster configuration (service account token in %s): %w",
			DefaultServiceAccountDir, err)
	}
	if d.OwnNamespace {
		if _, err := os.Stat(DefaultServiceAccountDir + "/namespace"); err != nil {
			return nil, fmt.Errorf("kubernetes discovery: OwnNamespace: %w", err)
		}
	}
	return rc, nil
}

var k8sClientMetrics sync.Once

// Start validates the configuration, builds the client configuration (see
// RESTConfig for its errors) and creates the Prometheus discoverer.
func (d *Discoverer) Start(ctx context.Context, r ferry.Reporter) error {
	cfg, err := d.SDConfig()
	if err != nil {
		return err
	}
	rc, err := d.RESTConfig()
	if err != nil {
		return err
	}
	hc, err := rest.HTTPClientFor(rc)
	if err != nil {
		return fmt.Errorf("kubernetes discovery: %w", err)
	}
	// The namespaces Prometheus's discoverer watches, for the health check.
	ns := slices.Clone(cfg.NamespaceDiscovery.Names)
	if cfg.NamespaceDiscovery.IncludeOwnNamespace {
		own, err := os.ReadFile(DefaultServiceAccountDir + "/namespace")
		if err != nil {
			return fmt.Errorf("kubernetes discovery: OwnNamespace: %w", err)
		}
		ns = append(ns, string(own))
	}
	if d.Registerer != nil {
		k8sClientMetrics.Do(func() { _ = promdisc.RegisterK8sClientMetricsWithPrometheus(d.Registerer) })
	}
	sd := &promsd.Discoverer{
		Config:          cfg,
		Registerer:      d.Registerer,
		UpdateDelay:     d.UpdateDelay,
		FirstSetTimeout: d.FirstSetTimeout,
		CheckInterval:   d.CheckInterval,
		Check:           d.check,
	}
	d.mu.Lock()
	d.cfg, d.rc, d.hc, d.sd, d.namespaces = cfg, rc, hc, sd, ns
	d.mu.Unlock()
	return sd.Start(ctx, r)
}

// Run implements discovery.Discoverer; Start must have been called (else
// a permanent error wrapping ferry.ErrNotStarted).
func (d *Discoverer) Run(ctx context.Context, up chan<- []labels.Labels) error {
	d.mu.Lock()
	sd := d.sd
	d.mu.Unlock()
	if sd == nil {
		return ferry.Permanent(fmt.Errorf("kubernetes discovery: Run before Start: %w", ferry.ErrNotStarted))
	}
	return sd.Run(ctx, up)
}

// Close implements ferry's lifecycle; it holds nothing beyond Run.
func (d *Discoverer) Close(ctx context.Context) error { return nil }

// resource is a kind of object Prometheus's discoverer lists and watches.
type resource struct {
	group      string // "" for the core group
	name       string // as in the URL: "pods"
	namespaced bool
}

var (
	resPods           = resource{"", "pods", true}
	resNodes          = resource{"", "nodes", false}
	resServices       = resource{"", "services", true}
	resEndpoints      = resource{"", "endpoints", true}
	resNamespaces     = resource{"", "namespaces", false}
	resEndpointSlices = resource{"discovery.k8s.io/v1", "endpointslices", true}
	resIngresses      = resource{"networking.k8s.io/v1", "ingresses", true}
	resReplicaSets    = resource{"apps/v1", "replicasets", true}
	resJobs           = resource{"batch/v1", "jobs", true}
)

// path is the list path of r's objects in namespace ns (empty: all
// namespaces).
func (r resource) path(ns string) string {
	p := "/api/v1/"
	if r.group != "" {
		p = "/apis/" + r.group + "/"
	}
	if r.namespaced && ns != "" {
		p += "namespaces/" + url.PathEscape(ns) + "/"
	}
	return p + r.name
}

// watch is one list-and-watch of Prometheus's discoverer.
type watch struct {
	res resource
	ns  string // "" for all namespaces or a cluster-scoped resource
	sel promk8s.SelectorConfig
}

func (w watch) String() string {
	switch {
	case !w.res.namespaced:
		return w.res.name
	case w.ns == "":
		return w.res.name + " in all namespaces"
	}
	return fmt.Sprintf("%s in namespace %q", w.res.name, w.ns)
}

// watches returns what Prometheus's discoverer for cfg lists and watches
// (its Run, role by role), in namespaces (its getNamespaces: the configured
// names and the own namespace, or all), each with the selector it uses.
func watches(cfg *promk8s.SDConfig, namespaces []string) []watch {
	if len(namespaces) == 0 {
		namespaces = []string{""}
	}
	sel := func(r promk8s.Role) promk8s.SelectorConfig {
		for _, s := range cfg.Selectors {
			if s.Role == r {
				return s
			}
		}
		return promk8s.SelectorConfig{}
	}
	am := cfg.AttachMetadata
	var out []watch
	add := func(r resource, role promk8s.Role) {
		if !r.namespaced {
			out = append(out, watch{res: r, sel: sel(role)})
			return
		}
		for _, ns := range namespaces {
			out = append(out, watch{res: r, ns: ns, sel: sel(role)})
		}
	}
	switch cfg.Role {
	case promk8s.RoleNode:
		add(resNodes, promk8s.RoleNode)
		return out
	case promk8s.RolePod:
		add(resPods, promk8s.RolePod)
	case promk8s.RoleEndpoint:
		add(resEndpoints, promk8s.RoleEndpoint)
		add(resServices, promk8s.RoleService)
		add(resPods, promk8s.RolePod)
	case promk8s.RoleEndpointSlice:
		add(resEndpointSlices, promk8s.RoleEndpointSlice)
		add(resServices, promk8s.RoleService)
		add(resPods, promk8s.RolePod)
	case promk8s.RoleService:
		add(resServices, promk8s.RoleService)
	case promk8s.RoleIngress:
		add(resIngresses, promk8s.RoleIngress)
	}
	switch cfg.Role {
	case promk8s.RolePod, promk8s.RoleEndpoint, promk8s.RoleEndpointSlice:
		if am.Node {
			add(resNodes, promk8s.RoleNode)
		}
		if am.Deployment {
			add(resReplicaSets, "")
		}
		if am.Job || am.CronJob {
			add(resJobs, "")
		}
	}
	if am.Namespace {
		add(resNamespaces, "")
	}
	return out
}

// check lists at most one object of every resource Prometheus's discoverer
// watches, in every namespace it watches, with the selectors it uses. It
// returns the API server's refusals (every one of them, joined) or the
// first transport error.
func (d *Discoverer) check(ctx context.Context) error {
	d.mu.Lock()
	cfg, rc, hc, ns := d.cfg, d.rc, d.hc, d.namespaces
	d.mu.Unlock()
	var refusals []error
	for _, w := range watches(cfg, ns) {
		err := d.list(ctx, rc, hc, w)
		var ue unreachableError
		if errors.As(err, &ue) {
			return err
		}
		if err != nil {
			refusals = append(refusals, err)
		}
	}
	return errors.Join(refusals...)
}

// unreachableError is a list request that got no answer.
type unreachableError struct{ err error }

func (e unreachableError) Error() string {
	return "kubernetes discovery: API server unreachable: " + e.err.Error()
}
func (e unreachableError) Unwrap() error { return e.err }

func (d *Discoverer) list(ctx context.Context, rc *rest.Config, hc *http.Client, w watch) error {
	base := strings.TrimSuffix(rc.Host, "/")
	if !strings.Contains(base, "://") {
		base = "https://" + base
	}
	q := url.Values{"limit": {"1"}}
	if w.sel.Field != "" {
		q.Set("fieldSelector", w.sel.Field)
	}
	if w.sel.Label != "" {
		q.Set("labelSelector", w.sel.Label)
	}
	u := base + strings.TrimSuffix(rc.APIPath, "/") + w.res.path(w.ns) + "?" + q.Encode()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("kubernetes discovery: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return unreachableError{err}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 == 2 {
		return nil
	}
	msg := strings.TrimSpace(string(body))
	var st struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &st) == nil && st.Message != "" {
		msg = st.Message
	}
	return fmt.Errorf("kubernetes discovery: list %s: %s: %s", w, resp.Status, msg)
}
