package faults

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrydev/ferry/internal/peers"

	"github.com/ferrydev/ferry/internal/dockertest"
)

func TestMain(m *testing.M) { dockertest.Main(m) }

// long reports whether the long variants run (build tag faults_long or
// FERRY_FAULTS_LONG=1).
func long() bool { return longTag || os.Getenv("FERRY_FAULTS_LONG") == "1" }

// victoriaLogs starts VictoriaLogs on a free 127.0.0.1 port and returns
// it with its base URL.
func victoriaLogs(t testing.TB) (*peers.Process, string) {
	t.Helper()
	v := peers.StartVictoriaLogs(t)
	return v.Process, v.URL
}

// logRow is one stored log line: its stream key and message.
type logRow struct{ key, msg string }

// queryLogs returns the rows matching a LogsQL filter, keyed by the label
// named keyField.
func queryLogs(t testing.TB, base, filter, keyField string) []logRow {
	t.Helper()
	if resp, err := http.Get(base + "/internal/force_flush"); err == nil {
		resp.Body.Close()
	}
	resp, err := http.PostForm(base+"/select/logsql/query", url.Values{"query": {filter + " | fields _msg, " + keyField}, "limit": {"10000000"}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("query %q: status %d", filter, resp.StatusCode)
	}
	var rows []logRow
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 32<<20)
	for sc.Scan() {
		var row map[string]string
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			t.Fatalf("query row %.200q: %v", sc.Text(), err)
		}
		rows = append(rows, logRow{row[keyField], row["_msg"]})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return rows
}

// countLogs returns how many stored lines the LogsQL filter selects.
func countLogs(t testing.TB, base, filter string) int {
	t.Helper()
	if resp, err := http.Get(base + "/internal/force_flush"); err == nil {
		resp.Body.Close()
	}
	resp, err := http.PostForm(base+"/select/logsql/query", url.Values{"query": {filter + " | stats count() as n"}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var row struct{ N string }
	if err := json.NewDecoder(resp.Body).Decode(&row); err != nil && err != io.EOF {
		t.Fatalf("count %q: %v", filter, err)
	}
	n, _ := strconv.Atoi(row.N)
	return n
}

// tally counts how often each expected line arrived.
type tally struct {
	want map[logRow]int
}

func newTally() *tally { return &tally{want: map[logRow]int{}} }

func (c *tally) expect(key, msg string) { c.want[logRow{key, msg}] += 0 }

// expectWritten expects every line w wrote (key "") and every line of the
// first run of each container of specs (key: its name).
func (c *tally) expectWritten(w *fileWriter, specs []dockertest.Spec) {
	for _, l := range w.written() {
		c.expect("", l)
	}
	for _, s := range specs {
		for i := range s.Lines {
			c.expect(s.Name, dockertest.Line(s, 1, i))
		}
	}
}

// await waits up to d for the VictoriaLogs at base to hold every expected
// line among those filter selects, and returns the result at the end of
// the wait.
func (c *tally) await(t testing.TB, base, filter string, d time.Duration) (lost, dup, unexpected int, missing []logRow) {
	waitFor(d, func() bool {
		lost, dup, unexpected, missing = c.result(queryLogs(t, base, filter, "container"))
		return lost == 0
	})
	return lost, dup, unexpected, missing
}

// awaitSettled is await for a run that may have lost lines for good: it
// stops waiting once every line arrived or the count of lost lines stayed
// the same for quiet (nothing more is coming), or after d.
func (c *tally) awaitSettled(t testing.TB, base, filter string, quiet, d time.Duration) (lost, dup, unexpected int, missing []logRow) {
	last, since := -1, time.Now()
	waitFor(d, func() bool {
		lost, dup, unexpected, missing = c.result(queryLogs(t, base, filter, "container"))
		if lost != last {
			last, since = lost, time.Now()
		}
		return lost == 0 || time.Since(since) >= quiet
	})
	return lost, dup, unexpected, missing
}

// result counts lines lost (expected, never arrived), duplicated (extra
// copies) and unexpected (arrived, never written).
func (c *tally) result(rows []logRow) (lost, dup, unexpected int, missing []logRow) {
	got := map[logRow]int{}
	for _, r := range rows {
		got[r]++
	}
	for k := range c.want {
		n := got[k]
		if n == 0 {
			lost++
			if len(missing) < 10 {
				missing = append(missing, k)
			}
		} else {
			dup += n - 1
		}
	}
	for k, n := range got {
		if _, ok := c.want[k]; !ok {
			unexpected += n
		}
	}
	return
}

// procStats are the resources of a process.
type procStats struct {
	RSS        int64 // bytes
	FDs        int
	Goroutines int // only for this process
}

func statsOf(pid int) procStats {
	var s procStats
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
				s.RSS = kb << 10
			}
		}
	}
	if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
		s.FDs = len(ents)
	}
	if pid == os.Getpid() {
		s.Goroutines = runtime.NumGoroutine()
	}
	return s
}

// sampler records the resources of a process every interval.
type sampler struct {
	mu      sync.Mutex
	samples []procStats
	peakRSS int64
	heap    uint64 // peak HeapInuse when sampling this process
	stop    chan struct{}
	done    chan struct{}
}

func sample(pid int, every time.Duration) *sampler {
	s := &sampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			st := statsOf(pid)
			var ms runtime.MemStats
			if pid == os.Getpid() {
				runtime.ReadMemStats(&ms)
			}
			s.mu.Lock()
			s.samples = append(s.samples, st)
			s.peakRSS = max(s.peakRSS, st.RSS)
			s.heap = max(s.heap, ms.HeapInuse)
			s.mu.Unlock()
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *sampler) finish() []procStats {
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.samples
}

// quietLogger logs warnings and errors through t.Log only with -v.
func quietLogger(t testing.TB) *slog.Logger {
	if !testing.Verbose() {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// waitFor polls cond until it is true or the timeout passes.
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// mustWait is waitFor that fails t, naming what it waited for, when the
// timeout passes.
func mustWait(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	if !waitFor(timeout, cond) {
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
}

// settle waits for the goroutine count to drop to at most n + slack and
// returns it.
func settle(n, slack int, timeout time.Duration) int {
	var g int
	waitFor(timeout, func() bool { g = runtime.NumGoroutine(); return g <= n+slack })
	return g
}
