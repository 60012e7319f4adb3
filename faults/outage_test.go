package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferrydev/ferry/internal/peers"

	"github.com/ferrydev/ferry/discovery"
	"github.com/ferrydev/ferry/internal/dockertest"
	"github.com/ferrydev/ferry/pipeline"
	"github.com/ferrydev/ferry/scrape"
	"github.com/ferrydev/ferry/sink/remotewrite"
)

// TestOutageLoki stops VictoriaLogs under steady load from real containers
// and a rotating file, shipped by the agent binary with a small Loki
// buffer, and starts it again: every line must arrive, duplicates stay
// within the at-least-once bound, and the agent's RSS stays bounded while
// the receiver is away (backpressure, not buffering).
func TestOutageLoki(t *testing.T) {
	vl, base := victoriaLogs(t)
	c := dockertest.Client(t)
	bin := buildAgent(t)

	outages, outage, fileLines, ctrLines := 1, 8*time.Second, 10000, 4000
	rotate, logOpts := 5000, map[string]string(nil)
	if long() {
		outages, outage, fileLines, ctrLines = 3, 60*time.Second, 150000, 60000
		// What is written while the agent waits must still be there when
		// it reads again: a file generation renamed away twice before the
		// agent opened it, or a json-file part deleted by the daemon's
		// rotation (this machine: 10m x 3, a minute of these containers),
		// is gone before any agent could read it. Rotate every 80 s and
		// give the containers 300 MB; and the agent catches up between
		// outages.
		rotate, logOpts = 40000, map[string]string{"max-size": "100m", "max-file": "3"}
	}
	const pad = 1000
	dir := t.TempDir()
	logDir := filepath.Join(dir, "logs")
	os.Mkdir(logDir, 0o755)
	label := fmt.Sprintf("ferry.faults.outage=%d", time.Now().UnixNano())
	k, v, _ := strings.Cut(label, "=")
	a := startAgent(t, bin, "-docker.label", label, "-files", filepath.Join(logDir, "app.log"),
		"-positions", filepath.Join(dir, "positions.json"), "-loki.url", base+"/insert/loki/api/v1/push",
		"-loki.buffer", strconv.Itoa(2<<20))

	specs := make([]dockertest.Spec, 2)
	var ids []string
	for i := range specs {
		specs[i] = dockertest.Spec{
			Name:  fmt.Sprintf("ferry-faults-outage-%d-%d", os.Getpid(), i),
			Lines: ctrLines, Sleep: 2 * time.Millisecond, Long: pad,
			Labels: map[string]string{k: v}, LogOpts: logOpts,
		}
		ids = append(ids, dockertest.Run(t, c, specs[i]))
	}
	w := &fileWriter{dir: logDir, rate: 500, rotate: rotate, pad: pad}
	werr := make(chan error, 1)
	go func() { werr <- w.run(context.Background(), fileLines) }()

	for range outages {
		// Before each outage the agent ships, and has caught up with the
		// file lines written until now (after an outage: during it).
		n := max(1, w.count())
		mustWait(t, fmt.Sprintf("%d file lines stored", n), 5*time.Minute, func() bool { return countLogs(t, base, `job:="files"`) >= n })
		vl.Stop()
		time.Sleep(outage) // the outage under test
		vl.Start()
	}
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		dockertest.WaitExit(t, c, id)
	}
	want := newTally()
	want.expectWritten(w, specs)
	lost, dup, unexpected, missing := want.await(t, base, "*", 120*time.Second)
	a.cmd.Process.Signal(syscall.SIGTERM)
	code, _ := a.exit(30 * time.Second)
	total := len(want.want)
	peak := a.stats.peakRSS
	t.Logf("loki outage: %d×%v, %d lines of ~%d B (%d file, %d container): lost %d, duplicated %d, unexpected %d, agent peak RSS %s, exit %d",
		outages, outage, total, pad, fileLines, total-fileLines, lost, dup, unexpected, mib(peak), code)
	if lost > 0 {
		t.Errorf("%d lines lost, e.g. %.200q", lost, missing)
	}
	// The agent did not crash: anything resent is a retried request whose
	// answer was lost when the receiver went away.
	if dup > 2000 {
		t.Errorf("%d duplicates without a crash", dup)
	}
	if unexpected > 0 {
		t.Errorf("%d unexpected lines", unexpected)
	}
	if code != 0 {
		t.Errorf("agent exit %d:\n%s", code, a.stderr.String())
	}
	const bound = 100 << 20
	if peak > bound {
		t.Errorf("agent peak RSS %s above the bound %s", mib(peak), mib(bound))
	}
}

// seqTarget serves a counter that goes up by one per scrape and remembers
// the values served.
type seqTarget struct {
	mu     sync.Mutex
	n      int
	served []int
}

func (s *seqTarget) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.n++
	n := s.n
	s.served = append(s.served, n)
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	fmt.Fprintf(w, "# TYPE faults_seq counter\nfaults_seq %d\n", n)
}

func (s *seqTarget) values() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int(nil), s.served...)
}

func serve(t testing.TB, h http.Handler) string {
	t.Helper()
	addr := peers.FreeAddr(t)
	srv := &http.Server{Addr: addr, Handler: h}
	go srv.ListenAndServe()
	t.Cleanup(func() { srv.Close() })
	waitFor(5*time.Second, func() bool {
		resp, err := http.Get("http://" + addr + "/")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	return addr
}

// promRange returns the values of an instant range-vector query, by
// instance.
func promRange(t testing.TB, promAddr, q string) map[string][]float64 {
	t.Helper()
	out := map[string][]float64{}
	for inst, pts := range promSamples(t, promAddr, q) {
		for _, p := range pts {
			out[inst] = append(out[inst], p.v)
		}
	}
	return out
}

// point is one stored sample: its timestamp (Unix seconds) and value.
type point struct{ ts, v float64 }

// promSamples returns the samples of an instant range-vector query, by
// instance, oldest first.
func promSamples(t testing.TB, promAddr, q string) map[string][]point {
	t.Helper()
	u := fmt.Sprintf("http://%s/api/v1/query?query=%s", promAddr, url.QueryEscape(q))
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Status string
		Error  string
		Data   struct {
			Result []struct {
				Metric map[string]string
				Values [][2]any
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if body.Status != "success" {
		t.Fatalf("query %q: %s", q, body.Error)
	}
	out := map[string][]point{}
	for _, r := range body.Data.Result {
		key := r.Metric["instance"]
		for _, v := range r.Values {
			ts, _ := v[0].(float64)
			s, _ := v[1].(string)
			f, _ := strconv.ParseFloat(s, 64)
			out[key] = append(out[key], point{ts, f})
		}
	}
	return out
}

func prometheus(t testing.TB) (*peers.Process, string) {
	t.Helper()
	bin := peers.Bin(t, "FERRY_PROMETHEUS_BIN", "scripts/setup/prometheus.sh")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	os.WriteFile(cfg, []byte("global:\n  scrape_interval: 1m\n"), 0o644)
	addr := peers.FreeAddr(t)
	p := peers.Start(t, bin, "http://"+addr+"/-/ready",
		"--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--web.enable-remote-write-receiver")
	return p, addr
}

// TestOutagePrometheus scrapes a real node_exporter and a counter target
// every 200ms and remote-writes into a real Prometheus, which is stopped
// and started again meanwhile: every scraped counter value must be stored.
func TestOutagePrometheus(t *testing.T) {
	prom, promAddr := prometheus(t)
	nodeBin := peers.Bin(t, "FERRY_NODE_EXPORTER_BIN", "scripts/setup/prometheus.sh")
	nodeAddr := peers.FreeAddr(t)
	peers.Start(t, nodeBin, "http://"+nodeAddr+"/metrics", "--web.listen-address="+nodeAddr)

	outages, outage := 1, 8*time.Second
	if long() {
		outages, outage = 3, 60*time.Second
	}
	seq := &seqTarget{}
	seqAddr := serve(t, seq)
	// Values served before the pipeline ran (the readiness probe) are not
	// expected.
	skip := len(seq.values())

	b := pipeline.New(pipeline.WithLogger(quietLogger(t)))
	sc := &scrape.Scraper{Interval: 200 * time.Millisecond, Timeout: 200 * time.Millisecond}
	targets := pipeline.Discover(b, "discovery.static", discovery.Addresses([]string{seqAddr, nodeAddr}, "job", "faults"))
	samples := pipeline.FromTargets(b, "prometheus.scrape", sc, targets)
	pipeline.To(b, "prometheus.remote_write", &remotewrite.Sink{
		URL: "http://" + promAddr + "/api/v1/write", BatchSendDeadline: 100 * time.Millisecond,
		MaxBackoff: time.Second, Metadata: sc.Metadata,
	}, samples)
	p, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	mem := sample(os.Getpid(), 500*time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- p.Run(ctx) }()

	// storedSince waits until a counter value served after the n-th is
	// stored: the pipeline delivers again.
	storedSince := func(n int) {
		mustWait(t, fmt.Sprintf("a counter value above %d stored", n), 60*time.Second, func() bool {
			for _, v := range promRange(t, promAddr, fmt.Sprintf(`faults_seq{instance=%q}[1h]`, seqAddr))[seqAddr] {
				if int(v) > n {
					return true
				}
			}
			return false
		})
	}
	for range outages {
		storedSince(len(seq.values()))
		prom.Stop()
		time.Sleep(outage) // the outage under test
		prom.Start()
	}
	storedSince(len(seq.values()))
	// Values served from now on may be cut off by the stop.
	served := seq.values()[skip:]
	// Stop once the last of them is stored (or give up and count it lost
	// below).
	if len(served) > 0 {
		last := float64(served[len(served)-1])
		waitFor(30*time.Second, func() bool {
			return slices.Contains(promRange(t, promAddr, fmt.Sprintf(`faults_seq{instance=%q}[1h]`, seqAddr))[seqAddr], last)
		})
	}
	cancel()
	if err := <-runErr; err != nil {
		t.Fatalf("pipeline: %v", err)
	}
	mem.finish()

	stored := map[int]int{}
	for _, v := range promRange(t, promAddr, fmt.Sprintf(`faults_seq{instance=%q}[1h]`, seqAddr))[seqAddr] {
		stored[int(v)]++
	}
	lost := 0
	var missing []int
	for _, v := range served {
		if stored[v] == 0 {
			lost++
			if len(missing) < 10 {
				missing = append(missing, v)
			}
		}
	}
	node := promRange(t, promAddr, fmt.Sprintf(`up{instance=%q}[1h]`, nodeAddr))[nodeAddr]
	st, _ := p.Component("prometheus.remote_write")
	t.Logf("prometheus outage: %d×%v, %d counter scrapes and %d node_exporter scrapes (%d samples through the sink): lost %d counter values, retries %d, drops %v, peak heap %s, peak RSS (test process, -race) %s",
		outages, outage, len(served), len(node), st.ItemsIn, lost, st.Retries, st.Dropped, mib(int64(mem.heap)), mib(mem.peakRSS))
	if lost > 0 {
		t.Errorf("%d scraped values never reached Prometheus, e.g. %v", lost, missing)
	}
	if len(node) == 0 {
		t.Errorf("no node_exporter up samples stored")
	}
	for r, n := range st.Dropped {
		t.Errorf("remote write dropped %d samples (%s)", n, r)
	}
}
