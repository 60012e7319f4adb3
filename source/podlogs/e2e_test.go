package podlogs_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/ferrydev/ferry/discovery"
	"github.com/ferrydev/ferry/internal/peers"
	"github.com/ferrydev/ferry/internal/poll"
	"github.com/ferrydev/ferry/pipeline"
	"github.com/ferrydev/ferry/positions"
	"github.com/ferrydev/ferry/process/stage"
	"github.com/ferrydev/ferry/sink/loki"
	"github.com/ferrydev/ferry/source/filetail"
	"github.com/ferrydev/ferry/source/podlogs"
)

// agent is the pod log pipeline of examples/kubernetes over a Static pod
// discoverer: podlogs → filetail (gzip on) → cri → Loki push.
type agent struct {
	cancel context.CancelFunc
	done   chan error
}

func startAgent(t *testing.T, root, posPath, pushURL string, pods []labels.Labels) *agent {
	t.Helper()
	pf, err := positions.Open(posPath, positions.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b := pipeline.New(pipeline.WithDrainTimeout(10 * time.Second))
	targets := pipeline.Discover(b, "pods", &podlogs.Discoverer{Pods: discovery.Static(pods), Root: root,
		RefreshInterval: 50 * time.Millisecond})
	logs := pipeline.FromTargets(b, "tail", &filetail.Source{PositionsFile: pf, Decompress: true,
		StartAt: filetail.StartBeginning, PollInterval: 20 * time.Millisecond, RotateWait: 200 * time.Millisecond}, targets)
	logs = pipeline.Process(b, "cri", stage.MustNew(&stage.CRI{}), logs)
	pipeline.To(b, "loki", &loki.Sink{URL: pushURL, BatchWait: 50 * time.Millisecond}, logs)
	p, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &agent{cancel: cancel, done: make(chan error, 1)}
	go func() { a.done <- p.Run(ctx) }()
	return a
}

func (a *agent) stop(t *testing.T) {
	t.Helper()
	a.cancel()
	select {
	case err := <-a.done:
		if err != nil {
			t.Fatalf("agent: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("agent did not stop")
	}
}

// TestEndToEnd writes, rotates and compresses container logs as kubelet
// does, while an agent reads them into VictoriaLogs, stops, and starts
// again on the same positions file: every line arrives once, with the
// namespace, pod, container and node labels and the partial lines joined.
func TestEndToEnd(t *testing.T) {
	vl := peers.StartVictoriaLogs(t)
	root := t.TempDir()
	posPath := filepath.Join(t.TempDir(), "positions.json")
	k := newKubelet(t, root)
	want := map[string]ctr{} // message -> container
	seq := 0
	write := func(c ctr, restart, n int) {
		var msgs []string
		for range n {
			seq++
			m := fmt.Sprintf("%s/%s/%s line %d", c.ns, c.pod, c.name, seq)
			if seq%10 == 0 { // a long line, written as partials
				m += " " + strings.Repeat("x", 90) + " end"
			}
			msgs = append(msgs, m)
			want[m] = c
		}
		k.write(c, restart, msgs...)
	}
	delivered := func() int { return len(vl.Query(t, "*")) }
	waitAll := func(what string) {
		t.Helper()
		// VictoriaLogs has no notification: poll its query API.
		if !poll.Wait(60*time.Second, func() bool { return delivered() >= len(want) }) {
			t.Fatalf("%s: %d of %d lines delivered", what, delivered(), len(want))
		}
	}
	pods := []labels.Labels{web.target(), web.target(), sidecar.target(), dns.target()}

	write(web, 0, 200)
	write(sidecar, 0, 50)
	a := startAgent(t, root, posPath, vl.PushURL(), pods)
	write(dns, 0, 100) // a pod whose logs directory appears after discovery
	write(web, 0, 100)
	waitAll("first run")
	k.rotate(web, 0) // rotation while the agent runs
	write(web, 0, 100)
	waitAll("after a rotation")
	a.stop(t)

	// While the agent is down: more lines, a rotation, a container restart.
	write(web, 0, 100)
	write(dns, 0, 50)
	k.rotate(web, 0) // gzips the first rotated file
	write(web, 0, 30)
	write(sidecar, 1, 40)

	a = startAgent(t, root, posPath, vl.PushURL(), pods)
	write(web, 0, 70)
	write(dns, 0, 10)
	waitAll("second run")
	a.stop(t)

	rows := vl.Query(t, "*")
	seen := map[string]int{}
	for _, row := range rows {
		m := row["_msg"]
		seen[m]++
		c, ok := want[m]
		if !ok {
			t.Errorf("unexpected line %q", m)
			continue
		}
		for name, v := range map[string]string{"namespace": c.ns, "pod": c.pod, "container": c.name, "node": c.node, "stream": "stdout"} {
			if row[name] != v {
				t.Errorf("line %q: %s=%q, want %q", m, name, row[name], v)
			}
		}
	}
	lost, dup := 0, 0
	for m := range want {
		switch seen[m] {
		case 0:
			lost++
		case 1:
		default:
			dup++
		}
	}
	t.Logf("%d lines written, %d rows in VictoriaLogs, %d lost, %d duplicated", len(want), len(rows), lost, dup)
	if lost != 0 || dup != 0 || len(rows) != len(want) {
		t.Fatalf("%d lost, %d duplicated, %d rows for %d lines", lost, dup, len(rows), len(want))
	}
}
