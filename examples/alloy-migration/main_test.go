package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferrydev/ferry/internal/dockertest"
)

func TestMain(m *testing.M) { dockertest.Main(m) }

// TestEndToEnd builds the program, runs it as its own process against 20
// real containers, VictoriaLogs (Loki push API) and Prometheus (scraped, and
// receiving remote write), all on 127.0.0.1, and checks that the containers'
// lines arrive with container and service labels and that up, the program's
// own metrics and Prometheus's metrics arrive through remote write. It logs
// the program's resident memory with the 20 containers.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test with real peers; skipped in -short mode")
	}
	vlBin := peer(t, "FERRY_VICTORIALOGS_BIN", "scripts/setup/victorialogs.sh")
	promBin := peer(t, "FERRY_PROMETHEUS_BIN", "scripts/setup/prometheus.sh")
	c := dockertest.Client(t)

	dir := t.TempDir()
	vlAddr := freeAddr(t)
	startPeer(t, vlBin, "http://"+vlAddr+"/health",
		"-httpListenAddr="+vlAddr, "-storageDataPath="+filepath.Join(dir, "vl"), "-retentionPeriod=100y", "-loggerLevel=WARN")
	promAddr := freeAddr(t)
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte("global:\n  scrape_interval: 1m\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	startPeer(t, promBin, "http://"+promAddr+"/-/ready", "--config.file="+cfg,
		"--storage.tsdb.path="+filepath.Join(dir, "prom"), "--web.listen-address="+promAddr, "--web.enable-remote-write-receiver")

	// The containers: compose-style service labels, and a label of this
	// run only, so that the program ignores other containers of the host.
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	const n = 20
	names := map[string]string{} // container name -> service
	for i := range n {
		name := fmt.Sprintf("ferry-migration-%s-%d", run, i)
		svc := []string{"web", "worker"}[i%2]
		names[name] = svc
		dockertest.Run(t, c, dockertest.Spec{
			Name: name, Lines: 10, Loop: true, Sleep: 100 * time.Millisecond,
			Labels: map[string]string{"com.docker.compose.service": svc, "ferry.migration.run": run},
		})
	}

	bin := filepath.Join(dir, "alloy-migration")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	httpAddr := freeAddr(t)
	cmd := exec.Command(bin,
		"-docker.filter", "label=ferry.migration.run="+run,
		"-loki.url", "http://"+vlAddr+"/insert/loki/api/v1/push",
		"-prometheus.addr", promAddr,
		"-remote-write.url", "http://"+promAddr+"/api/v1/write",
		"-scrape.interval", "1s",
		"-server.http.listen-addr", httpAddr,
		"-storage.path", filepath.Join(dir, "data"),
	)
	logf, err := os.Create(filepath.Join(dir, "program.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("program: %v", err)
			}
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-exited
			t.Error("program did not stop within 30s of SIGINT")
		}
		if t.Failed() {
			out, _ := os.ReadFile(logf.Name())
			t.Logf("program output:\n%s", out)
		}
	})

	// Logs: every container's lines, labelled container and service.
	waitFor(t, "lines of all containers in VictoriaLogs", func() (bool, string) {
		seen := map[string]bool{}
		for _, row := range queryLogs(t, "http://"+vlAddr, `_time:1h | stats by (container, service) count() n`) {
			if svc, ok := names[row["container"]]; ok && row["service"] == svc {
				seen[row["container"]] = true
			}
		}
		return len(seen) == n, fmt.Sprintf("%d of %d containers with correct labels", len(seen), n)
	})

	// Metrics through remote write: up of both scrapes, the program's own
	// metrics, Prometheus's metrics.
	for _, q := range []string{
		`up{job="prometheus.scrape.prometheus"} == 1`,
		`up{job="prometheus.scrape.alloy"} == 1`,
		`ferry_component_items_out_total{job="prometheus.scrape.alloy",component="loki.source.docker.containers"} > 0`,
		`ferry_component_health{job="prometheus.scrape.alloy",component="loki.write.default",state="healthy"} == 1`,
		`go_memstats_heap_inuse_bytes{job="prometheus.scrape.alloy"}`,
		`prometheus_build_info{job="prometheus.scrape.prometheus",instance="` + promAddr + `"}`,
		`prometheus_remote_storage_samples_in_total{job="prometheus.scrape.prometheus"} > 0`,
	} {
		waitFor(t, q, func() (bool, string) {
			r := promQuery(t, promAddr, q)
			return r > 0, fmt.Sprintf("%d series", r)
		})
	}

	// Resident memory with the 20 containers, after it settled a while.
	time.Sleep(10 * time.Second)
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	var mem []string
	for _, l := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(l, "VmRSS:") || strings.HasPrefix(l, "VmHWM:") {
			mem = append(mem, strings.Join(strings.Fields(l), " "))
		}
	}
	t.Logf("program with %d containers: %s (Promtail ~40 MB, Alloy ~120 MB in the migration report)", n, strings.Join(mem, ", "))
}

func peer(t *testing.T, env, script string) string {
	t.Helper()
	p := os.Getenv(env)
	if _, err := os.Stat(p); p == "" || err != nil {
		msg := fmt.Sprintf("%s not set or missing: run %s (or scripts/test.sh)", env, script)
		if os.Getenv("FERRY_REQUIRE_PEERS") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return p
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startPeer runs bin with args until the test ends and waits until ready
// answers 200.
func startPeer(t *testing.T, bin, ready string, args ...string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	logf, err := os.Create(filepath.Join(t.TempDir(), filepath.Base(bin)+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		logf.Close()
	})
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			out, _ := os.ReadFile(logf.Name())
			t.Fatalf("%s exited early:\n%s", bin, out)
		default:
		}
		if resp, err := http.Get(ready); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s not ready at %s", bin, ready)
}

// waitFor polls cond for up to a minute.
func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still %s after a minute", what, state)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// queryLogs runs a LogsQL query against VictoriaLogs and returns the rows.
func queryLogs(t *testing.T, base, q string) []map[string]string {
	t.Helper()
	if resp, err := http.Get(base + "/internal/force_flush"); err == nil {
		resp.Body.Close()
	}
	resp, err := http.PostForm(base+"/select/logsql/query", url.Values{"query": {q}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("query %q: status %d", q, resp.StatusCode)
	}
	var rows []map[string]string
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var row map[string]string
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			t.Fatalf("query row %q: %v", sc.Text(), err)
		}
		rows = append(rows, row)
	}
	return rows
}

// promQuery runs an instant query against Prometheus and returns the number
// of series in the result.
func promQuery(t *testing.T, addr, q string) int {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Status, Error string
		Data          struct{ Result []json.RawMessage }
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if body.Status != "success" {
		t.Fatalf("query %q: %s", q, body.Error)
	}
	return len(body.Data.Result)
}
