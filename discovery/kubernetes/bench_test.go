package kubernetes

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/discovery/kubernetes/kubetest"
	"github.com/ferrydev/ferry/pipeline"
	"github.com/ferrydev/ferry/process/stage"
	"github.com/ferrydev/ferry/sink/sinktest"
	"github.com/ferrydev/ferry/source/filetail"
	"github.com/ferrydev/ferry/source/podlogs"
)

// buildMemchild builds internal/memchild, a program that runs one pod
// discoverer and nothing else.
func buildMemchild(b *testing.B) string {
	b.Helper()
	bin := filepath.Join(b.TempDir(), "memchild")
	if out, err := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "./internal/memchild").CombinedOutput(); err != nil {
		b.Fatalf("go build ./internal/memchild: %v\n%s", err, out)
	}
	return bin
}

// memchild is a running internal/memchild.
type memchild struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Scanner
}

// memStat is one STAT line of memchild, sizes in MiB.
type memStat struct {
	rss, hwm, anon, file, heap float64
	ms                         int64
}

func startMemchild(b *testing.B, bin, kubeconfig, node string) *memchild {
	b.Helper()
	cmd := exec.Command(bin, "-kubeconfig="+kubeconfig, "-node="+node)
	if dir := os.Getenv("FERRY_K8S_MEMCHILD_PROFILE"); dir != "" {
		cmd.Args = append(cmd.Args, "-profile="+filepath.Join(dir, strings.ReplaceAll(b.Name(), "/", "_")))
	}
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	c := &memchild{cmd: cmd, stdin: stdin, out: bufio.NewScanner(stdout)}
	b.Cleanup(func() {
		c.stdin.Close()
		if c.cmd.Wait() != nil {
			c.cmd.Process.Kill()
		}
	})
	return c
}

// stat waits until the child's discoverer sent a set of targets targets
// and returns its memory then, and its peak since the previous stat.
func (c *memchild) stat(b *testing.B, targets int) memStat {
	b.Helper()
	fmt.Fprintln(c.stdin, targets)
	for c.out.Scan() {
		line := c.out.Text()
		if testing.Verbose() {
			b.Log(line)
		}
		if strings.HasPrefix(line, "ERROR") {
			b.Fatalf("memchild: %s", line)
		}
		var n int
		var rss, hwm, anon, file, heap, ms int64
		if _, err := fmt.Sscanf(line, "STAT targets=%d rss=%d hwm=%d anon=%d file=%d heap=%d ms=%d",
			&n, &rss, &hwm, &anon, &file, &heap, &ms); err == nil {
			mib := func(v int64) float64 { return float64(v) / (1 << 20) }
			return memStat{mib(rss), mib(hwm), mib(anon), mib(file), mib(heap), ms}
		}
	}
	b.Fatalf("memchild ended before a set of %d targets: %v", targets, c.out.Err())
	return memStat{}
}

// memCluster is an API server holding 10,000 pods on the nodes node-0 to
// node-99 (100 pods each), every pod with one container with two ports and
// an init container: three targets.
type memCluster struct {
	kubeconfig string
	// churn changes every pod of the cluster once (as kubelet's status
	// updates do), then adds n pods to node.
	churn func(b *testing.B, node string, n int)
}

// memoryRuns measures the pod discoverer in a process of its own
// (internal/memchild) for: NodeName of a node with 100 pods (10 more after
// each run, with -count), a node without pods (the fixed cost) and every
// pod of the cluster (no NodeName, the baseline). Each reports the peak RSS until the first full set
// (sync-hwm-MiB), and after every pod was changed once and 10 pods were
// added to the node, the peak meanwhile (steady-hwm-MiB) and the RSS at
// its end (steady-rss-MiB) with its anonymous part (steady-anon-MiB, the
// rest is the binary's pages) and the Go heap in use (heap-MiB). With
// FERRY_K8S_MEMCHILD_PROFILE=<dir> each child writes its heap profile and
// smaps there at the end (GODEBUG=memprofilerate=1 profiles every
// allocation, those of package initialization included).
func memoryRuns(b *testing.B, c memCluster) {
	bin := buildMemchild(b)
	total, onNode := 10000, 100 // pods; the pods of node-7
	// node-pods first: every run's churn adds 10 pods to node-7, so that
	// its first run starts from the node's 100 pods.
	for _, bc := range []struct{ name, node string }{
		{"node-pods", "node-7"},
		{"empty-node", "node-none"},
		{"all-pods", ""},
	} {
		pods := func() int {
			switch bc.node {
			case "":
				return total
			case "node-7":
				return onNode
			}
			return 0
		}
		b.Run(bc.name, func(b *testing.B) {
			var sync, steady memStat
			for range b.N {
				ch := startMemchild(b, bin, c.kubeconfig, bc.node)
				sync = ch.stat(b, 3*pods())
				c.churn(b, "node-7", 10)
				total, onNode = total+10, onNode+10
				steady = ch.stat(b, 3*pods())
			}
			b.ReportMetric(sync.hwm, "sync-hwm-MiB")
			b.ReportMetric(float64(sync.ms), "sync-ms")
			b.ReportMetric(steady.hwm, "steady-hwm-MiB")
			b.ReportMetric(steady.rss, "steady-rss-MiB")
			b.ReportMetric(steady.anon, "steady-anon-MiB")
			b.ReportMetric(steady.heap, "heap-MiB")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// cluster fills f with pods pods spread over nodes nodes (node-0 first);
// every pod has one container with two ports (two targets) plus an init
// container (one target).
func cluster(f *fakeAPI, pods, nodes int) {
	for i := range pods {
		p := pod(fmt.Sprintf("ns-%d", i%50), fmt.Sprintf("pod-%d", i), fmt.Sprintf("uid-%d", i),
			fmt.Sprintf("node-%d", i%nodes), "app")
		f.put("pods", p)
	}
	f.events = map[string][]fakeEvent{} // the history is not needed
}

// BenchmarkMemory measures the resident memory of the pod discoverer, in
// a process of its own, over a cluster of 10,000 pods on 100 nodes (100
// pods per node) served by the fake API: see memoryRuns. Opt-in:
// FERRY_K8S_BENCH=1; run with -benchtime=1x.
func BenchmarkMemory(b *testing.B) {
	if os.Getenv("FERRY_K8S_BENCH") != "1" {
		b.Skip("set FERRY_K8S_BENCH=1")
	}
	f := newFakeAPI(b)
	cluster(f, 10000, 100)
	gen := 0
	memoryRuns(b, memCluster{kubeconfig: kubetest.Kubeconfig(b, f.URL(), "x", false),
		churn: func(b *testing.B, node string, n int) {
			gen++
			f.churn(gen)
			for i := range n {
				name := fmt.Sprintf("churn-%d-%d", gen, i)
				f.put("pods", pod("ns-0", name, "uid-"+name, node, "app"))
			}
		}})
}

// BenchmarkPodToLine measures the time from a pod's creation in the API
// server to the first line of its log file delivered by the pod log
// pipeline (discovery with NodeName, podlogs, filetail, cri), in a cluster
// of 1,000 other pods served by the fake API. The file is written when the
// pod is created, as kubelet starts the container. Opt-in:
// FERRY_K8S_BENCH=1.
func BenchmarkPodToLine(b *testing.B) {
	if os.Getenv("FERRY_K8S_BENCH") != "1" {
		b.Skip("set FERRY_K8S_BENCH=1")
	}
	f := newFakeAPI(b)
	cluster(f, 1000, 10)
	podToLine(b, &Discoverer{APIServer: f.URL(), NodeName: "node-x"}, func(b *testing.B, name string) string {
		uid := "uid-" + name
		f.put("pods", pod("default", name, uid, "node-x", "app"))
		return uid
	})
}

// podToLine runs the pod log pipeline over pods and, b.N times, creates a
// pod on node-x with create (which returns its uid), writes its first line
// as kubelet does, and waits until the line is delivered; it reports the
// mean time from the creation to the delivery (ms/pod).
func podToLine(b *testing.B, pods *Discoverer, create func(b *testing.B, name string) (uid string)) {
	root := b.TempDir()
	out := &sinktest.Sink[ferry.Entry]{}
	pb := pipeline.New()
	t := pipeline.Discover(pb, "pods", &podlogs.Discoverer{Root: root, Pods: pods})
	logs := pipeline.FromTargets(pb, "tail", &filetail.Source{StartAt: filetail.StartBeginning}, t)
	logs = pipeline.Process(pb, "cri", stage.MustNew(&stage.CRI{}), logs)
	pipeline.To(pb, "out", out, logs)
	p, err := pb.Build()
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() { cancel(); <-done }()
	var total, worst time.Duration
	b.ResetTimer()
	for i := range b.N {
		name := fmt.Sprintf("new-%d", i)
		start := time.Now()
		uid := create(b, name)
		dir := filepath.Join(root, "default_"+name+"_"+uid, "app")
		os.MkdirAll(dir, 0o755)
		os.WriteFile(filepath.Join(dir, "0.log"), []byte("2026-12-04T10:00:00.000000000Z stdout F first "+name+"\n"), 0o644)
		if !out.WaitLen(i+1, 30*time.Second) {
			b.Fatalf("first line of %s not delivered within 30s", name)
		}
		d := time.Since(start)
		total, worst = total+d, max(worst, d)
		if got, want := out.Items()[i].Line, "first "+name; got != want {
			b.Fatalf("delivered %q, want %q", got, want)
		}
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/pod")
	b.ReportMetric(float64(worst.Microseconds())/1000, "max-ms")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkAgentRSS builds examples/kubernetes and runs it against the
// same 10,000-pod cluster as BenchmarkMemory, with the log files of the
// 100 pods of its node present (one line each); once every line was
// printed it reads the agent's peak resident memory (VmHWM), with Go's
// default GOGC and with GOGC=25. Opt-in: FERRY_K8S_BENCH=1.
func BenchmarkAgentRSS(b *testing.B) {
	if os.Getenv("FERRY_K8S_BENCH") != "1" {
		b.Skip("set FERRY_K8S_BENCH=1")
	}
	bin := filepath.Join(b.TempDir(), "agent")
	if out, err := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "../../examples/kubernetes").CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	f := newFakeAPI(b)
	cluster(f, 10000, 100)
	root := b.TempDir()
	for i := 7; i < 10000; i += 100 { // the pods of node-7
		name, uid := fmt.Sprintf("pod-%d", i), fmt.Sprintf("uid-%d", i)
		dir := filepath.Join(root, fmt.Sprintf("ns-%d", i%50)+"_"+name+"_"+uid, "app")
		os.MkdirAll(dir, 0o755)
		os.WriteFile(filepath.Join(dir, "0.log"), []byte("2026-12-04T10:00:00.000000000Z stdout F line of "+name+"\n"), 0o644)
	}
	kc := kubetest.Kubeconfig(b, f.URL(), "x", false)
	for _, env := range []string{"GOGC=100", "GOGC=25"} {
		b.Run(env, func(b *testing.B) { agentRSS(b, bin, kc, root, env) })
	}
}

func agentRSS(b *testing.B, bin, kc, root, env string) {
	var rss float64
	for range b.N {
		cmd := exec.Command(bin, "-node=node-7", "-kubeconfig="+kc, "-root="+root, "-positions=", "-listen=")
		cmd.Env = append(os.Environ(), env)
		stdout, _ := cmd.StdoutPipe()
		cmd.Stderr = nil
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		sc := bufio.NewScanner(stdout)
		lines := 0
		for lines < 100 && sc.Scan() {
			if strings.Contains(sc.Text(), "line of pod-") {
				lines++
			}
		}
		st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
		for _, l := range strings.Split(string(st), "\n") {
			if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
				kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
				rss = kb / 1024
			}
		}
		cmd.Process.Signal(os.Interrupt)
		go func() {
			for sc.Scan() {
			}
		}()
		cmd.Wait()
		if lines < 100 {
			b.Fatalf("%d of 100 lines printed", lines)
		}
	}
	b.ReportMetric(rss, "rss-MiB")
	b.ReportMetric(0, "ns/op")
}
