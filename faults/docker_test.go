package faults

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/discovery/docker"
	"github.com/ferrydev/ferry/internal/dockertest"
	"github.com/ferrydev/ferry/pipeline"
	"github.com/ferrydev/ferry/relabel"
	"github.com/ferrydev/ferry/sink/sinktest"
	"github.com/ferrydev/ferry/source/dockerlogs"
)

// dockerRun is an in-process pipeline from the containers carrying a label
// to a fake sink.
type dockerRun struct {
	label  string
	sink   *sinktest.Sink[ferry.Entry]
	p      *pipeline.Pipeline
	cancel context.CancelFunc
	done   chan error
}

func startDockerPipeline(t testing.TB, host string) *dockerRun {
	t.Helper()
	r := &dockerRun{label: fmt.Sprintf("ferry.faults.docker=%d", time.Now().UnixNano()), sink: &sinktest.Sink[ferry.Entry]{}, done: make(chan error, 1)}
	b := pipeline.New(pipeline.WithLogger(quietLogger(t)), pipeline.WithBackoff(100*time.Millisecond, time.Second))
	d := pipeline.Discover(b, "discovery.docker", &docker.Discoverer{
		Host: host, RefreshInterval: time.Second, IncludeStopped: true,
		Filters: []docker.Filter{{Name: "label", Values: []string{r.label}}},
	})
	tg := pipeline.RelabelTargets(b, "discovery.relabel", []relabel.Rule{
		relabel.Replace([]string{docker.LabelContainerName}, "/(.*)", "container", "$1"),
	}, d)
	logs := pipeline.FromTargets(b, "loki.source.docker", &dockerlogs.Source{Host: host, RefreshInterval: time.Second}, tg)
	pipeline.To(b, "sink", r.sink, logs)
	p, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	r.p = p
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- p.Run(ctx) }()
	return r
}

func (r *dockerRun) stop(t testing.TB) {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("pipeline: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("pipeline did not stop")
	}
}

func (r *dockerRun) labels() map[string]string {
	k, v, _ := strings.Cut(r.label, "=")
	return map[string]string{k: v}
}

// engineLines returns what the engine logged for a container, as
// name\x00line keys: the ground truth of what must arrive.
func engineLines(t testing.TB, c *client.Client, id string) []string {
	t.Helper()
	info, err := c.ContainerInspect(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := c.ContainerLogs(context.Background(), id, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var buf bytes.Buffer
	if _, err := stdcopy.StdCopy(&buf, &buf, rc); err != nil {
		t.Fatal(err)
	}
	name := strings.TrimPrefix(info.Name, "/")
	var out []string
	for _, l := range strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n") {
		if l != "" {
			out = append(out, name+"\x00"+l)
		}
	}
	return out
}

// compare counts lines the engine has that the sink lacks (lost) and extra
// copies (duplicated).
func compare(want []string, got []ferry.Entry) (lost, dup int, missing []string) {
	n := map[string]int{}
	for _, e := range got {
		n[e.Labels.Get("container")+"\x00"+e.Line]++
	}
	w := map[string]int{}
	for _, k := range want {
		w[k]++
	}
	for k, c := range w {
		switch g := n[k]; {
		case g < c:
			lost += c - g
			if len(missing) < 5 {
				missing = append(missing, strings.ReplaceAll(k, "\x00", ": "))
			}
		case g > c:
			dup += g - c
		}
	}
	return
}

// await waits up to d for every line of want to reach r's sink and returns
// the comparison (see compare) at the end of the wait.
func (r *dockerRun) await(want []string, d time.Duration) (lost, dup int, missing []string) {
	waitFor(d, func() bool {
		lost, dup, missing = compare(want, r.sink.Items())
		return lost == 0
	})
	return lost, dup, missing
}

func fds() int { return statsOf(os.Getpid()).FDs }

// checkLeaks fails t when goroutines or FDs stay above the baseline after
// everything stopped.
func checkLeaks(t testing.TB, c *client.Client, g0, fd0 int) (g1, fd1 int) {
	t.Helper()
	// The test's own client keeps idle connections (two goroutines and an
	// FD each); they are not the pipeline's.
	c.HTTPClient().CloseIdleConnections()
	http.DefaultClient.CloseIdleConnections()
	g1 = settle(g0, 5, 20*time.Second)
	waitFor(10*time.Second, func() bool { fd1 = fds(); return fd1 <= fd0+3 })
	if g1 > g0+5 {
		buf := make([]byte, 1<<20)
		t.Errorf("goroutines: %d before, %d after\n%s", g0, g1, buf[:runtime.Stack(buf, true)])
	}
	if fd1 > fd0+3 {
		t.Errorf("file descriptors: %d before, %d after", fd0, fd1)
	}
	return
}

// TestDockerConnectionLoss cuts the pipeline off the engine (through
// dockertest.Proxy, as a daemon restart does) while containers log, and
// while a new one starts and a running one restarts; after the connection
// returns, everything the engine logged must arrive.
func TestDockerConnectionLoss(t *testing.T) {
	c := dockertest.Client(t)
	dockertest.Image(t, c)
	cuts, cut := 2, 4*time.Second
	if long() {
		cuts, cut = 6, 20*time.Second
	}
	g0, fd0 := runtime.NumGoroutine(), fds()
	proxy := dockertest.NewProxy(t)
	r := startDockerPipeline(t, proxy.Host())

	spec := func(i int) dockertest.Spec {
		return dockertest.Spec{Name: fmt.Sprintf("ferry-faults-cut-%d-%d", os.Getpid(), i), Lines: 2000, Sleep: 3 * time.Millisecond, Stderr: true, Labels: r.labels()}
	}
	var ids []string
	for i := range 2 {
		ids = append(ids, dockertest.Run(t, c, spec(i)))
	}
	read := 0 // lines in the sink before the last restore
	for i := range cuts {
		// Between cuts the pipeline is connected and reads again.
		mustWait(t, "lines read after the connection came back", 60*time.Second, func() bool { return r.sink.Len() > read })
		proxy.Break()
		// While cut off: a container starts, another restarts.
		ids = append(ids, dockertest.Run(t, c, spec(10+i)))
		c.ContainerRestart(context.Background(), ids[0], container.StopOptions{Timeout: new(int)})
		time.Sleep(cut) // the cut under test
		read = r.sink.Len()
		if err := proxy.Restore(); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range ids {
		dockertest.WaitExit(t, c, id)
	}
	var want []string
	for _, id := range ids {
		want = append(want, engineLines(t, c, id)...)
	}
	lost, dup, missing := r.await(want, 60*time.Second)
	r.stop(t)
	for _, id := range ids {
		dockertest.Remove(c, id)
	}
	proxy.Break()
	g1, fd1 := checkLeaks(t, c, g0, fd0)
	t.Logf("docker connection loss: %d cuts of %v, %d containers, %d lines: lost %d, duplicated %d; goroutines %d→%d, FDs %d→%d",
		cuts, cut, len(ids), len(want), lost, dup, g0, g1, fd0, fd1)
	if lost > 0 {
		t.Errorf("%d lines lost, e.g. %q", lost, missing)
	}
	if dup > 0 {
		t.Errorf("%d duplicates without a crash", dup)
	}
}

// TestContainerRestartStorm restarts containers over and over, killing
// some mid-output and restarting others after they exited: every line of
// every run must arrive, once.
func TestContainerRestartStorm(t *testing.T) {
	c := dockertest.Client(t)
	dockertest.Image(t, c)
	restarts := 15
	if long() {
		restarts = 200
	}
	g0, fd0 := runtime.NumGoroutine(), fds()
	r := startDockerPipeline(t, "")
	var ids []string
	for i := range 3 {
		ids = append(ids, dockertest.Run(t, c, dockertest.Spec{
			Name:  fmt.Sprintf("ferry-faults-storm-%d-%d", os.Getpid(), i),
			Lines: 200, Sleep: time.Duration(i) * time.Millisecond, Labels: r.labels(),
		}))
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range restarts {
				switch i {
				case 0: // wait for the end, start again
					okc, errc := c.ContainerWait(ctx, id, container.WaitConditionNotRunning)
					select {
					case <-okc:
					case <-errc:
					}
					c.ContainerStart(ctx, id, container.StartOptions{})
				default: // kill mid-output
					// The kill's timing within the output is under test.
					time.Sleep(time.Duration(50+i*40) * time.Millisecond)
					c.ContainerRestart(ctx, id, container.StopOptions{Timeout: new(int)})
				}
			}
		}()
	}
	wg.Wait()
	var want []string
	for _, id := range ids {
		dockertest.WaitExit(t, c, id)
		want = append(want, engineLines(t, c, id)...)
	}
	lost, dup, missing := r.await(want, 60*time.Second)
	r.stop(t)
	for _, id := range ids {
		dockertest.Remove(c, id)
	}
	g1, fd1 := checkLeaks(t, c, g0, fd0)
	t.Logf("restart storm: 3 containers × %d restarts, %d lines: lost %d, duplicated %d; goroutines %d→%d, FDs %d→%d",
		restarts, len(want), lost, dup, g0, g1, fd0, fd1)
	if lost > 0 {
		t.Errorf("%d lines lost, e.g. %q", lost, missing)
	}
	if dup > 0 {
		t.Errorf("%d duplicates", dup)
	}
}

// TestShortLivedContainers starts many containers that log a little and
// exit at once, then removes them: everything they logged must arrive, and
// the readers of removed containers must go away.
func TestShortLivedContainers(t *testing.T) {
	c := dockertest.Client(t)
	dockertest.Image(t, c)
	n := 50
	if long() {
		n = 1000
	}
	g0, fd0 := runtime.NumGoroutine(), fds()
	r := startDockerPipeline(t, "")
	mem := sample(os.Getpid(), time.Second)
	ids := make([]string, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			id, err := dockertest.Start(context.Background(), c, dockertest.Spec{
				Name:  fmt.Sprintf("ferry-faults-short-%d-%d", os.Getpid(), i),
				Lines: 20, Stderr: true, Labels: r.labels(),
			})
			ids[i] = id
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, id := range ids {
			if id != "" {
				dockertest.Remove(c, id)
			}
		}
	})
	var want []string
	for _, id := range ids {
		dockertest.WaitExit(t, c, id)
		want = append(want, engineLines(t, c, id)...)
	}
	lost, dup, missing := r.await(want, 120*time.Second)
	gRunning := runtime.NumGoroutine()
	for _, id := range ids {
		dockertest.Remove(c, id)
	}
	// Readers of removed containers stop while the pipeline runs.
	gRemoved := settle(g0, 60, 30*time.Second)
	r.stop(t)
	st := mem.finish()
	g1, fd1 := checkLeaks(t, c, g0, fd0)
	var peakFD int
	for _, s := range st {
		peakFD = max(peakFD, s.FDs)
	}
	t.Logf("short-lived: %d containers × 20 lines = %d lines: lost %d, duplicated %d; goroutines %d before, %d with all exited, %d after removal, %d after stop; FDs %d→%d (peak %d); peak heap %s",
		n, len(want), lost, dup, g0, gRunning, gRemoved, g1, fd0, fd1, peakFD, mib(int64(mem.heap)))
	if lost > 0 {
		t.Errorf("%d lines lost, e.g. %q", lost, missing)
	}
	if dup > 0 {
		t.Errorf("%d duplicates", dup)
	}
	if gRemoved > g0+60 {
		t.Errorf("%d goroutines remain after the containers were removed (%d before)", gRemoved, g0)
	}
}
