package remotewrite_test

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/discovery"
	"github.com/ferrydev/ferry/pipeline"
	"github.com/ferrydev/ferry/scrape"
	"github.com/ferrydev/ferry/sink/remotewrite"
)

// The end-to-end throughput benchmark: N local targets each serving a real
// node_exporter page, scraped every second and remote-written to a local
// receiver that decodes and counts. The agent under test runs as its own
// process (this test binary re-executed, or vmagent), so that its CPU time
// and peak RSS are its own. It is a test, not a Go benchmark, because it
// runs for a fixed wall time; run it with
//
//	FERRY_E2E_BENCH=1 [FERRY_E2E_TARGETS=200,1000] [FERRY_E2E_SECONDS=20] \
//	[FERRY_E2E_GOGC=50] [FERRY_VMAGENT_BIN=/path/to/vmagent] go test -run TestE2EThroughput -v ./sink/remotewrite
//
// For a closer look: FERRY_E2E_CPUPROFILE, FERRY_E2E_HEAPPROFILE and
// FERRY_E2E_MEMSTATS name files the Ferry agent writes its CPU profile, heap
// profile and memory statistics to; FERRY_E2E_AGENT_LOG=prefix keeps each
// agent's output in prefix.<binary>; FERRY_E2E_RSS_TRACE=1 logs the agent's
// RSS every second. FERRY_E2E_MIN_SHARDS, FERRY_E2E_MAX_SHARDS and
// FERRY_E2E_MAX_PER_SEND set the Ferry sink's MinShards, MaxShards and
// MaxSamplesPerSend; FERRY_E2E_INTERVAL every agent's scrape interval (1s
// unless set); FERRY_E2E_GROUP the Scraper's Group (a duration:
// 1ns spreads phases as Prometheus does), FERRY_E2E_VMAGENT_ALIGN
// vmagent's scrape_align_interval; FERRY_E2E_GOMAXPROCS the Ferry agent's
// GOMAXPROCS (the rest of the test keeps the default). FERRY_E2E_PIPELINE=default (or inline) runs the Ferry
// agent as a pipeline (built WithInlineChains), not as a loop that hands the
// scraper's batches to the sink. FERRY_E2E_AGENTS lists the
// agents to run at each size, in order (ferry,vmagent; fetch is the
// network's part of the work alone, see fetchEnv): the one that runs
// second at 1000 targets measured 10-20 % worse on this 2-core machine,
// whichever it was, so compare runs of one agent alone, alternated.

const childEnv = "FERRY_E2E_AGENT_CHILD"

// intervalEnv is FERRY_E2E_INTERVAL, every agent's scrape interval and
// timeout (1s when unset).
func intervalEnv() time.Duration {
	d, _ := time.ParseDuration(os.Getenv("FERRY_E2E_INTERVAL"))
	return cmp.Or(max(d, 0), time.Second)
}

// groupEnv is FERRY_E2E_GROUP, the Scraper's Group for the harness's
// Ferry and fetch agents (0, the default, when unset).
func groupEnv() time.Duration {
	g, _ := time.ParseDuration(os.Getenv("FERRY_E2E_GROUP"))
	return g
}

// TestE2EAgentChild is the Ferry agent of the benchmark when re-executed;
// otherwise it does nothing.
func TestE2EAgentChild(t *testing.T) {
	if os.Getenv(childEnv) == "" {
		t.Skip("only runs as the child of TestE2EThroughput")
	}
	if n, err := strconv.Atoi(os.Getenv("FERRY_E2E_GOMAXPROCS")); err == nil && n > 0 {
		runtime.GOMAXPROCS(n)
	}
	targetsFile, url := os.Getenv("FERRY_E2E_TARGETS_FILE"), os.Getenv("FERRY_E2E_URL")
	secs, _ := strconv.Atoi(os.Getenv("FERRY_E2E_SECONDS"))
	raw, err := os.ReadFile(targetsFile)
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv(fetchEnv) != "" {
		runFetchFloor(t, strings.Fields(string(raw)), url, time.Duration(secs)*time.Second)
		return
	}
	var set []labels.Labels
	for _, a := range strings.Fields(string(raw)) {
		set = append(set, labels.FromStrings("__address__", a))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(secs)*time.Second)
	defer cancel()
	iv := intervalEnv()
	sc := &scrape.Scraper{Job: "node", Interval: iv, Timeout: iv, Group: groupEnv()}
	rw := &remotewrite.Sink{URL: url, UserAgent: "ferry-e2e"}
	// Optional settings closer to vmagent's defaults (4 queues on 2 CPUs,
	// up to 10000 samples a request).
	rw.MinShards, _ = strconv.Atoi(os.Getenv("FERRY_E2E_MIN_SHARDS"))
	rw.MaxShards, _ = strconv.Atoi(os.Getenv("FERRY_E2E_MAX_SHARDS"))
	rw.MaxSamplesPerSend, _ = strconv.Atoi(os.Getenv("FERRY_E2E_MAX_PER_SEND"))
	// dump writes what FERRY_E2E_MEMSTATS and FERRY_E2E_HEAPPROFILE ask
	// for, at the end of the run.
	dump := func() {
		if f := os.Getenv("FERRY_E2E_MEMSTATS"); f != "" {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			failing := map[string]int{}
			for _, st := range sc.Targets() {
				if st.Health != ferry.Healthy {
					failing[fmt.Sprint(st.LastError)]++
				}
			}
			os.WriteFile(f, fmt.Appendf(nil, "HeapAlloc=%dMiB HeapInuse=%dMiB HeapIdle=%dMiB HeapReleased=%dMiB StackInuse=%dMiB Sys=%dMiB NumGC=%d goroutines=%d failing=%v shards=%d",
				ms.HeapAlloc>>20, ms.HeapInuse>>20, ms.HeapIdle>>20, ms.HeapReleased>>20, ms.StackInuse>>20, ms.Sys>>20, ms.NumGC, runtime.NumGoroutine(), failing, rw.NumShards()), 0o644)
		}
		if f := os.Getenv("FERRY_E2E_HEAPPROFILE"); f != "" {
			if w, err := os.Create(f); err == nil {
				pprof.Lookup("heap").WriteTo(w, 0)
				w.Close()
			}
		}
	}
	if mode := os.Getenv("FERRY_E2E_PIPELINE"); mode != "" {
		// The agent as a user builds it: a pipeline, its chain on the
		// scrapes' goroutines with "inline".
		var opts []pipeline.Option
		if mode == "inline" {
			opts = append(opts, pipeline.WithInlineChains())
		}
		bl := pipeline.New(opts...)
		targets := pipeline.Discover(bl, "targets", discovery.Static(set))
		pipeline.To(bl, "remote_write", rw, pipeline.FromTargets(bl, "scrape", sc, targets))
		p, err := bl.Build()
		if err != nil {
			t.Fatal(err)
		}
		stop := context.AfterFunc(ctx, dump)
		defer stop()
		if err := p.Run(ctx); err != nil {
			t.Fatal(err)
		}
		return
	}
	for _, c := range []ferry.Starter{sc, rw} {
		if err := c.Start(ctx, ferry.NopReporter()); err != nil {
			t.Fatal(err)
		}
	}
	targets := make(chan []labels.Labels, 1)
	targets <- set
	out := make(chan ferry.Batch[ferry.Sample], 64)
	go sc.Run(ctx, targets, out)
	for {
		select {
		case b := <-out:
			rw.Send(ctx, b)
		case <-ctx.Done():
			dump()
			cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
			rw.Close(cctx)
			ccancel()
			return
		}
	}
}

// traceRSS logs the resident set of process pid every second until it
// exits, to see when the peak happens.
// traceRSS reads the RSS of process pid each second until it is gone.
func traceRSS(pid int) string {
	var trace []string
	for range time.Tick(time.Second) {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			break
		}
		for _, line := range strings.Split(string(raw), "\n") {
			if strings.HasPrefix(line, "VmRSS:") {
				trace = append(trace, strings.Fields(line)[1])
			}
		}
	}
	return strings.Join(trace, " ")
}

type counter struct{ samples, requests atomic.Int64 }

// decodeV1 reads the remote write 1.0 request in r's body.
func decodeV1(r *http.Request) (prompb.WriteRequest, error) {
	var req prompb.WriteRequest
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return req, err
	}
	pb, err := snappy.Decode(nil, body)
	if err != nil {
		return req, err
	}
	return req, req.Unmarshal(pb)
}

// ServeHTTP counts the samples of a remote write 1.0 request without
// decoding its series: the receiver shares the machine with the agent
// under test, and a full decode (labels copied into new strings) took a
// fifth of a CPU at 1000 targets.
func (c *counter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	bufs := countBufs.Get().(*[2][]byte)
	defer countBufs.Put(bufs)
	body := bytes.NewBuffer(bufs[0][:0])
	_, err := body.ReadFrom(r.Body)
	bufs[0] = body.Bytes()
	if err != nil {
		w.WriteHeader(400)
		return
	}
	if n, err := snappy.DecodedLen(bufs[0]); err != nil {
		w.WriteHeader(400)
		return
	} else if cap(bufs[1]) < n {
		bufs[1] = make([]byte, n)
	}
	pb, err := snappy.Decode(bufs[1][:cap(bufs[1])], bufs[0])
	if err != nil {
		w.WriteHeader(400)
		return
	}
	n, err := countSamples(pb)
	if err != nil {
		w.WriteHeader(400)
		return
	}
	c.samples.Add(int64(n))
	c.requests.Add(1)
	w.WriteHeader(http.StatusNoContent)
}

// countBufs holds a request's compressed and decompressed bodies.
var countBufs = sync.Pool{New: func() any { return new([2][]byte) }}

// countSamples counts the samples (TimeSeries field 2) of the series
// (WriteRequest field 1) of the WriteRequest pb, checking its framing.
func countSamples(pb []byte) (int, error) {
	n := 0
	err := fields(pb, func(num protowire.Number, typ protowire.Type, v []byte) error {
		if num != 1 || typ != protowire.BytesType {
			return nil
		}
		ts, _ := protowire.ConsumeBytes(v)
		return fields(ts, func(num protowire.Number, _ protowire.Type, _ []byte) error {
			if num == 2 {
				n++
			}
			return nil
		})
	})
	return n, err
}

// fields calls fn with each field of the protobuf message b: its number,
// wire type and the bytes of its value (with their length prefix).
func fields(b []byte, fn func(protowire.Number, protowire.Type, []byte) error) error {
	for len(b) > 0 {
		num, typ, k := protowire.ConsumeTag(b)
		if k < 0 {
			return protowire.ParseError(k)
		}
		b = b[k:]
		if k = protowire.ConsumeFieldValue(num, typ, b); k < 0 {
			return protowire.ParseError(k)
		}
		if err := fn(num, typ, b[:k]); err != nil {
			return err
		}
		b = b[k:]
	}
	return nil
}

// The harness's receiver counts what a full decode counts, and refuses a
// body cut short.
func TestCountSamples(t *testing.T) {
	req := prompb.WriteRequest{
		Timeseries: []prompb.TimeSeries{
			{Labels: []prompb.Label{{Name: "__name__", Value: "a"}}, Samples: []prompb.Sample{{Value: 1, Timestamp: 1}, {Value: 2, Timestamp: 2}}},
			{Labels: []prompb.Label{{Name: "__name__", Value: "b"}, {Name: "job", Value: "j"}}, Samples: []prompb.Sample{{Value: 3, Timestamp: 3}, {Value: 4, Timestamp: 4}, {Value: 5, Timestamp: 5}}},
		},
		Metadata: []prompb.MetricMetadata{{MetricFamilyName: "a", Help: "h"}},
	}
	pb, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if n, err := countSamples(pb); n != 5 || err != nil {
		t.Errorf("countSamples = %d, %v; want 5, nil", n, err)
	}
	if n, err := countSamples(pb[:len(pb)-3]); err == nil {
		t.Errorf("countSamples of a cut body = %d, nil; want an error", n)
	}
}

type result struct {
	samples       int64
	requests      int64
	cpu           time.Duration
	sys           time.Duration // the part of cpu in the kernel
	faults        int64         // page faults, minor and major
	maxRSSKiB     int64
	wall          time.Duration
	samplesPerSec float64
}

func (r result) perCPUSecond() float64 { return float64(r.samples) / r.cpu.Seconds() }

func (r result) String() string {
	return fmt.Sprintf("%.0f samples/s delivered, %.2f CPU s (%.0f%% in the kernel), %.0f samples per CPU second, peak RSS %.1f MiB, %.0f samples a request, %.1f page faults per 1000 samples",
		r.samplesPerSec, r.cpu.Seconds(), 100*r.sys.Seconds()/r.cpu.Seconds(), float64(r.samples)/r.cpu.Seconds(), float64(r.maxRSSKiB)/1024,
		float64(r.samples)/float64(max(r.requests, 1)), 1000*float64(r.faults)/float64(r.samples))
}

func runAgent(t *testing.T, cmd *exec.Cmd, rc *counter, d time.Duration) result {
	t.Helper()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	before, beforeReqs := rc.samples.Load(), rc.requests.Load()
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var rss chan string
	if os.Getenv("FERRY_E2E_RSS_TRACE") != "" {
		rss = make(chan string, 1)
		go func() { rss <- traceRSS(cmd.Process.Pid) }()
	}
	select {
	case <-done:
	case <-time.After(d):
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}
	wall := time.Since(start)
	if rss != nil {
		t.Logf("%s RSS KiB each second: %s", filepath.Base(cmd.Path), <-rss)
	}
	if f := os.Getenv("FERRY_E2E_AGENT_LOG"); f != "" {
		os.WriteFile(f+"."+filepath.Base(cmd.Path), out.Bytes(), 0o644)
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		t.Fatal("no rusage")
	}
	n := rc.samples.Load() - before
	if n == 0 {
		t.Fatalf("agent delivered nothing:\n%s", out.String())
	}
	return result{
		samples:       n,
		requests:      rc.requests.Load() - beforeReqs,
		cpu:           time.Duration(ru.Utime.Nano() + ru.Stime.Nano()),
		sys:           time.Duration(ru.Stime.Nano()),
		faults:        ru.Minflt + ru.Majflt,
		maxRSSKiB:     ru.Maxrss,
		wall:          wall,
		samplesPerSec: float64(n) / wall.Seconds(),
	}
}

func TestE2EThroughput(t *testing.T) {
	if os.Getenv("FERRY_E2E_BENCH") == "" {
		t.Skip("set FERRY_E2E_BENCH=1 to run the end-to-end throughput benchmark")
	}
	page, err := os.ReadFile("../../scrape/testdata/node_exporter.txt")
	if err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(page)
	zw.Close()
	secs := 20
	if v, err := strconv.Atoi(os.Getenv("FERRY_E2E_SECONDS")); err == nil && v > 0 {
		secs = v
	}
	sizes := []int{200, 1000}
	if v := os.Getenv("FERRY_E2E_TARGETS"); v != "" {
		sizes = nil
		for _, f := range strings.Split(v, ",") {
			n, _ := strconv.Atoi(f)
			sizes = append(sizes, n)
		}
	}
	targetHandler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			w.Header().Set("Content-Encoding", "gzip")
			w.Write(gz.Bytes())
			return
		}
		w.Write(page)
	})
	lim, err := measureLimit(page, gz.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s", lim)
	// around measures the limit again just before and just after run: the
	// speed of a shared machine drifts by tens of percent within minutes,
	// so each run is compared with the limit of its own minutes (the mean
	// of the two rates).
	limitRate := func() float64 {
		l, err := measureLimit(page, gz.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		return l.rate()
	}
	// floor is the CPU time a sample of the last fetch run at this size
	// took (see fetchEnv), 0 before one: an agent's time above it, over
	// the limit's, is the part of its own work that is not the work.
	var floor float64
	around := func(run func() result, fetch bool) (result, string) {
		before := limitRate()
		res := run()
		after := limitRate()
		rate := (before + after) / 2
		vs := fmt.Sprintf("%.2f× the limit (%.2f M before the run, %.2f M after)", rate/res.perCPUSecond(), before/1e6, after/1e6)
		if fetch {
			floor = 1 / res.perCPUSecond()
		} else if floor > 0 {
			vs += fmt.Sprintf("; above the fetch floor %.2f× the limit", (1/res.perCPUSecond()-floor)*rate)
		}
		return res, vs
	}
	rc := &counter{}
	rl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rsrv := &http.Server{Handler: rc}
	go rsrv.Serve(rl)
	defer rsrv.Close()
	url := "http://" + rl.Addr().String() + "/api/v1/write"

	for _, n := range sizes {
		floor = 0
		srv := &http.Server{Handler: targetHandler}
		var addrs []string
		for range n {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addrs = append(addrs, l.Addr().String())
			go srv.Serve(l)
		}
		dir := t.TempDir()
		tf := filepath.Join(dir, "targets.txt")
		os.WriteFile(tf, []byte(strings.Join(addrs, "\n")), 0o644)

		// runChild runs this binary as the Ferry agent, or with fetch as the agent of
		// fetchEnv.
		runChild := func(fetch bool) {
			self, _ := os.Executable()
			args := []string{"-test.run=^TestE2EAgentChild$", "-test.count=1"}
			if f := os.Getenv("FERRY_E2E_CPUPROFILE"); f != "" {
				args = append(args, "-test.cpuprofile="+f)
			}
			cmd := exec.Command(self, args...)
			// vmagent runs with GOGC=50 (its main sets it); the Ferry agent
			// gets the same unless FERRY_E2E_GOGC says otherwise.
			gogc := os.Getenv("FERRY_E2E_GOGC")
			if gogc == "" {
				gogc = "50"
			}
			cmd.Env = append(os.Environ(), "GOGC="+gogc, childEnv+"=1", "FERRY_E2E_TARGETS_FILE="+tf, "FERRY_E2E_URL="+url, "FERRY_E2E_SECONDS="+strconv.Itoa(secs))
			name := "ferry  "
			if fetch {
				cmd.Env, name = append(cmd.Env, fetchEnv+"=1"), "fetch  "
			}
			res, vsLimit := around(func() result { return runAgent(t, cmd, rc, time.Duration(secs+10)*time.Second) }, fetch)
			t.Logf("%s %4d targets (GOGC=%s): %s, %s", name, n, gogc, res, vsLimit)
		}
		runVMAgent := func() {
			vm := os.Getenv("FERRY_VMAGENT_BIN")
			if vm == "" {
				return
			}
			var cfg strings.Builder
			fmt.Fprintf(&cfg, "scrape_configs:\n- job_name: node\n  scrape_interval: %[1]s\n  scrape_timeout: %[1]s\n", intervalEnv())
			if a := os.Getenv("FERRY_E2E_VMAGENT_ALIGN"); a != "" {
				// vmagent's nearest to the Scraper's Group: every target
				// scraped at multiples of a.
				fmt.Fprintf(&cfg, "  scrape_align_interval: %s\n", a)
			}
			cfg.WriteString("  static_configs:\n  - targets:\n")
			for _, a := range addrs {
				fmt.Fprintf(&cfg, "    - %s\n", a)
			}
			cf := filepath.Join(dir, "vmagent.yml")
			os.WriteFile(cf, []byte(cfg.String()), 0o644)
			vmcmd := exec.Command(vm,
				"-promscrape.config="+cf,
				"-remoteWrite.url="+url,
				"-remoteWrite.forcePromProto=true",
				"-remoteWrite.tmpDataPath="+filepath.Join(dir, "vmagent-data"),
				"-httpListenAddr=127.0.0.1:0",
				"-loggerLevel=ERROR",
			)
			res, vsLimit := around(func() result { return runAgent(t, vmcmd, rc, time.Duration(secs)*time.Second) }, false)
			t.Logf("vmagent %4d targets: %s, %s", n, res, vsLimit)
		}
		for _, agent := range strings.Split(cmp.Or(os.Getenv("FERRY_E2E_AGENTS"), "ferry,vmagent"), ",") {
			switch agent {
			case "ferry", "fetch":
				runChild(agent == "fetch")
			case "vmagent":
				runVMAgent()
			default:
				t.Fatalf("FERRY_E2E_AGENTS: unknown agent %q", agent)
			}
		}
		srv.Close()
	}
}
