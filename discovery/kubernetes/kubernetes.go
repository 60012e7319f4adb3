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
	LabelNamespace     = "__meta_kubernetes_namespace"
	LabelPodName       = "__meta_kubernetes_pod_name"
	LabelPodUID        = "__meta_kubernetes_pod_uid"
	LabelPodNodeName   = "__meta_kubernetes_pod_node_name"
	LabelContainerName = "__meta_kubernetes_pod_container_name"
	LabelContainerInit = "__meta_kubernetes_pod_container_init"
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
// Run keeps the component's health current by listing one object of the
// watched resource every CheckInterval: an API server that cannot be
// reached or refuses the request (RBAC: 403 Forbidden, with the server's
// message) makes it Failing, with the last set of targets kept; the next
// successful check makes it Healthy.
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

	mu  sync.Mutex
	sd  *promsd.Discoverer
	rc  *rest.Config
	hc  *http.Client
	cfg *promk8s.SDConfig
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
	d.cfg, d.rc, d.hc, d.sd = cfg, rc, hc, sd
	d.mu.Unlock()
	return sd.Start(ctx, r)
}

// Run implements discovery.Discoverer; Start must have been called.
func (d *Discoverer) Run(ctx context.Context, up chan<- []labels.Labels) error {
	d.mu.Lock()
	sd := d.sd
	d.mu.Unlock()
	if sd == nil {
		return ferry.Permanent(errors.New("kubernetes discovery: Run before Start"))
	}
	return sd.Run(ctx, up)
}

// Close implements ferry's lifecycle; it holds nothing beyond Run.
func (d *Discoverer) Close(ctx context.Context) error { return nil }

// resourcePath is the list path of role's objects in namespace ns (empty:
// all namespaces).
func resourcePath(role promk8s.Role, ns string) string {
	var group, res string
	namespaced := true
	switch role {
	case promk8s.RolePod:
		res = "pods"
	case promk8s.RoleNode:
		res, namespaced = "nodes", false
	case promk8s.RoleService:
		res = "services"
	case promk8s.RoleEndpoint:
		res = "endpoints"
	case promk8s.RoleEndpointSlice:
		group, res = "discovery.k8s.io/v1", "endpointslices"
	case promk8s.RoleIngress:
		group, res = "networking.k8s.io/v1", "ingresses"
	}
	p := "/api/v1/"
	if group != "" {
		p = "/apis/" + group + "/"
	}
	if namespaced && ns != "" {
		p += "namespaces/" + url.PathEscape(ns) + "/"
	}
	return p + res
}

// check lists at most one object of the watched resource (and of nodes
// when their metadata is attached), with the configured selectors, and
// returns the API server's refusal or the transport's error.
func (d *Discoverer) check(ctx context.Context) error {
	d.mu.Lock()
	cfg, rc, hc := d.cfg, d.rc, d.hc
	d.mu.Unlock()
	ns := ""
	if len(cfg.NamespaceDiscovery.Names) > 0 {
		ns = cfg.NamespaceDiscovery.Names[0]
	}
	sel := func(r promk8s.Role) promk8s.SelectorConfig {
		for _, s := range cfg.Selectors {
			if s.Role == r {
				return s
			}
		}
		return promk8s.SelectorConfig{}
	}
	roles := []promk8s.Role{cfg.Role}
	if cfg.AttachMetadata.Node && cfg.Role != promk8s.RoleNode {
		roles = append(roles, promk8s.RoleNode)
	}
	for _, r := range roles {
		if err := d.list(ctx, rc, hc, r, ns, sel(r)); err != nil {
			return err
		}
	}
	return nil
}

func (d *Discoverer) list(ctx context.Context, rc *rest.Config, hc *http.Client, role promk8s.Role, ns string, s promk8s.SelectorConfig) error {
	base := strings.TrimSuffix(rc.Host, "/")
	if !strings.Contains(base, "://") {
		base = "https://" + base
	}
	q := url.Values{"limit": {"1"}}
	if s.Field != "" {
		q.Set("fieldSelector", s.Field)
	}
	if s.Label != "" {
		q.Set("labelSelector", s.Label)
	}
	u := base + strings.TrimSuffix(rc.APIPath, "/") + resourcePath(role, ns) + "?" + q.Encode()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("kubernetes discovery: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("kubernetes discovery: API server unreachable: %w", err)
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
	return fmt.Errorf("kubernetes discovery: list %s: %s: %s", role, resp.Status, msg)
}
