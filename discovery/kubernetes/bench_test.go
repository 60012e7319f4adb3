package kubernetes

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/discovery/kubernetes/kubetest"
	"github.com/ferrydev/ferry/pipeline"
	"github.com/ferrydev/ferry/process/stage"
	"github.com/ferrydev/ferry/sink/sinktest"
	"github.com/ferrydev/ferry/source/filetail"
	"github.com/ferrydev/ferry/source/podlogs"
)

// childEnv makes the test binary a discoverer child process (see
// TestMain): "<api server URL> <node name or -> <targets to wait for>".
const childEnv = "FERRY_K8S_BENCH_CHILD"

func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		os.Exit(child(spec))
	}
	os.Exit(m.Run())
}

// child runs a Discoverer against the API server until it sent want
// targets, then prints its RSS, Go heap and time to the first full set.
func child(spec string) int {
	var url, node string
	var want int
	fmt.Sscan(spec, &url, &node, &want)
	if node == "-" {
		node = ""
	}
	d := &Discoverer{APIServer: url, NodeName: node, UpdateDelay: 50 * time.Millisecond, FirstSetTimeout: 2 * time.Second}
	if strings.HasPrefix(url, "/") { // a kubeconfig file
		d.APIServer, d.KubeConfig = "", url
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	begin := time.Now()
	if err := d.Start(ctx, ferry.NopReporter()); err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	up := make(chan []labels.Labels)
	go d.Run(ctx, up)
	var sync time.Duration
	for s := range up {
		if len(s) == want {
			sync = time.Since(begin)
			break
		}
	}
	time.Sleep(time.Second) // let the informers settle before measuring
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("RESULT rss=%d heap=%d sync=%d\n", rssBytes(), ms.HeapInuse, sync.Nanoseconds())
	return 0
}

func rssBytes() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return -1
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

// BenchmarkMemory measures the resident memory of a process running the
// pod discoverer over a cluster of 10,000 pods on 100 nodes (100 pods per
// node), with NodeName (the node's pods) next to the baseline without it
// (every pod of the cluster), each in a process of its own. Opt-in:
// FERRY_K8S_BENCH=1; run with -benchtime=1x.
func BenchmarkMemory(b *testing.B) {
	if os.Getenv("FERRY_K8S_BENCH") != "1" {
		b.Skip("set FERRY_K8S_BENCH=1")
	}
	f := newFakeAPI(b)
	cluster(f, 10000, 100)
	memoryRuns(b, f.URL())
}

func memoryRuns(b *testing.B, server string) {
	for _, bc := range []struct {
		name, node string
		targets    int
	}{
		{"empty-node", "node-none", 0},
		{"all-pods", "-", 30000},
		{"node-pods", "node-7", 300},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var rss, heap, sync float64
			for range b.N {
				cmd := exec.Command(os.Args[0], "-test.run=^$")
				cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %s %d", childEnv, server, bc.node, bc.targets))
				out, err := cmd.Output()
				if err != nil {
					b.Fatalf("child: %v\n%s", err, out)
				}
				var r, h, s int64
				line := string(out[strings.LastIndex(string(out), "RESULT"):])
				if _, err := fmt.Sscanf(line, "RESULT rss=%d heap=%d sync=%d", &r, &h, &s); err != nil {
					b.Fatalf("child output %q: %v", out, err)
				}
				rss, heap, sync = float64(r)/(1<<20), float64(h)/(1<<20), float64(s)/1e6
			}
			b.ReportMetric(rss, "rss-MiB")
			b.ReportMetric(heap, "heap-MiB")
			b.ReportMetric(sync, "sync-ms")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkPodToLine measures the time from a pod's creation in the API
// server to the first line of its log file delivered by the pod log
// pipeline (discovery with NodeName, podlogs, filetail, cri), in a cluster
// of 1,000 other pods. The file is written when the pod is created, as
// kubelet starts the container. Opt-in: FERRY_K8S_BENCH=1.
func BenchmarkPodToLine(b *testing.B) {
	if os.Getenv("FERRY_K8S_BENCH") != "1" {
		b.Skip("set FERRY_K8S_BENCH=1")
	}
	f := newFakeAPI(b)
	cluster(f, 1000, 10)
	root := b.TempDir()
	out := &sinktest.Sink[ferry.Entry]{}
	pb := pipeline.New()
	t := pipeline.Discover(pb, "pods", &podlogs.Discoverer{Root: root, Pods: &Discoverer{APIServer: f.URL(), NodeName: "node-x"}})
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
	var total time.Duration
	b.ResetTimer()
	for i := range b.N {
		name, uid := fmt.Sprintf("new-%d", i), fmt.Sprintf("uid-new-%d", i)
		dir := filepath.Join(root, "default_"+name+"_"+uid, "app")
		start := time.Now()
		f.put("pods", pod("default", name, uid, "node-x", "app"))
		os.MkdirAll(dir, 0o755)
		os.WriteFile(filepath.Join(dir, "0.log"), []byte("2026-12-04T10:00:00.000000000Z stdout F first "+name+"\n"), 0o644)
		want := "first " + name
		for !delivered(out, want) {
			if time.Since(start) > 30*time.Second {
				b.Fatalf("%s not delivered within 30s", want)
			}
			time.Sleep(time.Millisecond)
		}
		total += time.Since(start)
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/pod")
	b.ReportMetric(0, "ns/op")
}

func delivered(s *sinktest.Sink[ferry.Entry], line string) bool {
	for _, e := range s.Items() {
		if e.Line == line {
			return true
		}
	}
	return false
}

// BenchmarkAgentRSS builds examples/kubernetes and runs it against the
// same 10,000-pod cluster as BenchmarkMemory, with the log files of the
// 100 pods of its node present (one line each); once every line was
// printed it reads the agent's resident memory, with Go's default GOGC
// and with GOGC=25. Opt-in: FERRY_K8S_BENCH=1.
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
		time.Sleep(time.Second) // let it settle
		st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
		for _, l := range strings.Split(string(st), "\n") {
			if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
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
