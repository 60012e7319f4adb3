package main

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferrydev/ferry/internal/dockertest"
	"github.com/ferrydev/ferry/internal/peers"
)

func TestMain(m *testing.M) { dockertest.Main(m) }

// Footprint goals of the example agent (README, "Footprint"): in MB of
// 10^6 bytes, as ls and ps show them. FERRY_FOOTPRINT_MAX_BINARY_MB and
// FERRY_FOOTPRINT_MAX_RSS_MB override them.
const (
	goalBinaryMB = 20
	goalRSSMB    = 20
)

func footprintLimit(t *testing.T, env string, def float64) float64 {
	t.Helper()
	v := os.Getenv(env)
	if v == "" {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		t.Fatalf("%s=%q: %v", env, v, err)
	}
	return f
}

// footprintOnly skips unless FERRY_FOOTPRINT=1: the footprint tests
// measure, and must run with nothing else alongside (go test -run
// Footprint -p 1 ./examples/agent).
func footprintOnly(t *testing.T) {
	t.Helper()
	if os.Getenv("FERRY_FOOTPRINT") != "1" {
		t.Skip("footprint measurement; set FERRY_FOOTPRINT=1 and run it alone")
	}
}

// buildAgent builds the agent as README.md says to deploy it, with
// CGO_ENABLED=0 go build and nothing else (cgo, when FERRY_FOOTPRINT_CGO=1,
// for the figure of a default build on a machine with a C compiler), and
// returns the binary's path.
func buildAgent(t *testing.T, flags ...string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "agent")
	args := append(append([]string{"build", "-o", bin}, flags...), ".")
	cmd := exec.Command("go", args...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if os.Getenv("FERRY_FOOTPRINT_CGO") == "1" {
		cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestFootprintBinary reports the size of the agent's binary built with
// `CGO_ENABLED=0 go build` and with `-ldflags=-s -w` added (no symbol table and no
// DWARF: stack traces keep their function names and lines), and holds the
// first to the goal.
func TestFootprintBinary(t *testing.T) {
	footprintOnly(t)
	size := func(bin string) float64 {
		fi, err := os.Stat(bin)
		if err != nil {
			t.Fatal(err)
		}
		return float64(fi.Size()) / 1e6
	}
	plain := size(buildAgent(t))
	stripped := size(buildAgent(t, "-ldflags=-s -w"))
	t.Logf("agent binary: %.1f MB with go build, %.1f MB with -ldflags='-s -w'", plain, stripped)
	if max := footprintLimit(t, "FERRY_FOOTPRINT_MAX_BINARY_MB", goalBinaryMB); plain > max {
		t.Errorf("binary %.1f MB, goal %.0f MB", plain, max)
	}
}

// TestFootprintRSS runs the agent as its own process following 20 real
// containers that log 10 lines a second each, with its defaults otherwise
// (debug page and /metrics served, self-scrape), its console output to a
// file, and samples its resident memory for 20 seconds once it follows all
// of them.
func TestFootprintRSS(t *testing.T) {
	footprintOnly(t)
	c := dockertest.Client(t)
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	const n = 20
	var names []string
	for i := range n {
		name := fmt.Sprintf("ferry-footprint-%s-%d", run, i)
		names = append(names, name)
		dockertest.Run(t, c, dockertest.Spec{
			Name: name, Lines: 10, Loop: true, Sleep: 100 * time.Millisecond,
			Labels: map[string]string{"ferry.footprint.run": run},
		})
	}

	bin := buildAgent(t)
	dir := t.TempDir()
	outPath := filepath.Join(dir, "out.log")
	outf, err := os.Create(outPath)
	if err != nil {
		t.Fatal(err)
	}
	defer outf.Close()
	errf, err := os.Create(filepath.Join(dir, "err.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer errf.Close()
	debugAddr := peers.FreeAddr(t)
	cmd := exec.Command(bin, "-docker", "-docker.label", "ferry.footprint.run="+run,
		"-positions", filepath.Join(dir, "positions.json"), "-debug.addr", debugAddr)
	cmd.Stdout, cmd.Stderr = outf, errf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("agent: %v", err)
			}
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-exited
			t.Error("agent did not stop within 30s of SIGINT")
		}
		if t.Failed() {
			logs, _ := os.ReadFile(errf.Name())
			t.Logf("agent logs:\n%s", logs)
		}
	}()

	// Following all of them: a line of each on the console.
	deadline := time.Now().Add(60 * time.Second)
	for {
		seen := followed(t, outPath, names)
		if seen == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agent follows %d of %d containers after a minute", seen, n)
		}
		select {
		case err := <-exited:
			t.Fatalf("agent exited: %v", err)
		case <-time.After(200 * time.Millisecond):
		}
	}

	// Sampling memory every 500ms for 20s is the measurement.
	var peak, sum, samples int
	for range 40 {
		time.Sleep(500 * time.Millisecond)
		rss, _ := procMemory(t, cmd.Process.Pid)
		peak = max(peak, rss)
		sum += rss
		samples++
	}
	_, hwm := procMemory(t, cmd.Process.Pid)
	st := procStatus(t, cmd.Process.Pid)
	lines := countLines(t, outPath)
	mb := func(kb int) float64 { return float64(kb) * 1024 / 1e6 }
	t.Logf("agent following %d containers (%d lines on the console): RSS mean %.1f MB, peak %.1f MB over 20s; VmHWM %.1f MB; at the end RssAnon %.1f MB, RssFile %.1f MB; CPU %.2f s since start",
		n, lines, mb(sum/samples), mb(peak), mb(hwm), mb(st["RssAnon:"]), mb(st["RssFile:"]), procCPU(t, cmd.Process.Pid))
	resp, err := http.Get("http://" + debugAddr + "/metrics")
	if err == nil {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			for _, m := range []string{"go_memstats_heap_inuse_bytes ", "go_memstats_stack_inuse_bytes ", "go_memstats_sys_bytes ", "go_goroutines ", "go_memstats_heap_released_bytes ", "go_memstats_next_gc_bytes "} {
				if strings.HasPrefix(sc.Text(), m) {
					t.Log("  ", sc.Text())
				}
			}
		}
		resp.Body.Close()
	}
	if max := footprintLimit(t, "FERRY_FOOTPRINT_MAX_RSS_MB", goalRSSMB); mb(peak) > max {
		t.Errorf("peak RSS %.1f MB, goal %.0f MB", mb(peak), max)
	}
}

// followed counts the containers of names with at least one line in the
// console output at path.
func followed(t *testing.T, path string, names []string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := string(b)
	seen := 0
	for _, name := range names {
		if strings.Contains(out, `container="`+name+`"`) {
			seen++
		}
	}
	return seen
}

func countLines(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		n++
	}
	return n
}

// procStatus returns the kB fields of /proc/PID/status, by name with its
// colon.
func procStatus(t *testing.T, pid int) map[string]int {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]int{}
	for l := range strings.Lines(string(status)) {
		if f := strings.Fields(l); len(f) == 3 && f[2] == "kB" {
			m[f[0]], _ = strconv.Atoi(f[1])
		}
	}
	return m
}

// procMemory returns VmRSS and VmHWM of a process, in kB.
func procMemory(t *testing.T, pid int) (rss, hwm int) {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for l := range strings.Lines(string(status)) {
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

// procCPU returns the user and system CPU time of a process, in seconds
// (fields 14 and 15 of /proc/PID/stat, in clock ticks of 1/100 s on Linux).
func procCPU(t *testing.T, pid int) float64 {
	t.Helper()
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// The command name, in parentheses, may hold spaces: count from after it.
	_, rest, _ := strings.Cut(string(stat), ") ")
	f := strings.Fields(rest)
	if len(f) < 13 {
		t.Fatalf("short /proc/%d/stat: %q", pid, stat)
	}
	utime, _ := strconv.Atoi(f[11])
	stime, _ := strconv.Atoi(f[12])
	return float64(utime+stime) / 100
}
