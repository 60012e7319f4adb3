// Command kubernetes is a node agent for Kubernetes pod logs, the job most
// Promtail users ran as a DaemonSet: it discovers the pods of its own node
// (field selector spec.nodeName, so memory follows the node, not the
// cluster), tails their files under /var/log/pods (rotated and gzipped as
// kubelet does), parses the CRI format, labels every line with namespace,
// pod, container and node, and pushes to Loki (or prints). Positions are
// kept in a file on the node, so a restarted agent resumes where it was.
//
//	NODE_NAME=node-a go run ./examples/kubernetes -kubeconfig ~/.kube/config \
//		-loki.url http://localhost:3100/loki/api/v1/push
//
// In a cluster it runs with the in-cluster service account: see
// daemonset.yaml and rbac.yaml next to this file, and build.sh for an image
// without a Dockerfile. It serves /metrics, /-/ready and the pipeline's debug
// page on -listen.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"k8s.io/klog/v2"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/discovery/kubernetes"
	"github.com/ferrydev/ferry/pipeline"
	"github.com/ferrydev/ferry/pipeline/debugui"
	"github.com/ferrydev/ferry/positions"
	"github.com/ferrydev/ferry/process/stage"
	"github.com/ferrydev/ferry/sink"
	"github.com/ferrydev/ferry/sink/loki"
	"github.com/ferrydev/ferry/source/filetail"
	"github.com/ferrydev/ferry/source/podlogs"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, nil); err != nil {
		fmt.Fprintln(os.Stderr, "kubernetes agent:", err)
		os.Exit(1)
	}
}

// run runs the agent until ctx is done. ready, if not nil, receives the
// listener's address once it listens.
func run(ctx context.Context, args []string, stdout io.Writer, ready chan<- string) error {
	fs := flag.NewFlagSet("kubernetes", flag.ContinueOnError)
	node := fs.String("node", os.Getenv("NODE_NAME"), "node whose pods to read (default $NODE_NAME, from the downward API)")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig file (default: in-cluster service account)")
	namespaces := fs.String("namespaces", "", "comma-separated namespaces (default: all)")
	root := fs.String("root", podlogs.DefaultRoot, "where kubelet writes pod logs")
	posPath := fs.String("positions", "/var/lib/ferry/positions.json", "positions file (empty: in memory)")
	lokiURL := fs.String("loki.url", "", "Loki push URL (empty: print to stdout)")
	listen := fs.String("listen", ":12345", "address of /metrics, /-/ready and the debug page (empty: none)")
	fromStart := fs.Bool("from-start", true, "read files without a position from their beginning")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *node == "" {
		return errors.New("-node (or NODE_NAME) is required: set it from spec.nodeName with the downward API")
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	// client-go (under Prometheus's discoverer) logs through klog: send
	// its lines (watch errors, reconnects) to the same log.
	klog.SetSlogLogger(logger.With("component", "pods", "from", "client-go"))

	var pf *positions.File
	if *posPath != "" {
		var err error
		if pf, err = positions.Open(*posPath, positions.Options{}); err != nil {
			return err
		}
	}
	reg := prometheus.NewRegistry()
	pods := &kubernetes.Discoverer{NodeName: *node, KubeConfig: *kubeconfig, Registerer: reg}
	if *namespaces != "" {
		pods.Namespaces = strings.Split(*namespaces, ",")
	}
	start := filetail.StartEnd
	if *fromStart {
		start = filetail.StartBeginning
	}

	b := pipeline.New(pipeline.WithLogger(logger))
	files := pipeline.Discover(b, "pods", &podlogs.Discoverer{Pods: pods, Root: *root})
	logs := pipeline.FromTargets(b, "tail", &filetail.Source{PositionsFile: pf, StartAt: start, Decompress: true}, files)
	logs = pipeline.Process(b, "cri", stage.MustNew(&stage.CRI{}), logs)
	var out sink.Sink[ferry.Entry] = &sink.Console[ferry.Entry]{W: stdout}
	if *lokiURL != "" {
		out = &loki.Sink{URL: *lokiURL}
	}
	pipeline.To(b, "out", out, logs)
	p, err := b.Build()
	if err != nil {
		return err
	}
	reg.MustRegister(p, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	if *listen != "" {
		ln, err := net.Listen("tcp", *listen)
		if err != nil {
			return err
		}
		go debugui.Serve(ctx, ln, p, reg) //nolint:errcheck // ends with ctx
		if ready != nil {
			ready <- ln.Addr().String()
		}
	}
	logger.Info("kubernetes agent starting", "node", *node, "root", *root)
	if err := p.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
