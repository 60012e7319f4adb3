// Package docker discovers the containers of a Docker engine as targets,
// with exactly the labels Prometheus's docker_sd_config (and Alloy's
// discovery.docker) gives them, and keeps the set current by following the
// engine's event stream.
//
// A target is made per container, network and exposed TCP port; a
// container without a TCP port gets one target per network with the
// configured fallback port, and one in host networking mode gets
// HostNetworkingHost as its address. Every target carries
// __meta_docker_container_id, __meta_docker_container_name (with its
// leading "/"), __meta_docker_container_network_mode, the container's image
// and image ID, its labels as __meta_docker_container_label_<name> (names
// sanitised), the network's __meta_docker_network_* labels and the port's
// __meta_docker_port_* labels, plus __address__.
package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/util/strutil"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/discovery"
	"github.com/ferrydev/ferry/internal/httpclient"
	"github.com/ferrydev/ferry/relabel"
)

// The meta labels of Docker targets, as Prometheus names them: the names
// defined in package relabel with the other well-known names.
const (
	LabelContainerID          = relabel.DockerContainerIDLabel
	LabelContainerName        = relabel.DockerContainerNameLabel
	LabelContainerNetworkMode = relabel.DockerContainerNetworkModeLabel
	LabelContainerImage       = relabel.DockerContainerImageLabel
	LabelContainerImageID     = relabel.DockerContainerImageIDLabel
	LabelContainerLabelPrefix = relabel.DockerContainerLabelPrefix
	LabelNetworkID            = relabel.DockerNetworkIDLabel
	LabelNetworkName          = relabel.DockerNetworkNameLabel
	LabelNetworkScope         = relabel.DockerNetworkScopeLabel
	LabelNetworkInternal      = relabel.DockerNetworkInternalLabel
	LabelNetworkIngress       = relabel.DockerNetworkIngressLabel
	LabelNetworkLabelPrefix   = relabel.DockerNetworkLabelPrefix
	LabelNetworkIP            = relabel.DockerNetworkIPLabel
	LabelPortPrivate          = relabel.DockerPortPrivateLabel
	LabelPortPublic           = relabel.DockerPortPublicLabel
	LabelPortPublicIP         = relabel.DockerPortPublicIPLabel
)

// Defaults of the Discoverer's zero fields.
const (
	DefaultRefreshInterval    = 5 * time.Second
	DefaultPort               = 80
	DefaultHostNetworkingHost = "localhost"
)

// Filter is one container list filter: a name such as "label", "name",
// "status" or "network", and the values to match (any of them). Filters are
// passed to the engine's container list call unchanged.
type Filter struct {
	Name   string
	Values []string
}

// TLSFiles names the PEM files of a TLS connection to the engine, as
// DOCKER_CERT_PATH does with ca.pem, cert.pem and key.pem.
type TLSFiles struct {
	CA, Cert, Key string
}

// Discoverer finds the containers of one Docker engine. Its zero value is
// ready to use: it connects to the engine the environment names (DOCKER_HOST,
// DOCKER_CERT_PATH, DOCKER_TLS_VERIFY, DOCKER_API_VERSION; else the local
// socket) and negotiates the API version.
//
// Run lists the containers and networks, sends the targets, and then
// follows the engine's events: a container that starts, stops, dies, is
// renamed or removed, or a network that is connected or disconnected, causes
// a new listing at once. A full listing also runs every RefreshInterval, to
// repair anything missed. When the engine cannot be reached Run keeps the
// last set it sent, reports the component Failing, and reconnects with
// backoff; it does not return until ctx is done.
type Discoverer struct {
	// Host is the engine address, e.g. "unix:///var/run/docker.sock" or
	// "tcp://10.0.0.1:2376". Empty means the environment's DOCKER_HOST or
	// the local default.
	Host string
	// TLS, if any file is set, configures TLS to a tcp:// host.
	TLS TLSFiles
	// Client, if not nil, is used instead of connecting to Host; Run does
	// not close it. It lets a program share one client, and tests fake it.
	// A shared *client.Client should have negotiated its API version
	// (NegotiateAPIVersion) before it is used from several goroutines: the
	// Docker client reads the version unsynchronised in some calls.
	Client client.APIClient

	// RefreshInterval is the period of full listings (default 5s).
	RefreshInterval time.Duration
	// Port is the port of targets for containers without exposed TCP ports
	// (default 80).
	Port int
	// HostNetworkingHost is the address of containers in host networking
	// mode (default "localhost"). No port is appended, as in Prometheus.
	HostNetworkingHost string
	// MatchAllNetworks makes a target for every network of a container. By
	// default only the network whose name sorts first is used, as
	// Prometheus's match_first_network (default true) does, to avoid
	// duplicate targets.
	MatchAllNetworks bool
	// Filters restrict the containers listed.
	Filters []Filter
	// IncludeStopped lists stopped (created, exited, dead) containers too,
	// which Prometheus does not. A log source needs it to read containers
	// that exited before it saw them running.
	IncludeStopped bool
}

var _ discovery.Discoverer = (*Discoverer)(nil)

// Validate reports configuration errors.
func (d *Discoverer) Validate() error {
	if d.RefreshInterval < 0 {
		return fmt.Errorf("docker discovery: negative RefreshInterval %v", d.RefreshInterval)
	}
	if d.Port < 0 || d.Port > 65535 {
		return fmt.Errorf("docker discovery: invalid Port %d", d.Port)
	}
	if d.Host != "" {
		if _, err := url.Parse(d.Host); err != nil {
			return fmt.Errorf("docker discovery: Host: %w", err)
		}
	}
	for _, f := range d.Filters {
		if f.Name == "" {
			return errors.New("docker discovery: filter without a name")
		}
	}
	return nil
}

// NewClient connects to the Docker engine at host (empty: from the
// environment) with API version negotiation, and TLS from files if any is
// set. Nothing is sent until the first call; call NegotiateAPIVersion on the
// result before sharing it between goroutines.
//
// Its GET requests (log and event streams, lists, inspections) are sent on
// connections that the calling goroutine writes and reads itself, without
// the two goroutines and two buffers net/http's Transport keeps for each
// connection: a log source holds a stream, so a connection, for every
// container it follows. Other requests go through net/http as usual. The
// requests are not traced with OpenTelemetry, as the Docker client does by
// default. Close it with CloseClient: the client's own Close does not
// know those connections.
func NewClient(host string, tls TLSFiles) (*client.Client, error) {
	// The Docker client's own defaults for its transport, which its
	// options then set up (socket, TLS).
	tr := &http.Transport{MaxIdleConns: 6, IdleConnTimeout: 30 * time.Second, WriteBufferSize: 1 << 10}
	hc := &http.Client{Transport: tr, CheckRedirect: client.CheckRedirect}
	opts := []client.Opt{client.WithHTTPClient(hc), client.WithHost(client.DefaultDockerHost), client.FromEnv, client.WithAPIVersionNegotiation()}
	if host != "" {
		opts = append(opts, client.WithHost(host))
	}
	if tls != (TLSFiles{}) {
		opts = append(opts, client.WithTLSClientConfig(tls.CA, tls.Cert, tls.Key))
	}
	c, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	// The client knows tr as its transport (for Close, TLS, attaching);
	// its requests go through hc, set up now that tr is.
	hc.Transport = httpclient.NewDirect(tr)
	return c, nil
}

// CloseClient closes a client made by NewClient: its idle connections,
// those net/http does not hold included, which c.Close alone leaves open
// until they time out.
func CloseClient(c *client.Client) error {
	c.HTTPClient().CloseIdleConnections()
	return c.Close()
}

type config struct {
	port               int
	hostNetworkingHost string
	matchFirstNetwork  bool
}

func (d *Discoverer) config() config {
	c := config{port: d.Port, hostNetworkingHost: d.HostNetworkingHost, matchFirstNetwork: !d.MatchAllNetworks}
	if c.port == 0 {
		c.port = DefaultPort
	}
	if c.hostNetworkingHost == "" {
		c.hostNetworkingHost = DefaultHostNetworkingHost
	}
	return c
}

const (
	minBackoff = 250 * time.Millisecond
	maxBackoff = 30 * time.Second
	// coalesce is how long Run waits after an event for more before it
	// lists: a "docker compose up" sends dozens at once.
	coalesce = 20 * time.Millisecond
	// listTimeout bounds one listing.
	listTimeout = 30 * time.Second
)

// Run implements discovery.Discoverer.
func (d *Discoverer) Run(ctx context.Context, up chan<- []labels.Labels) error {
	if err := d.Validate(); err != nil {
		return ferry.Permanent(err)
	}
	rep := ferry.ReporterFrom(ctx)
	log := rep.Logger()
	cli := d.Client
	if cli == nil {
		c, err := NewClient(d.Host, d.TLS)
		if err != nil {
			return ferry.Permanent(err)
		}
		defer CloseClient(c)
		c.NegotiateAPIVersion(ctx)
		cli = c
	}
	interval := d.RefreshInterval
	if interval == 0 {
		interval = DefaultRefreshInterval
	}
	r := &runner{d: d, cfg: d.config(), cli: cli, up: up}
	backoff := minBackoff
	for {
		err := r.session(ctx, interval)
		if ctx.Err() != nil {
			return nil
		}
		rep.SetHealth(ferry.Failing, err)
		log.Warn("docker discovery: engine unavailable, retrying", "err", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, maxBackoff)
		if r.healthy {
			backoff = minBackoff
			r.healthy = false
		}
	}
}

type runner struct {
	d       *Discoverer
	cfg     config
	cli     client.APIClient
	up      chan<- []labels.Labels
	last    []labels.Labels
	sent    bool
	healthy bool // a session got as far as a full listing
}

// session subscribes to events, lists, and follows events until an error.
func (r *runner) session(ctx context.Context, interval time.Duration) error {
	// List first, then subscribe with since = the time before the listing,
	// so that the engine replays what happened in between. (Listing first
	// also negotiates the API version before Events reads it: the client's
	// Events reads it unsynchronised.)
	since := time.Now()
	if err := r.refresh(ctx); err != nil {
		return err
	}
	ectx, cancel := context.WithCancel(ctx)
	defer cancel()
	msgs, errs := r.cli.Events(ectx, events.ListOptions{
		Since:   fmt.Sprintf("%d.%09d", since.Unix(), since.Nanosecond()),
		Filters: filters.NewArgs(filters.Arg("type", string(events.ContainerEventType)), filters.Arg("type", string(events.NetworkEventType))),
	})
	tick := time.NewTicker(interval)
	defer tick.Stop()
	soon := time.NewTimer(time.Hour)
	soon.Stop()
	pending := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errs:
			if err == nil || errors.Is(err, io.EOF) {
				err = errors.New("event stream ended")
			}
			return fmt.Errorf("docker events: %w", err)
		case m, ok := <-msgs:
			if !ok {
				return errors.New("docker events: stream ended")
			}
			if relevant(m) && !pending {
				pending = true
				soon.Reset(coalesce)
			}
		case <-soon.C:
			pending = false
			if err := r.refresh(ctx); err != nil {
				return err
			}
		case <-tick.C:
			if err := r.refresh(ctx); err != nil {
				return err
			}
		}
	}
}

func relevant(m events.Message) bool {
	switch m.Type {
	case events.ContainerEventType:
		switch m.Action {
		case events.ActionCreate, events.ActionStart, events.ActionRestart, events.ActionDie,
			events.ActionStop, events.ActionKill, events.ActionDestroy, events.ActionRename,
			events.ActionPause, events.ActionUnPause, events.ActionUpdate, events.ActionOOM:
			return true
		}
	case events.NetworkEventType:
		switch m.Action {
		case events.ActionConnect, events.ActionDisconnect, events.ActionCreate, events.ActionDestroy:
			return true
		}
	}
	return false
}

// refresh lists containers and networks and sends the targets if they
// changed (or were never sent).
func (r *runner) refresh(ctx context.Context) error {
	lctx, cancel := context.WithTimeout(ctx, listTimeout)
	defer cancel()
	args := filters.NewArgs()
	for _, f := range r.d.Filters {
		for _, v := range f.Values {
			args.Add(f.Name, v)
		}
	}
	containers, err := r.cli.ContainerList(lctx, container.ListOptions{All: r.d.IncludeStopped, Filters: args})
	if err != nil {
		return fmt.Errorf("listing containers: %w", err)
	}
	networks, err := r.cli.NetworkList(lctx, network.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing networks: %w", err)
	}
	if !r.healthy {
		r.healthy = true
		ferry.ReporterFrom(ctx).SetHealth(ferry.Healthy, nil)
	}
	ts := r.cfg.targets(containers, networks)
	if r.sent && slices.EqualFunc(ts, r.last, labels.Equal) {
		return nil
	}
	select {
	case r.up <- ts:
	case <-ctx.Done():
		return nil
	}
	r.last, r.sent = ts, true
	return nil
}

// targets computes the targets of one listing, as Prometheus's docker
// discovery does, sorted by labels.
func (c config) targets(containers []container.Summary, networks []network.Summary) []labels.Labels {
	netLabels := make(map[string]labels.Labels, len(networks))
	b := labels.NewBuilder(labels.EmptyLabels())
	for _, n := range networks {
		b.Reset(labels.EmptyLabels())
		b.Set(LabelNetworkID, n.ID)
		b.Set(LabelNetworkName, n.Name)
		b.Set(LabelNetworkScope, n.Scope)
		b.Set(LabelNetworkInternal, strconv.FormatBool(n.Internal))
		b.Set(LabelNetworkIngress, strconv.FormatBool(n.Ingress))
		for k, v := range n.Labels {
			b.Set(LabelNetworkLabelPrefix+strutil.SanitizeLabelName(k), v)
		}
		netLabels[n.ID] = b.Labels()
	}
	byID := make(map[string]*container.Summary, len(containers))
	for i := range containers {
		byID[containers[i].ID] = &containers[i]
	}

	out := []labels.Labels{}
	common := labels.NewBuilder(labels.EmptyLabels())
	for i := range containers {
		ctr := &containers[i]
		if len(ctr.Names) == 0 {
			continue
		}
		common.Reset(labels.EmptyLabels())
		common.Set(LabelContainerID, ctr.ID)
		common.Set(LabelContainerName, ctr.Names[0])
		common.Set(LabelContainerNetworkMode, ctr.HostConfig.NetworkMode)
		if ctr.Image != "" {
			common.Set(LabelContainerImage, ctr.Image)
		}
		if ctr.ImageID != "" {
			common.Set(LabelContainerImageID, ctr.ImageID)
		}
		for k, v := range ctr.Labels {
			common.Set(LabelContainerLabelPrefix+strutil.SanitizeLabelName(k), v)
		}
		base := common.Labels()

		nets := networksOf(ctr)
		mode := container.NetworkMode(ctr.HostConfig.NetworkMode)
		if len(nets) == 0 {
			// Shared network namespace: use the networks of the container
			// it joins, following a chain of such references.
			for seen := 0; mode.IsContainer() && seen < len(containers); seen++ {
				other, ok := byID[mode.ConnectedContainer()]
				if !ok {
					break
				}
				nets = networksOf(other)
				mode = container.NetworkMode(other.HostConfig.NetworkMode)
				if len(nets) > 0 {
					break
				}
			}
		}
		names := make([]string, 0, len(nets))
		for name, n := range nets {
			if n != nil {
				names = append(names, name)
			}
		}
		sort.Strings(names)
		if c.matchFirstNetwork && len(nets) > 1 && len(names) > 0 {
			names = names[:1]
		}
		for _, name := range names {
			n := nets[name]
			ip := n.IPAddress
			if ip == "" {
				ip = n.GlobalIPv6Address
			}
			added := false
			for _, p := range ctr.Ports {
				if p.Type != "tcp" {
					continue
				}
				b.Reset(base)
				netLabels[n.NetworkID].Range(func(l labels.Label) { b.Set(l.Name, l.Value) })
				b.Set(LabelNetworkIP, ip)
				priv := strconv.FormatUint(uint64(p.PrivatePort), 10)
				b.Set(LabelPortPrivate, priv)
				if p.PublicPort > 0 {
					b.Set(LabelPortPublic, strconv.FormatUint(uint64(p.PublicPort), 10))
					b.Set(LabelPortPublicIP, p.IP)
				}
				b.Set(model.AddressLabel, net.JoinHostPort(ip, priv))
				out = append(out, b.Labels())
				added = true
			}
			if added {
				continue
			}
			b.Reset(base)
			netLabels[n.NetworkID].Range(func(l labels.Label) { b.Set(l.Name, l.Value) })
			b.Set(LabelNetworkIP, ip)
			if ctr.HostConfig.NetworkMode == "host" {
				b.Set(model.AddressLabel, c.hostNetworkingHost)
			} else {
				b.Set(model.AddressLabel, net.JoinHostPort(ip, strconv.Itoa(c.port)))
			}
			out = append(out, b.Labels())
		}
	}
	slices.SortFunc(out, labels.Compare)
	return out
}

func networksOf(c *container.Summary) map[string]*network.EndpointSettings {
	if c.NetworkSettings == nil {
		return nil
	}
	return c.NetworkSettings.Networks
}

// TargetLabels lists the labels of the targets this discoverer sends, so
// that pipeline.Builder.Build can report a relabel rule that reads one that
// never exists on a target (such as the per-line log stream label).
func (d *Discoverer) TargetLabels() []string { return relabel.DockerTargetLabels() }
