package faults

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ferrydev/ferry/internal/peers"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/ferrydev/ferry/discovery"
	"github.com/ferrydev/ferry/discovery/docker"
	"github.com/ferrydev/ferry/discovery/file"
	"github.com/ferrydev/ferry/internal/dockertest"
	"github.com/ferrydev/ferry/pipeline"
	"github.com/ferrydev/ferry/positions"
	"github.com/ferrydev/ferry/relabel"
	"github.com/ferrydev/ferry/scrape"
	"github.com/ferrydev/ferry/sink/loki"
	"github.com/ferrydev/ferry/sink/remotewrite"
	"github.com/ferrydev/ferry/source/dockerlogs"
	"github.com/ferrydev/ferry/source/filetail"
)

type soakPoint struct {
	at              time.Duration
	heap, rss       int64
	goroutines, fds int
}

// TestSoak runs the whole agent in process at a steady rate (a rotating
// file, a container logging without end, scrapes of node_exporter and a
// counter) into VictoriaLogs and Prometheus, records heap, RSS, goroutines
// and FDs every few seconds, and fails when they grow after warm-up. Then
// it checks that every file line arrived. 60s by default, 30 minutes with
// the long variants.
func TestSoak(t *testing.T) {
	_, base := victoriaLogs(t)
	_, promAddr := prometheus(t)
	nodeBin := peers.Bin(t, "FERRY_NODE_EXPORTER_BIN", "scripts/setup/prometheus.sh")
	nodeAddr := peers.FreeAddr(t)
	peers.Start(t, nodeBin, "http://"+nodeAddr+"/metrics", "--web.listen-address="+nodeAddr)
	c := dockertest.Client(t)
	dockertest.Image(t, c)

	dur, every := 60*time.Second, 2*time.Second
	if long() {
		dur, every = 30*time.Minute, 5*time.Second
	}
	dir := t.TempDir()
	logDir := filepath.Join(dir, "logs")
	os.Mkdir(logDir, 0o755)
	pf, err := positions.Open(filepath.Join(dir, "positions.json"), positions.Options{})
	if err != nil {
		t.Fatal(err)
	}
	label := fmt.Sprintf("ferry.faults.soak=%d", time.Now().UnixNano())
	k, v, _ := strings.Cut(label, "=")
	seq := &seqTarget{}
	seqAddr := serve(t, seq)

	runtime.GC()
	g0, fd0 := runtime.NumGoroutine(), fds()
	b := pipeline.New(pipeline.WithLogger(quietLogger(t)))
	d := pipeline.Discover(b, "discovery.docker", &docker.Discoverer{RefreshInterval: 5 * time.Second, IncludeStopped: true,
		Filters: []docker.Filter{{Name: "label", Values: []string{label}}}})
	tg := pipeline.RelabelTargets(b, "discovery.relabel", []relabel.Rule{
		relabel.Replace([]string{docker.LabelContainerName}, "/(.*)", "container", "$1"),
	}, d)
	ctrLogs := pipeline.FromTargets(b, "loki.source.docker", &dockerlogs.Source{PositionsFile: pf, SaveInterval: time.Second}, tg)
	m := pipeline.Discover(b, "local.file_match", &file.Discoverer{Patterns: []file.Pattern{{Path: filepath.Join(logDir, "app.log"), Labels: labels.FromStrings("job", "soak")}}})
	fileLogs := pipeline.FromTargets(b, "loki.source.file", &filetail.Source{PositionsFile: pf, SaveInterval: time.Second, StartAt: filetail.StartBeginning}, m)
	pipeline.To(b, "loki.write", &loki.Sink{URL: base + "/insert/loki/api/v1/push", BatchWait: 200 * time.Millisecond}, ctrLogs, fileLogs)
	sc := &scrape.Scraper{Interval: time.Second, Timeout: time.Second}
	st := pipeline.Discover(b, "discovery.static", discovery.Addresses([]string{seqAddr, nodeAddr}, "job", "soak"))
	pipeline.To(b, "prometheus.remote_write", &remotewrite.Sink{URL: "http://" + promAddr + "/api/v1/write", BatchSendDeadline: time.Second, Metadata: sc.Metadata},
		pipeline.FromTargets(b, "prometheus.scrape", sc, st))
	_, stop := runPipeline(t, b)

	// Steady load: 200 lines/s to a rotating file, 100 lines/s from a
	// container.
	dockertest.Run(t, c, dockertest.Spec{Name: fmt.Sprintf("ferry-faults-soak-%d", os.Getpid()), Lines: 1000, Loop: true, Sleep: 10 * time.Millisecond, Labels: map[string]string{k: v}})
	w := &fileWriter{dir: logDir, rate: 200, rotate: 5000, pad: 100}
	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	werr := make(chan error, 1)
	go func() { werr <- w.run(ctx, 1<<30) }()

	start := time.Now()
	var pts []soakPoint
	tick := time.NewTicker(every)
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-tick.C:
		}
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		s := statsOf(os.Getpid())
		pts = append(pts, soakPoint{time.Since(start).Round(time.Second), int64(ms.HeapInuse), s.RSS, s.Goroutines, s.FDs})
	}
	tick.Stop()
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	want := newTally()
	for _, l := range w.written() {
		want.expect("", l)
	}
	lost, dup, _, _ := want.await(t, base, "{job=\"soak\"}", 60*time.Second)
	stop()
	g1, fd1 := checkLeaks(t, c, g0, fd0)

	// Growth: the mean of the last third against the mean of the middle
	// third (the first third is warm-up).
	n := len(pts)
	mean := func(from, to int, f func(soakPoint) float64) float64 {
		var s float64
		for _, p := range pts[from:to] {
			s += f(p)
		}
		return s / float64(to-from)
	}
	mid, last := func(f func(soakPoint) float64) float64 { return mean(n/3, 2*n/3, f) }, func(f func(soakPoint) float64) float64 { return mean(2*n/3, n, f) }
	heapF := func(p soakPoint) float64 { return float64(p.heap) }
	rssF := func(p soakPoint) float64 { return float64(p.rss) }
	gF := func(p soakPoint) float64 { return float64(p.goroutines) }
	fdF := func(p soakPoint) float64 { return float64(p.fds) }
	var peakRSS, peakHeap int64
	for _, p := range pts {
		peakRSS, peakHeap = max(peakRSS, p.rss), max(peakHeap, p.heap)
	}
	for i, p := range pts {
		if i%max(1, n/12) == 0 || i == n-1 {
			t.Logf("  %6v heap %s rss %s goroutines %d fds %d", p.at, mib(p.heap), mib(p.rss), p.goroutines, p.fds)
		}
	}
	t.Logf("soak %v: %d file lines at 200/s (+ container 100/s, 2 scrapes/s): lost %d, duplicated %d; heap %s→%s (peak %s), RSS %s→%s (peak %s, -race), goroutines %.0f→%.0f, FDs %.0f→%.0f; after stop goroutines %d→%d, FDs %d→%d",
		dur, len(want.want), lost, dup, mib(int64(mid(heapF))), mib(int64(last(heapF))), mib(peakHeap),
		mib(int64(mid(rssF))), mib(int64(last(rssF))), mib(peakRSS), mid(gF), last(gF), mid(fdF), last(fdF), g0, g1, fd0, fd1)
	if lost > 0 {
		t.Errorf("%d file lines lost", lost)
	}
	if h0, h1 := mid(heapF), last(heapF); h1 > h0*1.1+2<<20 {
		t.Errorf("heap grew from %s to %s", mib(int64(h0)), mib(int64(h1)))
	}
	if a, b := mid(gF), last(gF); b > a+10 {
		t.Errorf("goroutines grew from %.0f to %.0f", a, b)
	}
	if a, b := mid(fdF), last(fdF); b > a+5 {
		t.Errorf("FDs grew from %.0f to %.0f", a, b)
	}
}
