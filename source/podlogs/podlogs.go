// Package podlogs turns Kubernetes pod targets into the log files kubelet
// writes for their containers, for source/filetail to read: the job
// Promtail's kubernetes-pods configuration did on every node.
//
// Kubelet (with containerd or CRI-O) writes the output of container
// <container> of pod <pod> (UID <uid>) in namespace <ns> to
//
//	/var/log/pods/<ns>_<pod>_<uid>/<container>/<restart>.log
//
// in CRI format ("2026-12-04T10:00:00.000000000Z stdout F message", with
// "P" for the parts of a line split at 16 KiB), one file per restart of the
// container (0.log, 1.log, …). It rotates a file by renaming it to
// <restart>.log.<YYYYMMDD-hhmmss> and creating a new one, and later
// compresses the older rotated files to .gz, keeping the latest rotated file
// uncompressed.
//
// The recipe, all in Go:
//
//	pods := &kubernetes.Discoverer{NodeName: os.Getenv("NODE_NAME")}   // discovery/kubernetes
//	files := &podlogs.Discoverer{Pods: pods}                            // Rules(DefaultRoot), then the files
//	t := pipeline.Discover(b, "pods", files)
//	logs := pipeline.FromTargets(b, "tail", &filetail.Source{Positions: pf, Decompress: true}, t)
//	logs = pipeline.Process(b, "cri", stage.MustNew(&stage.CRI{}), logs)
//
// Rules gives the relabel rules that set __path__ to the glob of a
// container's current log files ("*.log") and the labels namespace, pod,
// container and node; Discoverer applies them to every set the pod
// discoverer sends and expands the globs into one target per existing file
// (discovery/file), looking again when the directories change, so that a
// container that starts after its pod was discovered, or whose directory
// does not exist yet, is picked up when its file appears.
//
// Rotated files are not matched: filetail follows a rename rotation itself
// (it reads the renamed file to its end before it opens the new one), and
// finds the renamed file by its identity after an agent restart. Matching
// them too would read their lines a second time under another path. A file
// rotated twice while the agent was down is compressed by then; the lines
// of it that were not read are lost, as with Promtail.
//
// Prometheus's pod discovery gives no targets for a pod without an IP (not
// started yet, or evicted), so such a pod's files are read only once it has
// one, and no longer after an eviction, as with Promtail.
//
// Positions are kept per file path, so a restarted container (a new
// <restart>.log) starts a new position, a deleted pod's files are no longer
// targets, and positions.File carries them across agent restarts.
package podlogs

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/discovery"
	"github.com/ferrydev/ferry/discovery/file"
	"github.com/ferrydev/ferry/internal/lifecycle"
	"github.com/ferrydev/ferry/relabel"
)

// DefaultRoot is where kubelet writes pod logs.
const DefaultRoot = "/var/log/pods"

// DefaultRefreshInterval is how often the files are looked for without a
// file-system notification.
const DefaultRefreshInterval = 2 * time.Second

// The pod target labels the rules read, as Prometheus's kubernetes SD names
// them.
const (
	LabelNamespace     = relabel.KubernetesNamespaceLabel
	LabelPodName       = relabel.KubernetesPodNameLabel
	LabelPodUID        = relabel.KubernetesPodUIDLabel
	LabelContainerName = relabel.KubernetesPodContainerNameLabel
	LabelNodeName      = relabel.KubernetesPodNodeNameLabel
)

// Rules returns the relabel rules from a pod target to a log file target:
// targets without a namespace, pod name, UID or container name are
// dropped; __path__ is set to
// <root>/<namespace>_<pod>_<uid>/<container>/*.log; and the labels
// namespace, pod, container and node are copied from the target. Append
// rules of your own after them (relabel.LabelMap over
// __meta_kubernetes_pod_label_(.+), say).
func Rules(root string) []relabel.Rule {
	return []relabel.Rule{
		relabel.Keep([]string{LabelNamespace, LabelPodName, LabelPodUID, LabelContainerName}, `[^;]+;[^;]+;[^;]+;[^;]+`),
		relabel.Replace([]string{LabelNamespace, LabelPodName, LabelPodUID, LabelContainerName},
			`([^;]+);([^;]+);([^;]+);([^;]+)`, file.PathLabel, filepath.Join(root, "${1}_${2}_${3}", "${4}", "*.log")),
		relabel.Copy(LabelNamespace, "namespace"),
		relabel.Copy(LabelPodName, "pod"),
		relabel.Copy(LabelContainerName, "container"),
		relabel.Copy(LabelNodeName, "node"),
	}
}

// Discoverer turns the targets of a pod discoverer into one target per
// container log file, with __path__ set to the file and the labels the
// rules give.
//
// Validate, Start and Close are passed on to Pods when it has them.
type Discoverer struct {
	// Pods discovers pods (a discovery/kubernetes.Discoverer with role
	// pod, or any discoverer of targets with the same labels).
	Pods discovery.Discoverer
	// Root is where kubelet writes pod logs; default DefaultRoot.
	Root string
	// Rules replace Rules(Root) if not nil. They must set __path__ to a
	// glob (as for discovery/file).
	Rules []relabel.Rule
	// RefreshInterval is how often files are looked for without a
	// notification; default DefaultRefreshInterval.
	RefreshInterval time.Duration
	// DisableWatch turns off file-system notifications.
	DisableWatch bool

	life     lifecycle.State // Start sets the fields below it; read-only afterwards
	compiled *relabel.Rules
	log      *slog.Logger
}

// ErrNotStarted is returned by Run before Start, and ErrClosed by Start and
// Run after Close.
var (
	ErrNotStarted = fmt.Errorf("podlogs: Run before Start: %w", ferry.ErrNotStarted)
	ErrClosed     = fmt.Errorf("podlogs: discoverer %w", ferry.ErrClosed)
)

var (
	_ discovery.Discoverer = (*Discoverer)(nil)
	_ ferry.Starter        = (*Discoverer)(nil)
)

func (d *Discoverer) rules() (*relabel.Rules, error) {
	rs := d.Rules
	if rs == nil {
		root := d.Root
		if root == "" {
			root = DefaultRoot
		}
		rs = Rules(root)
	}
	return relabel.New(rs...)
}

// Validate checks the rules and Pods' own configuration.
func (d *Discoverer) Validate() error {
	var errs []error
	if d.Pods == nil {
		errs = append(errs, errors.New("podlogs: Pods is nil"))
	}
	if _, err := d.rules(); err != nil {
		errs = append(errs, fmt.Errorf("podlogs: %w", err))
	}
	if d.RefreshInterval < 0 {
		errs = append(errs, errors.New("podlogs: negative RefreshInterval"))
	}
	if v, ok := d.Pods.(interface{ Validate() error }); ok {
		errs = append(errs, v.Validate())
	}
	return errors.Join(errs...)
}

// Start validates the configuration, starts Pods if it is a
// ferry.Starter, then checks that Root is a directory: kubelet creates it
// on every node, and its absence in the agent's container means the host
// path is not mounted (Pods is closed again then). Run logs with
// r.Logger(). Start is a no-op on a started Discoverer and returns
// ErrClosed after Close.
func (d *Discoverer) Start(ctx context.Context, r ferry.Reporter) error {
	return d.life.Start(ErrClosed, func() error {
		if err := d.Validate(); err != nil {
			return err
		}
		rules, err := d.rules()
		if err != nil {
			return fmt.Errorf("podlogs: %w", err)
		}
		if s, ok := d.Pods.(ferry.Starter); ok {
			if err := s.Start(ctx, r); err != nil {
				return err
			}
		}
		if d.Rules == nil { // else the files may be anywhere
			root := cmp.Or(d.Root, DefaultRoot)
			fi, err := os.Stat(root)
			if err == nil && !fi.IsDir() {
				err = errors.New("not a directory")
			}
			if err != nil {
				_ = d.closePods(ctx)
				return fmt.Errorf("podlogs: Root %s (kubelet's pod logs; is the node's directory mounted?): %w", root, err)
			}
		}
		if r == nil {
			r = ferry.NopReporter()
		}
		d.compiled, d.log = rules, r.Logger()
		return nil
	})
}

// Close closes Pods if it has a Close(ctx) method. It is safe without
// Start; a later Close returns the first one's error.
func (d *Discoverer) Close(ctx context.Context) error {
	return d.life.Close(func(bool) error { return d.closePods(ctx) })
}

func (d *Discoverer) closePods(ctx context.Context) error {
	if c, ok := d.Pods.(interface{ Close(context.Context) error }); ok {
		return c.Close(ctx)
	}
	return nil
}

// Run implements discovery.Discoverer. It returns what Pods' Run returns;
// meanwhile, the set of files follows the last set of pods. It returns
// ErrNotStarted before Start and ErrClosed after Close.
func (d *Discoverer) Run(ctx context.Context, up chan<- []labels.Labels) error {
	if err := d.life.Err(ErrNotStarted, ErrClosed); err != nil {
		return err
	}
	rules, log := d.compiled, d.log
	interval := d.RefreshInterval
	if interval == 0 {
		interval = DefaultRefreshInterval
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	podsCh := make(chan []labels.Labels)
	podsErr := make(chan error, 1)
	go func() { podsErr <- d.Pods.Run(ctx, podsCh) }()

	filesCh := make(chan []labels.Labels)
	var (
		stopFiles = func() {}
		last      []file.Pattern
		started   bool
	)
	defer func() { stopFiles() }()
	for {
		select {
		case <-ctx.Done():
			cancel()
			<-podsErr
			return nil
		case err := <-podsErr:
			return err
		case pods := <-podsCh:
			pats := file.FromLabels(rules.Targets(pods))
			if started && slices.EqualFunc(pats, last, equalPattern) {
				continue
			}
			stopFiles()
			last, started = pats, true
			fctx, fcancel := context.WithCancel(ctx)
			done := make(chan struct{})
			fd := &file.Discoverer{Patterns: pats, RefreshInterval: interval, DisableWatch: d.DisableWatch}
			go func() {
				defer close(done)
				if err := fd.Run(fctx, filesCh); err != nil {
					log.Warn("podlogs: file patterns rejected", "err", err)
				}
			}()
			stopFiles = func() { fcancel(); <-done }
		case files := <-filesCh:
			select {
			case up <- files:
			case <-ctx.Done():
			}
		}
	}
}

func equalPattern(a, b file.Pattern) bool {
	return a.Path == b.Path && labels.Equal(a.Labels, b.Labels) && slices.Equal(a.Exclude, b.Exclude)
}
