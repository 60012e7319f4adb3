package faults

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferrydev/ferry/internal/dockertest"
	"github.com/ferrydev/ferry/positions"
)

// buildAgent builds faults/internal/agent into the test's temporary
// directory (the build cache makes every build after the first quick).
func buildAgent(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "agent")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/ferrydev/ferry/faults/internal/agent").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// agentProc is one run of the agent binary.
type agentProc struct {
	cmd    *exec.Cmd
	done   chan struct{}
	stderr *lockedBuf
	stats  *sampler
}

type lockedBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func startAgent(t testing.TB, bin string, args ...string) *agentProc {
	t.Helper()
	a := &agentProc{cmd: exec.Command(bin, args...), done: make(chan struct{}), stderr: &lockedBuf{}}
	a.cmd.Stderr = a.stderr
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { a.cmd.Wait(); close(a.done) }()
	t.Cleanup(func() { a.cmd.Process.Kill(); <-a.done })
	a.stats = sample(a.cmd.Process.Pid, 250*time.Millisecond)
	return a
}

// exit waits for the agent to end and returns its exit code.
func (a *agentProc) exit(timeout time.Duration) (int, bool) {
	select {
	case <-a.done:
		a.stats.finish()
		return a.cmd.ProcessState.ExitCode(), true
	case <-time.After(timeout):
		return -1, false
	}
}

// checkPositions fails t unless the positions file is absent or valid.
func checkPositions(t testing.TB, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	var ff struct {
		Version   int               `json:"version"`
		Positions map[string]string `json:"positions"`
	}
	if err := json.Unmarshal(data, &ff); err != nil || ff.Version != 1 {
		t.Fatalf("positions file corrupt after SIGKILL (%v): %.300q", err, data)
	}
	if _, err := positions.Open(path, positions.Options{}); err != nil {
		t.Fatalf("positions.Open after SIGKILL: %v", err)
	}
}

// fileWriter appends numbered lines to dir/app.log at a steady rate and
// rotates it by rename to app.log.1 every rotate lines, recording what it
// wrote in c.
type fileWriter struct {
	dir    string
	rate   int // lines per second
	rotate int
	pad    int // bytes of padding per line
	mu     sync.Mutex
	n      int // lines written; only counted, so that a soak does not grow
}

func (w *fileWriter) line(i int) string {
	return fmt.Sprintf("file line %07d %s", i, strings.Repeat("p", w.pad))
}

func (w *fileWriter) run(ctx context.Context, total int) error {
	path := filepath.Join(w.dir, "app.log")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(f)
	tick := time.NewTicker(time.Second / 20)
	defer tick.Stop()
	per := max(1, w.rate/20)
	for i := 0; i < total; {
		select {
		case <-ctx.Done():
			total = i
			continue
		case <-tick.C:
		}
		for j := 0; j < per && i < total; j++ {
			bw.WriteString(w.line(i) + "\n")
			w.mu.Lock()
			w.n++
			w.mu.Unlock()
			i++
			if w.rotate > 0 && i%w.rotate == 0 {
				bw.Flush()
				f.Close()
				if err := os.Rename(path, path+".1"); err != nil {
					return err
				}
				if f, err = os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err != nil {
					return err
				}
				bw.Reset(f)
			}
		}
		bw.Flush()
	}
	bw.Flush()
	return f.Close()
}

// count returns the number of lines written so far.
func (w *fileWriter) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n
}

func (w *fileWriter) written() []string {
	w.mu.Lock()
	n := w.n
	w.mu.Unlock()
	lines := make([]string, n)
	for i := range lines {
		lines[i] = w.line(i)
	}
	return lines
}

// TestCrashKill9 ships Docker container logs and rotating files through the
// agent binary to VictoriaLogs, kills the agent with SIGKILL at random
// moments and restarts it on the same positions file. Nothing may be lost;
// duplicates are bounded by what was in flight at each kill; the positions
// file is valid after every kill.
func TestCrashKill9(t *testing.T) {
	vl, base := victoriaLogs(t)
	_ = vl
	c := dockertest.Client(t)
	bin := buildAgent(t)

	kills, fileLines, ctrLines := 6, 6000, 1500
	if long() {
		kills, fileLines, ctrLines = 40, 60000, 15000
	}
	dir := t.TempDir()
	logDir := filepath.Join(dir, "logs")
	os.Mkdir(logDir, 0o755)
	posPath := filepath.Join(dir, "positions.json")
	label := fmt.Sprintf("ferry.faults.crash=%d", time.Now().UnixNano())
	k, v, _ := strings.Cut(label, "=")

	specs := make([]dockertest.Spec, 2)
	for i := range specs {
		specs[i] = dockertest.Spec{
			Name:  fmt.Sprintf("ferry-faults-crash-%d-%d", os.Getpid(), i),
			Lines: ctrLines, Sleep: 4 * time.Millisecond,
			Labels: map[string]string{k: v},
		}
	}
	args := []string{"-docker.label", label, "-files", filepath.Join(logDir, "app.log"),
		"-positions", posPath, "-loki.url", base + "/insert/loki/api/v1/push"}

	a := startAgent(t, bin, args...)
	var ids []string
	for _, s := range specs {
		ids = append(ids, dockertest.Run(t, c, s))
	}
	w := &fileWriter{dir: logDir, rate: 500, rotate: 2500, pad: 60}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	werr := make(chan error, 1)
	go func() { werr <- w.run(ctx, fileLines) }()

	var peak int64
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 8))
	for i := 0; i < kills; i++ {
		// The random run time before the kill is what is under test.
		time.Sleep(time.Duration(500+rng.IntN(2500)) * time.Millisecond)
		a.cmd.Process.Signal(syscall.SIGKILL)
		a.exit(10 * time.Second)
		peak = max(peak, a.stats.peakRSS)
		checkPositions(t, posPath)
		// So is the random time the agent stays down.
		time.Sleep(time.Duration(rng.IntN(500)) * time.Millisecond)
		a = startAgent(t, bin, args...)
	}
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		dockertest.WaitExit(t, c, id)
	}

	want := newTally()
	want.expectWritten(w, specs)
	lost, dup, unexpected, missing := want.await(t, base, "*", 90*time.Second)
	a.cmd.Process.Signal(syscall.SIGTERM)
	code, ok := a.exit(30 * time.Second)
	peak = max(peak, a.stats.peakRSS)
	if !ok || code != 0 {
		t.Errorf("agent did not stop cleanly on SIGTERM (exit %d, exited %v):\n%s", code, ok, a.stderr.String())
	}
	checkPositions(t, posPath)
	total := len(want.want)
	// At least once: each kill may resend what was read but not yet
	// acknowledged and saved: at most a save interval plus a batch and an
	// answer, a few seconds of input at these rates.
	bound := kills * 3000
	t.Logf("crash: %d kills, %d lines (%d file, %d container): lost %d, duplicated %d (bound %d), unexpected %d, agent peak RSS %s",
		kills, total, fileLines, total-fileLines, lost, dup, bound, unexpected, mib(peak))
	if lost > 0 {
		t.Errorf("%d lines lost, e.g. %q", lost, missing)
	}
	if dup > bound {
		t.Errorf("%d duplicates, more than the bound %d", dup, bound)
	}
	if unexpected > 0 {
		t.Errorf("%d lines arrived that were never written", unexpected)
	}
	if strings.Contains(a.stderr.String(), "panic") {
		t.Errorf("agent panicked:\n%s", a.stderr.String())
	}
}

// TestCorruptPositions starts the agent on corrupt and truncated positions
// files: it must refuse with a clear error naming the file, or, with
// -positions.reset-corrupt, log the reset and run. It must never panic.
func TestCorruptPositions(t *testing.T) {
	bin := buildAgent(t)
	valid := `{"version":1,"positions":{"file/x":"12:34:56","docker/abc":"1700000000000000000"}}`
	cases := map[string]string{
		"garbage":   "\x00\xff\x13 not json at all",
		"truncated": valid[:len(valid)/2],
		"empty":     "",
		"version":   `{"version":9,"positions":{}}`,
		"wrongtype": `{"version":1,"positions":["a","b"]}`,
	}
	for name, content := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "positions.json")
			os.WriteFile(path, []byte(content), 0o644)
			os.Mkdir(filepath.Join(dir, "logs"), 0o755)
			args := []string{"-files", filepath.Join(dir, "logs", "*.log"), "-positions", path, "-loki.url", "http://127.0.0.1:1/push"}

			a := startAgent(t, bin, args...)
			code, ok := a.exit(20 * time.Second)
			out := a.stderr.String()
			if !ok || code != 1 || !strings.Contains(out, "positions file is corrupt") || !strings.Contains(out, path) {
				t.Errorf("corrupt positions: exit %d (exited %v), want 1 with a clear error naming the file:\n%s", code, ok, out)
			}
			if strings.Contains(out, "panic") {
				t.Errorf("panic:\n%s", out)
			}

			a = startAgent(t, bin, append(args, "-positions.reset-corrupt")...)
			if !waitFor(10*time.Second, func() bool { return strings.Contains(a.stderr.String(), "ready") }) {
				t.Fatalf("agent with -positions.reset-corrupt did not start:\n%s", a.stderr.String())
			}
			a.cmd.Process.Signal(syscall.SIGTERM)
			code, ok = a.exit(20 * time.Second)
			out = a.stderr.String()
			if !ok || code != 0 || !strings.Contains(out, "positions file was reset") || strings.Contains(out, "panic") {
				t.Errorf("reset-corrupt: exit %d (exited %v), want 0 with a logged reset:\n%s", code, ok, out)
			}
		})
	}

	// Valid JSON, nonsense values: the sources must ignore or reset them,
	// never panic.
	t.Run("values", func(t *testing.T) {
		dir := t.TempDir()
		logs := filepath.Join(dir, "logs")
		os.Mkdir(logs, 0o755)
		logPath := filepath.Join(logs, "a.log")
		os.WriteFile(logPath, []byte("one\ntwo\n"), 0o644)
		path := filepath.Join(dir, "positions.json")
		pos := map[string]any{"version": 1, "positions": map[string]string{
			"file/" + logPath: "-5:x:\xff", "docker/abc": "yesterday", "other": "",
		}}
		data, _ := json.Marshal(pos)
		os.WriteFile(path, data, 0o644)
		a := startAgent(t, bin, "-files", filepath.Join(logs, "*.log"), "-positions", path, "-loki.url", "http://127.0.0.1:1/push")
		// Stop once the file was read despite the nonsense (the sink has
		// entries to push, to a port that refuses them).
		if !waitFor(20*time.Second, func() bool { return strings.Contains(a.stderr.String(), "push failed; retrying") }) {
			t.Errorf("agent on nonsense position values did not read the file:\n%s", a.stderr.String())
		}
		a.cmd.Process.Signal(syscall.SIGTERM)
		code, ok := a.exit(20 * time.Second)
		if out := a.stderr.String(); !ok || strings.Contains(out, "panic") {
			t.Errorf("agent on nonsense position values: exit %d (exited %v):\n%s", code, ok, out)
		}
	})
}
