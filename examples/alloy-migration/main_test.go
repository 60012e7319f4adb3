package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrydev/ferry/internal/dockertest"
	"github.com/ferrydev/ferry/internal/peers"
)

func TestMain(m *testing.M) { dockertest.Main(m) }

// TestEndToEnd builds the program, runs it as its own process against 20
// real containers, VictoriaLogs (Loki push API) and Prometheus (scraped, and
// receiving remote write), all on 127.0.0.1, and checks that the containers'
// lines arrive with container and service labels (also those of a container
// that exited before the program started) and that up, the program's
// own metrics and Prometheus's metrics arrive through remote write. It logs
// the program's resident memory with the 20 containers.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test with real peers; skipped in -short mode")
	}
	c := dockertest.Client(t)
	vl := peers.StartVictoriaLogs(t)
	prom := peers.StartPrometheus(t, "")

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
	// And one that logged and exited before the program started.
	exited := "ferry-migration-" + run + "-exited"
	dockertest.WaitExit(t, c, dockertest.Run(t, c, dockertest.Spec{
		Name: exited, Lines: 3,
		Labels: map[string]string{"com.docker.compose.service": "batch", "ferry.migration.run": run},
	}))

	dir := t.TempDir()
	bin := filepath.Join(dir, "alloy-migration")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	httpAddr := peers.FreeAddr(t)
	cmd := exec.Command(bin,
		"-docker.filter", "label=ferry.migration.run="+run,
		"-loki.url", vl.PushURL(),
		"-prometheus.addr", prom.Addr,
		"-remote-write.url", prom.WriteURL(),
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
	stopped := make(chan error, 1)
	go func() { stopped <- cmd.Wait() }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cmd.Process.Signal(os.Interrupt)
			select {
			case err := <-stopped:
				if err != nil {
					t.Errorf("program: %v", err)
				}
			case <-time.After(30 * time.Second):
				cmd.Process.Kill()
				<-stopped
				t.Error("program did not stop within 30s of SIGINT")
			}
			if t.Failed() {
				out, _ := os.ReadFile(logf.Name())
				t.Logf("program output:\n%s", out)
			}
		})
	}
	t.Cleanup(stop)

	// Logs: every container's lines, labelled container and service.
	waitFor(t, "lines of all containers in VictoriaLogs", func() (bool, string) {
		seen, counts := map[string]bool{}, map[string]string{}
		for _, row := range vl.Query(t, `_time:1h | stats by (container, service) count() n`) {
			if svc, ok := names[row["container"]]; ok && row["service"] == svc {
				seen[row["container"]] = true
			}
			if row["container"] == exited && row["service"] == "batch" {
				counts[exited] = row["n"]
			}
		}
		return len(seen) == n && counts[exited] == "3", fmt.Sprintf("%d of %d running containers with correct labels, %q lines of the exited one", len(seen), n, counts[exited])
	})

	// Metrics through remote write: up of both scrapes, the program's own
	// metrics, Prometheus's metrics.
	for _, q := range []string{
		`up{job="prometheus.scrape.prometheus"} == 1`,
		`up{job="prometheus.scrape.alloy"} == 1`,
		`ferry_component_items_out_total{job="prometheus.scrape.alloy",component="loki.source.docker.containers"} > 0`,
		`ferry_component_health{job="prometheus.scrape.alloy",component="loki.write.default",state="healthy"} == 1`,
		`go_memstats_heap_inuse_bytes{job="prometheus.scrape.alloy"}`,
		`prometheus_build_info{job="prometheus.scrape.prometheus",instance="` + prom.Addr + `"}`,
		`prometheus_remote_storage_samples_in_total{job="prometheus.scrape.prometheus"} > 0`,
	} {
		waitFor(t, q, func() (bool, string) {
			r := prom.Query(t, q, time.Now())
			return len(r) > 0, fmt.Sprintf("%d series", len(r))
		})
	}

	// Resident memory with the 20 containers: sampled every second for
	// 10s while they keep logging and the scrapes go on (the sampling
	// period is the measurement, not a wait for something).
	var rss, hwm int
	for range 10 {
		time.Sleep(time.Second)
		r, h := memory(t, cmd.Process.Pid)
		rss, hwm = max(rss, r), h
	}
	t.Logf("program with %d containers: VmRSS up to %d kB, VmHWM %d kB (Promtail ~40 MB, Alloy ~120 MB in the migration report)", n, rss, hwm)
	if rss > 40<<10 {
		t.Errorf("VmRSS %d kB: not under Promtail's 40 MB", rss)
	}

	// The debug page, as Alloy's UI on :12345.
	for path, want := range map[string]string{
		"/":        "loki.source.docker.containers",
		"/-/ready": "",
		"/metrics": `ferry_component_items_out_total{component="prometheus.scrape.prometheus"`,
	} {
		resp, err := http.Get("http://" + httpAddr + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Errorf("GET %s: %d, want 200 and %q in:\n%.1000s", path, resp.StatusCode, want, body)
		}
	}

	// A clean stop saves a position for every container.
	stop()
	var pos map[string]any
	if b, err := os.ReadFile(filepath.Join(dir, "data", "positions.json")); err != nil {
		t.Error(err)
	} else if err := json.Unmarshal(b, &pos); err != nil {
		t.Errorf("positions.json: %v\n%s", err, b)
	}
	keys := 0
	for k := range flatten(pos) {
		if strings.HasPrefix(k, "docker/") {
			keys++
		}
	}
	if keys != n+1 {
		t.Errorf("positions of %d containers saved, want %d: %v", keys, n+1, pos)
	}
}

// flatten returns the keys of a positions file, whatever object nests them.
func flatten(m map[string]any) map[string]bool {
	keys := map[string]bool{}
	for k, v := range m {
		keys[k] = true
		if sub, ok := v.(map[string]any); ok {
			for k := range flatten(sub) {
				keys[k] = true
			}
		}
	}
	return keys
}

// memory returns VmRSS and VmHWM of a process, in kB.
func memory(t *testing.T, pid int) (rss, hwm int) {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(status), "\n") {
		f := strings.Fields(l)
		if len(f) == 3 && f[0] == "VmRSS:" {
			rss, _ = strconv.Atoi(f[1])
		}
		if len(f) == 3 && f[0] == "VmHWM:" {
			hwm, _ = strconv.Atoi(f[1])
		}
	}
	return rss, hwm
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
