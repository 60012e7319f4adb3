// Package promsd runs any Prometheus service discovery mechanism
// (github.com/prometheus/prometheus/discovery/...: http, dns, consul, ec2,
// kubernetes, …) as a Ferry discovery.Discoverer, without Prometheus's
// discovery.Manager.
//
// A program imports only the mechanisms it uses: each lives in its own
// Prometheus package and is linked only when imported. This package imports
// none of them, only the discovery base package (which itself links
// client-go's small metrics and workqueue packages). What each adds to a
// static binary (CGO_ENABLED=0, -trimpath -ldflags='-s -w', go1.26.8
// linux/amd64; examples/kubernetes/sizes.sh measures it):
//
//	program imports                              bytes
//	Ferry's discovery.Static only            3,874,978
//	promsd + the base (StaticConfig)        10,006,690   +6.1 MB
//	promsd + discovery/file (file_sd)       10,404,002   +0.4 MB over the base
//	promsd + discovery/dns (dns_sd)         11,415,714   +1.4 MB over the base
//	promsd + discovery/http (http_sd)       11,927,714   +1.9 MB over the base
//	promsd + discovery/consul (consul_sd)   13,050,018   +3.0 MB over the base
//	promsd + discovery/aws (ec2_sd and the
//	  other AWS mechanisms of that package) 20,316,322  +10.3 MB over the base
//	promsd + discovery/kubernetes           40,382,626  +30.4 MB over the base
//
// (2026-12-05; Prometheus v0.316.0.) Importing
// github.com/prometheus/prometheus/discovery/install links every mechanism;
// import the packages one by one instead.
//
// A Prometheus Discoverer sends target groups, each identified by its
// Source, and after the first full set only the groups that changed; a
// group without targets removes its Source. Discoverer keeps the groups by
// Source and sends the union as one label set per target, each target's
// labels merged over its group's labels (a target label wins), as
// Prometheus's scrape loop builds its targets before relabeling.
package promsd

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/discovery"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/ferrydev/ferry"
	fdisc "github.com/ferrydev/ferry/discovery"
)

// Defaults of the zero Discoverer's fields.
const (
	// DefaultUpdateDelay is how long updates are collected before the
	// union is sent. Prometheus's discovery.Manager waits 5s; a log agent
	// wants a new container's file sooner.
	DefaultUpdateDelay = 100 * time.Millisecond
	// DefaultFirstSetTimeout is how long Run waits for the mechanism's
	// first groups before it sends an empty first set.
	DefaultFirstSetTimeout = 10 * time.Second
	// DefaultCheckInterval is the period of the Check function.
	DefaultCheckInterval = 30 * time.Second
)

// Discoverer runs one Prometheus discovery.Config. Config must be set; the
// other fields are optional.
//
// Start creates the Prometheus discoverer (errors in the configuration that
// only the mechanism can see, such as a missing in-cluster service account,
// are returned there) and registers its metrics. Run runs it until ctx is
// done; a Prometheus discoverer keeps its last state itself while its
// backend is away (the kubernetes informers retry with backoff and keep
// their caches; refresh-based mechanisms keep their last groups), so Run
// sends nothing while it is away and the consumers keep the last set.
//
// Prometheus's mechanisms log their errors but do not return them. Check,
// if set, gives Run a health signal: it is called when Run starts and every
// CheckInterval, and the component is reported Failing with its error, or
// Healthy.
type Discoverer struct {
	// Config is the Prometheus service discovery configuration, e.g.
	// &http.SDConfig{...} or &kubernetes.SDConfig{...}.
	Config discovery.Config
	// Name identifies this discoverer in Prometheus's refresh metrics (the
	// "config" label); default the mechanism's name.
	Name string
	// Registerer, if not nil, receives the mechanism's metrics
	// (prometheus_sd_*). Metrics are registered once per Registerer and
	// mechanism, however many Discoverers use them, as Prometheus does.
	// Nil keeps them in a private registry.
	Registerer prometheus.Registerer
	// HTTPClientOptions are passed to the mechanism (those that read them).
	HTTPClientOptions []config.HTTPClientOption
	// UpdateDelay is how long changes are collected before the union is
	// sent; default DefaultUpdateDelay.
	UpdateDelay time.Duration
	// FirstSetTimeout is how long Run waits for the first groups before it
	// sends an empty set, so that consumers learn there is nothing (a
	// kubernetes discoverer of a node without pods sends no group at all);
	// default DefaultFirstSetTimeout.
	FirstSetTimeout time.Duration
	// Check, if not nil, reports whether the mechanism's backend is
	// reachable and allows what the mechanism does; see the type's doc.
	Check func(ctx context.Context) error
	// CheckInterval is the period of Check; default DefaultCheckInterval.
	CheckInterval time.Duration

	mu      sync.Mutex
	started bool
	pd      discovery.Discoverer // created by Start, for the first Run
	opts    discovery.DiscovererOptions
	rep     ferry.Reporter
}

var (
	_ fdisc.Discoverer = (*Discoverer)(nil)
	_ ferry.Starter    = (*Discoverer)(nil)
)

// Validate reports a missing Config and negative durations.
func (d *Discoverer) Validate() error {
	var errs []error
	if d.Config == nil {
		errs = append(errs, errors.New("promsd: Config is nil"))
	}
	if d.UpdateDelay < 0 || d.FirstSetTimeout < 0 || d.CheckInterval < 0 {
		errs = append(errs, errors.New("promsd: negative UpdateDelay, FirstSetTimeout or CheckInterval"))
	}
	return errors.Join(errs...)
}

func (d *Discoverer) name() string {
	if d.Name != "" {
		return d.Name
	}
	return d.Config.Name()
}

// Start registers the mechanism's metrics (once per Registerer) and creates
// the Prometheus discoverer. It returns the mechanism's error, if any,
// prefixed with its name.
func (d *Discoverer) Start(ctx context.Context, r ferry.Reporter) error {
	if err := d.Validate(); err != nil {
		return err
	}
	if r == nil {
		r = ferry.NopReporter()
	}
	m, err := Metrics(d.Registerer, d.Config)
	if err != nil {
		return fmt.Errorf("promsd %s: %w", d.Config.Name(), err)
	}
	opts := discovery.DiscovererOptions{
		Logger:            r.Logger().With("sd", d.Config.Name()),
		Metrics:           m,
		HTTPClientOptions: d.HTTPClientOptions,
		SetName:           d.name(),
	}
	pd, err := d.Config.NewDiscoverer(opts)
	if err != nil {
		return fmt.Errorf("%s discovery: %w", d.Config.Name(), err)
	}
	d.mu.Lock()
	d.started, d.pd, d.opts, d.rep = true, pd, opts, r
	d.mu.Unlock()
	return nil
}

// Close releases nothing (Run's context ends the mechanism); it exists for
// symmetry and is safe without Start and safe twice.
func (d *Discoverer) Close(context.Context) error { return nil }

// Run implements discovery.Discoverer. It returns a permanent error
// wrapping ferry.ErrNotStarted if Start was not called. A second Run after the first returned creates a
// new Prometheus discoverer, since they cannot be run twice.
func (d *Discoverer) Run(ctx context.Context, up chan<- []labels.Labels) error {
	d.mu.Lock()
	if !d.started {
		d.mu.Unlock()
		return ferry.Permanent(fmt.Errorf("promsd: Run before Start: %w", ferry.ErrNotStarted))
	}
	pd, opts, rep := d.pd, d.opts, d.rep
	d.pd = nil
	d.mu.Unlock()
	if pd == nil {
		var err error
		if pd, err = d.Config.NewDiscoverer(opts); err != nil {
			return fmt.Errorf("%s discovery: %w", d.Config.Name(), err)
		}
	}
	delay := cmp(d.UpdateDelay, DefaultUpdateDelay)
	first := cmp(d.FirstSetTimeout, DefaultFirstSetTimeout)

	rctx, cancel := context.WithCancel(ctx)
	ch := make(chan []*targetgroup.Group)
	done := make(chan struct{})
	go func() {
		defer close(done)
		pd.Run(rctx, ch)
	}()
	defer func() { cancel(); <-done }()

	if d.Check != nil {
		go d.check(rctx, rep, cmp(d.CheckInterval, DefaultCheckInterval))
	}

	var (
		acc     = newAccumulator()
		timer   = time.NewTimer(first) // first: the empty first set
		armed   = true                 // timer pending
		got     bool                   // groups arrived
		in      = (<-chan []*targetgroup.Group)(ch)
		pending []labels.Labels
		out     chan<- []labels.Labels // up while pending waits to be sent
	)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case tgs, ok := <-in:
			if !ok { // a mechanism that closes its channel (static) is done
				in = nil
				continue
			}
			acc.update(tgs)
			if !got || !armed {
				// The first groups cut the first-set wait short.
				got, armed = true, true
				timer.Reset(delay)
			}
		case <-timer.C:
			armed = false
			pending, out = acc.targets(), up
		case out <- pending:
			pending, out = nil, nil
		}
	}
}

func (d *Discoverer) check(ctx context.Context, rep ferry.Reporter, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := d.Check(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			rep.SetHealth(ferry.Failing, err)
			rep.Logger().Warn("discovery check failed", "sd", d.Config.Name(), "err", err)
		} else {
			rep.SetHealth(ferry.Healthy, nil)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func cmp(v, def time.Duration) time.Duration {
	if v == 0 {
		return def
	}
	return v
}

// accumulator keeps the targets of the latest group of every source, as
// the labels sent (group labels merged), not Prometheus's groups: a
// labels.Labels holds a target in one string, where a model.LabelSet holds
// a map of string pairs, and the union is then assembled from the held
// labels without building any again.
type accumulator struct {
	groups map[string][]labels.Labels
	n      int      // targets held
	order  []string // the sources sorted; nil when a source came or went
	lb     *labels.Builder
}

func newAccumulator() *accumulator {
	return &accumulator{groups: map[string][]labels.Labels{}, lb: labels.NewBuilder(labels.EmptyLabels())}
}

func (a *accumulator) update(tgs []*targetgroup.Group) {
	for _, tg := range tgs {
		if tg == nil {
			continue
		}
		old, had := a.groups[tg.Source]
		a.n -= len(old)
		if len(tg.Targets) == 0 {
			if had {
				delete(a.groups, tg.Source)
				a.order = nil
			}
			continue
		}
		if !had {
			a.order = nil
		}
		ts := make([]labels.Labels, len(tg.Targets))
		for i, t := range tg.Targets {
			ts[i] = GroupTarget(a.lb, tg, t)
		}
		a.groups[tg.Source] = ts
		a.n += len(ts)
	}
}

// targets returns the union of the groups' targets, groups in Source
// order. The labels are shared with the accumulator (labels.Labels are
// immutable); the slice is new.
func (a *accumulator) targets() []labels.Labels {
	if a.order == nil {
		a.order = make([]string, 0, len(a.groups))
		for s := range a.groups {
			a.order = append(a.order, s)
		}
		slices.Sort(a.order)
	}
	out := make([]labels.Labels, 0, a.n)
	for _, s := range a.order {
		out = append(out, a.groups[s]...)
	}
	return out
}

// GroupTarget returns the labels of target t of group g: t's labels, then
// those of g's labels that t does not set, as Prometheus's scrape target
// building merges them before relabeling. lb is a scratch builder, reset
// here.
func GroupTarget(lb *labels.Builder, g *targetgroup.Group, t model.LabelSet) labels.Labels {
	lb.Reset(labels.EmptyLabels())
	for n, v := range t {
		lb.Set(string(n), string(v))
	}
	for n, v := range g.Labels {
		if _, ok := t[n]; !ok {
			lb.Set(string(n), string(v))
		}
	}
	return lb.Labels()
}

// Metrics returns the mechanism's metrics for reg, created and registered
// on first use and shared afterwards, with Prometheus's refresh metrics
// (registered once per reg too). A nil reg means a private registry.
func Metrics(reg prometheus.Registerer, cfg discovery.Config) (discovery.DiscovererMetrics, error) {
	metricsMu.Lock()
	defer metricsMu.Unlock()
	if reg == nil {
		reg = privateRegistry
	}
	rs, ok := registries[reg]
	if !ok {
		refresh := discovery.NewRefreshMetrics(reg)
		if err := refresh.Register(); err != nil {
			return nil, fmt.Errorf("refresh metrics: %w", err)
		}
		rs = &regMetrics{refresh: refresh, mech: map[string]discovery.DiscovererMetrics{}}
		registries[reg] = rs
	}
	name := cfg.Name()
	if m, ok := rs.mech[name]; ok {
		return m, nil
	}
	m := cfg.NewDiscovererMetrics(reg, rs.refresh)
	if err := m.Register(); err != nil && !alreadyRegistered(err) {
		return nil, fmt.Errorf("%s metrics: %w", name, err)
	}
	rs.mech[name] = m
	return m, nil
}

func alreadyRegistered(err error) bool {
	var are prometheus.AlreadyRegisteredError
	return errors.As(err, &are) || strings.Contains(err.Error(), "duplicate metrics collector registration")
}

type regMetrics struct {
	refresh discovery.RefreshMetricsManager
	mech    map[string]discovery.DiscovererMetrics
}

var (
	metricsMu       sync.Mutex
	registries      = map[prometheus.Registerer]*regMetrics{}
	privateRegistry = prometheus.NewRegistry()
)
