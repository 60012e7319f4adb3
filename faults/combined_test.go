package faults

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/buffer"
	"github.com/ferrydev/ferry/discovery"
	"github.com/ferrydev/ferry/discovery/docker"
	"github.com/ferrydev/ferry/discovery/file"
	"github.com/ferrydev/ferry/internal/dockertest"
	"github.com/ferrydev/ferry/internal/peers"
	"github.com/ferrydev/ferry/pipeline"
	"github.com/ferrydev/ferry/positions"
	"github.com/ferrydev/ferry/relabel"
	"github.com/ferrydev/ferry/scrape"
	"github.com/ferrydev/ferry/sink"
	"github.com/ferrydev/ferry/sink/loki"
	"github.com/ferrydev/ferry/sink/remotewrite"
	"github.com/ferrydev/ferry/source"
	"github.com/ferrydev/ferry/source/dockerlogs"
	"github.com/ferrydev/ferry/source/filetail"
)

// comboTarget is a scrape target that serves, per scrape, a counter
// faults_seq going up by one and wide series faults_wide{s="<i>"} all with
// the same value, and remembers the values served. After freeze it answers
// 503, so that the set of served values is final.
type comboTarget struct {
	wide   int
	mu     sync.Mutex
	n      int
	served []int
	frozen bool
}

func (c *comboTarget) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	if c.frozen {
		c.mu.Unlock()
		http.Error(w, "frozen", http.StatusServiceUnavailable)
		return
	}
	c.n++
	n := c.n
	c.served = append(c.served, n)
	c.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	bw := bufio.NewWriterSize(w, 64<<10)
	fmt.Fprintf(bw, "# TYPE faults_seq counter\nfaults_seq %d\n# TYPE faults_wide counter\n", n)
	for i := range c.wide {
		fmt.Fprintf(bw, "faults_wide{s=\"%05d\"} %d\n", i, n)
	}
	bw.Flush()
}

// freeze makes further scrapes fail and returns the values served.
func (c *comboTarget) freeze() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.frozen = true
	return append([]int(nil), c.served...)
}

func (c *comboTarget) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.served)
}

// comboAgent is one in-process agent of TestBufferCombinedOutage:
// containers and a file to VictoriaLogs, scrapes to Prometheus, with or
// without a disk buffer in front of each sink.
type comboAgent struct {
	name       string
	target     *comboTarget
	targetAddr string
	skip       int // values the target served before the agent scraped it
	rw         *remotewrite.Sink
	logBuf     *buffer.Disk[ferry.Entry]
	rwBuf      *buffer.Disk[ferry.Sample]
	p          *pipeline.Pipeline
	cancel     context.CancelFunc
	done       chan error
}

// comboConfig is the shape of the combined outage scenario.
type comboConfig struct {
	outage         time.Duration
	interval       time.Duration // scrape interval
	wide           int           // wide series per target
	fileRate       int           // file lines per second
	fileRotate     int           // lines per file generation
	ctrSleep       time.Duration // between container lines
	ctrLines       int           // lines per container
	ctrLogOpts     map[string]string
	pad            int           // bytes of padding per line
	reshard        time.Duration // remote-write ReshardInterval
	settle, window time.Duration
}

func startComboAgent(t *testing.T, name string, buffered bool, cfg comboConfig, dir, logPath, dockerLabel, nodeAddr string, vl *peers.VictoriaLogs, prom *peers.Prometheus) *comboAgent {
	t.Helper()
	a := &comboAgent{name: name, target: &comboTarget{wide: cfg.wide}, done: make(chan error, 1)}
	targetAddr := serve(t, a.target)
	a.targetAddr = targetAddr
	a.skip = a.target.count()
	dir = filepath.Join(dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	pf, err := positions.Open(filepath.Join(dir, "positions.json"), positions.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b := pipeline.New(pipeline.WithLogger(quietLogger(t)), pipeline.WithDrainTimeout(10*time.Second), pipeline.WithBackoff(100*time.Millisecond, time.Second))

	// Logs: the containers carrying dockerLabel, and the rotating file.
	k, v, _ := strings.Cut(dockerLabel, "=")
	ctr := pipeline.Discover(b, "discovery.docker", &docker.Discoverer{RefreshInterval: time.Second, IncludeStopped: true,
		Filters: []docker.Filter{{Name: "label", Values: []string{k + "=" + v}}}})
	ctrTargets := pipeline.RelabelTargets(b, "discovery.relabel", []relabel.Rule{
		relabel.Replace([]string{docker.LabelContainerName}, "/(.*)", "container", "$1"),
		relabel.Set("agent", name),
	}, ctr)
	ctrLogs := pipeline.FromTargets(b, "loki.source.docker", &dockerlogs.Source{PositionsFile: pf, SaveInterval: time.Second, RefreshInterval: time.Second}, ctrTargets)
	files := pipeline.Discover(b, "discovery.file", &file.Discoverer{RefreshInterval: 200 * time.Millisecond,
		Patterns: []file.Pattern{{Path: logPath, Labels: labels.FromStrings("job", "files", "agent", name)}}})
	fileLogs := pipeline.FromTargets(b, "loki.source.file", &filetail.Source{PositionsFile: pf, SaveInterval: time.Second,
		StartAt: filetail.StartBeginning, PollInterval: 50 * time.Millisecond, RotateWait: 200 * time.Millisecond}, files)
	// MaxBufferedBytes is small so that an outage turns into backpressure
	// on the sources soon (without a buffer) — as it does, later, with the
	// default of 16 MiB.
	lk := &loki.Sink{URL: vl.PushURL(), BatchWait: 100 * time.Millisecond, MinBackoff: 50 * time.Millisecond,
		MaxBackoff: 500 * time.Millisecond, MaxRetries: -1, MaxBufferedBytes: 256 << 10}
	var logSink sink.Sink[ferry.Entry] = lk
	if buffered {
		lk.MaxRetries = 2 // the buffer retries without limit
		a.logBuf = buffer.Wrap(filepath.Join(dir, "buffer-logs"), lk, buffer.Options{MaxBytes: 4 << 30, SyncInterval: 100 * time.Millisecond, MaxBackoff: 500 * time.Millisecond})
		logSink = a.logBuf
	}
	pipeline.To(b, "loki.write", logSink, ctrLogs, fileLogs)

	// Metrics: node_exporter and this agent's own counter target.
	sc := &scrape.Scraper{Interval: cfg.interval, Timeout: cfg.interval}
	targets := pipeline.Discover(b, "discovery.static", discovery.Addresses([]string{nodeAddr, targetAddr}, "job", "faults-"+name))
	samples := pipeline.FromTargets(b, "prometheus.scrape", sc, targets)
	a.rw = &remotewrite.Sink{URL: prom.WriteURL(), BatchSendDeadline: 100 * time.Millisecond, MinBackoff: 50 * time.Millisecond,
		MaxBackoff: time.Second, ReshardInterval: cfg.reshard}
	var rwSink sink.Sink[ferry.Sample] = a.rw
	if buffered {
		a.rwBuf = buffer.Wrap(filepath.Join(dir, "buffer-metrics"), a.rw, buffer.Options{MaxBytes: 4 << 30, SyncInterval: 100 * time.Millisecond, MaxBackoff: 500 * time.Millisecond})
		rwSink = a.rwBuf
	}
	pipeline.To(b, "prometheus.remote_write", rwSink, samples)

	p, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	a.p = p
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	go func() { a.done <- p.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-a.done })
	return a
}

// shardWatch polls a remote-write sink's shard count.
type shardWatch struct {
	mu    sync.Mutex
	peak  int
	stop  chan struct{}
	done  chan struct{}
	trace []int // the distinct counts seen, in order
}

func watchShards(rw *remotewrite.Sink) *shardWatch {
	w := &shardWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			n := rw.NumShards()
			w.mu.Lock()
			w.peak = max(w.peak, n)
			if len(w.trace) == 0 || w.trace[len(w.trace)-1] != n {
				w.trace = append(w.trace, n)
			}
			w.mu.Unlock()
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

func (w *shardWatch) finish() (peak int, trace []int) {
	close(w.stop)
	<-w.done
	return w.peak, w.trace
}

// spacing summarises the gaps between sample timestamps (seconds):
// the largest, and the scrape intervals missed (a gap of k intervals
// misses k-1).
func spacing(pts []point, interval time.Duration) (maxGap time.Duration, missed int) {
	iv := interval.Seconds()
	for i := 1; i < len(pts); i++ {
		g := pts[i].ts - pts[i-1].ts
		maxGap = max(maxGap, time.Duration(g*float64(time.Second)))
		missed += max(0, int(math.Round(g/iv))-1)
	}
	return maxGap, missed
}

// promScalar returns a single-valued instant query's value (0 if empty).
func promScalar(t testing.TB, prom *peers.Prometheus, q string) float64 {
	t.Helper()
	res := prom.Query(t, q, time.Now())
	if len(res) != 1 {
		return 0
	}
	return res[0].Float(t)
}

// promSelfMetric reads one of Prometheus's own counters from its /metrics
// page (the sum over its label sets; 0 when it has none yet, as a counter
// with labels before its first increment).
func promSelfMetric(t testing.TB, prom *peers.Prometheus, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + prom.Addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if rest, ok := strings.CutPrefix(l, name); ok && (strings.HasPrefix(rest, " ") || strings.HasPrefix(rest, "{")) {
			f := strings.Fields(l)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			sum += v
		}
	}
	return sum
}

// TestBufferCombinedOutage stops both receivers, VictoriaLogs and
// Prometheus 3 (with out_of_order_time_window), while containers, a file
// and scrapes all run, for an outage longer than the containers' json-file
// logs and the file's generations last. Two agents run side by side on the
// same containers, file and node_exporter (and a counter target each): one
// without a buffer, one with a disk buffer in front of each sink.
//
// Without the buffer, the sources stop reading when the sinks are full:
// the file's generations and the containers' log files rotated away
// meanwhile are lost, and the scrapes pause (a gap in the series). With it,
// every line and every counter value arrives (duplicates bounded by what
// was in flight), the scrapes keep their interval, and after the outage
// the metrics backlog is delivered oldest first at a catch-up rate well
// above the ingest rate, with the remote-write shards growing for it.
//
// The default outage is 30 s; FERRY_FAULTS_LONG=1 (or -tags faults_long)
// makes it 10 minutes.
func TestBufferCombinedOutage(t *testing.T) {
	cfg := comboConfig{
		outage: 30 * time.Second, interval: time.Second, wide: 10000,
		fileRate: 1000, fileRotate: 2000, // a generation every 2 s, 15 in the outage
		// Up to ~450 lines/s of ~270 bytes in json-file (fewer on a loaded
		// machine): a 500 kB file every 4 s or more, two kept, about 1,900
		// lines.
		ctrSleep: 2 * time.Millisecond, ctrLines: 20000, ctrLogOpts: map[string]string{"max-size": "500k", "max-file": "2"},
		// A short ReshardInterval, so that the sink may reshard within a
		// catch-up of a few seconds (it does not while retrying, nor for
		// two intervals after): the long variant uses the default, 10 s.
		// 10,000 wide series make a backlog of ~330,000 samples, which one
		// shard takes 2.5 s or more to send on a quiet machine: with 5,000,
		// a fast machine caught up in 1.4 s, before the sink could
		// reconsider its shards even once (CI, 2026-12-05).
		pad: 200, reshard: 250 * time.Millisecond, settle: 10 * time.Second, window: 10 * time.Minute,
	}
	if long() {
		cfg.outage = 10 * time.Minute
		cfg.fileRate, cfg.fileRotate = 300, 3000 // a generation every 10 s, 60 in the outage
		cfg.ctrSleep, cfg.ctrLines = 5*time.Millisecond, 120000
		cfg.ctrLogOpts = map[string]string{"max-size": "1m", "max-file": "2"} // 7,400 lines
		cfg.reshard = 0                                                       // the default, 10 s
		cfg.wide = 5000                                                       // a backlog of 3.5 M samples
		cfg.settle, cfg.window = 30*time.Second, 40*time.Minute
	}
	began := time.Now()
	vl := peers.StartVictoriaLogs(t)
	prom := peers.StartPrometheus3(t, "global:\n  scrape_interval: 1m\nstorage:\n  tsdb:\n    out_of_order_time_window: 3h\n")
	nodeAddr := peers.StartNodeExporter(t)
	c := dockertest.Client(t)
	dockertest.Image(t, c)

	dir := t.TempDir()
	logDir := filepath.Join(dir, "logs")
	os.Mkdir(logDir, 0o755)
	logPath := filepath.Join(logDir, "app.log")
	label := fmt.Sprintf("ferry.faults.combined=%d", time.Now().UnixNano())
	plain := startComboAgent(t, "plain", false, cfg, dir, logPath, label, nodeAddr, vl, prom)
	buffered := startComboAgent(t, "buffered", true, cfg, dir, logPath, label, nodeAddr, vl, prom)
	agents := []*comboAgent{plain, buffered}

	w := &fileWriter{dir: logDir, rate: cfg.fileRate, rotate: cfg.fileRotate, pad: cfg.pad}
	wctx, wcancel := context.WithCancel(context.Background())
	defer wcancel()
	werr := make(chan error, 1)
	go func() { werr <- w.run(wctx, math.MaxInt) }()

	// Both agents deliver file lines and samples before the outage.
	for _, a := range agents {
		filter := fmt.Sprintf(`agent:=%q job:="files"`, a.name)
		mustWait(t, a.name+" delivering file lines", 60*time.Second, func() bool { return countLogs(t, vl.URL, filter) > 0 })
		mustWait(t, a.name+" delivering samples", 60*time.Second, func() bool {
			return promScalar(t, prom, fmt.Sprintf(`count(faults_seq{job="faults-%s"})`, a.name)) > 0
		})
	}
	// The containers start now, so that most of what they log falls in
	// the outage; both agents deliver their first lines before it.
	k, v, _ := strings.Cut(label, "=")
	specs := make([]dockertest.Spec, 2)
	var ids []string
	for i := range specs {
		specs[i] = dockertest.Spec{Name: fmt.Sprintf("ferry-faults-combined-%d-%d", os.Getpid(), i),
			Lines: cfg.ctrLines, Sleep: cfg.ctrSleep, Long: cfg.pad, Labels: map[string]string{k: v}, LogOpts: cfg.ctrLogOpts}
		ids = append(ids, dockertest.Run(t, c, specs[i]))
	}
	for _, a := range agents {
		filter := fmt.Sprintf(`agent:=%q container:*`, a.name)
		mustWait(t, a.name+" delivering container lines", 60*time.Second, func() bool { return countLogs(t, vl.URL, filter) > 0 })
	}
	shardsBefore := buffered.rw.NumShards()

	// The outage.
	vl.Stop()
	prom.Stop()
	outageBegan := time.Now()
	itemsAtStop := buffered.rwBuf.Stats().Items
	time.Sleep(cfg.outage) // the outage under test
	before := buffered.rwBuf.Stats()
	outage := time.Since(outageBegan)
	ingest := float64(before.Items-itemsAtStop) / outage.Seconds()
	watch := watchShards(buffered.rw)
	vl.Start()
	prom.Start()
	catchBegan := time.Now()
	// Caught up: what waits in the buffer is back to about one scrape.
	perScrape := int64(ingest * cfg.interval.Seconds())
	mustWait(t, "the metrics backlog delivered", 5*time.Minute+2*cfg.outage, func() bool {
		return buffered.rwBuf.Stats().Items <= 2*perScrape
	})
	catchUp := time.Since(catchBegan)
	peakShards, trace := watch.finish()
	catchRate := (float64(before.Items) + ingest*catchUp.Seconds()) / catchUp.Seconds()

	// The sources end: the file writer stops, the containers exit, the
	// counter targets freeze (their served values are final).
	wcancel()
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		dockertest.WaitExit(t, c, id)
	}
	served := map[string][]int{}
	frozenAt := time.Now()
	for _, a := range agents {
		served[a.name] = a.target.freeze()[a.skip:]
	}

	want := newTally()
	want.expectWritten(w, specs)
	type logResult struct{ lost, dup, unexpected int }
	logs := map[string]logResult{}
	files := map[string]int{}
	for _, a := range agents {
		filter := fmt.Sprintf(`agent:=%q`, a.name)
		var r logResult
		var missing []logRow
		if a == buffered {
			r.lost, r.dup, r.unexpected, missing = want.await(t, vl.URL, filter, 3*time.Minute)
		} else {
			r.lost, r.dup, r.unexpected, missing = want.awaitSettled(t, vl.URL, filter, cfg.settle, 3*time.Minute)
		}
		logs[a.name] = r
		files[a.name] = countLogs(t, vl.URL, filter+` job:="files"`)
		if a == buffered && r.lost > 0 {
			t.Errorf("buffered: %d lines lost, e.g. %.300q", r.lost, missing)
		}
	}
	// bySource splits an agent's result by source: "file" and the
	// containers' names.
	type sourceResult struct {
		name               string
		written, lost, dup int
	}
	bySource := func(agent string) []sourceResult {
		rows := queryLogs(t, vl.URL, fmt.Sprintf(`agent:=%q`, agent), "container")
		var out []sourceResult
		for _, key := range append([]string{""}, specNames(specs)...) {
			sub := newTally()
			for k := range want.want {
				if k.key == key {
					sub.want[k] = 0
				}
			}
			var mine []logRow
			for _, r := range rows {
				if r.key == key {
					mine = append(mine, r)
				}
			}
			lost, dup, _, _ := sub.result(mine)
			r := sourceResult{name: key, written: len(sub.want), lost: lost, dup: dup}
			if key == "" {
				r.name = "file"
			}
			out = append(out, r)
		}
		return out
	}
	sources := map[string][]sourceResult{}
	for _, a := range agents {
		sources[a.name] = bySource(a.name)
	}

	// Metrics: wait until every served value of each agent is stored.
	type metricResult struct {
		served, seqLost    int
		wideWant, wideGot  int
		maxGap             time.Duration
		missed, inOutage   int
		missedInOutage     int
		outageExpected     int
		seqStored, nodeUps int
		failed             int // scrapes of the counter target that failed (up 0)
	}
	q := func(format string, a ...any) string { return fmt.Sprintf(format, a...) }
	win := fmt.Sprintf("[%ds]", int(cfg.window.Seconds()))
	metrics := map[string]metricResult{}
	for _, a := range agents {
		s := served[a.name]
		r := metricResult{served: len(s), wideWant: len(s) * cfg.wide}
		seqQ := q(`faults_seq{job="faults-%s"}%s`, a.name, win)
		wideQ := q(`sum(count_over_time(faults_wide{job="faults-%s"}%s))`, a.name, win)
		upQ := q(`up{job="faults-%s",instance=%q}%s`, a.name, a.targetAddr, win)
		// A value served to a scrape that then failed (it timed out on a
		// loaded machine) is not stored, and the scrape's up sample is 0.
		failedScrapes := func() int {
			n := 0
			for _, p := range promSamples(t, prom.Addr, upQ)[a.targetAddr] {
				if p.v == 0 && p.ts < float64(frozenAt.UnixMilli())/1000 {
					n++
				}
			}
			return n
		}
		waitFor(2*time.Minute, func() bool {
			var pts []point
			for _, p := range promSamples(t, prom.Addr, seqQ) {
				pts = append(pts, p...)
			}
			r.seqStored = len(pts)
			r.wideGot = int(promScalar(t, prom, wideQ))
			r.failed = failedScrapes()
			return len(pts)+r.failed >= len(s) && r.wideGot+r.failed*cfg.wide >= r.wideWant
		})
		var pts []point
		for _, p := range promSamples(t, prom.Addr, seqQ) {
			pts = append(pts, p...)
		}
		slices.SortFunc(pts, func(x, y point) int { return int(math.Copysign(1, x.ts-y.ts)) })
		stored := map[int]bool{}
		for _, p := range pts {
			stored[int(p.v)] = true
		}
		for _, n := range s {
			if !stored[n] {
				r.seqLost++
			}
		}
		r.maxGap, r.missed = spacing(pts, cfg.interval)
		from, to := float64(outageBegan.UnixMilli())/1000, float64(outageBegan.Add(outage).UnixMilli())/1000
		var during []point
		for _, p := range pts {
			if p.ts >= from && p.ts < to {
				during = append(during, p)
			}
		}
		r.inOutage = len(during)
		_, r.missedInOutage = spacing(during, cfg.interval)
		r.outageExpected = int(outage / cfg.interval)
		r.nodeUps = int(promScalar(t, prom, q(`sum(count_over_time(up{job="faults-%s",instance=%q}%s))`, a.name, nodeAddr, win)))
		metrics[a.name] = r
	}
	ooo := promSelfMetric(t, prom, "prometheus_tsdb_head_out_of_order_samples_appended_total")
	for _, a := range agents {
		a.cancel()
		if err := <-a.done; err != nil {
			t.Errorf("%s: pipeline: %v", a.name, err)
		}
		a.done <- nil // for the cleanup
	}

	for _, a := range agents {
		lr, mr := logs[a.name], metrics[a.name]
		var parts []string
		for _, r := range sources[a.name] {
			parts = append(parts, fmt.Sprintf("%s %d written, %d lost, %d duplicated", r.name, r.written, r.lost, r.dup))
		}
		t.Logf("%s: logs: %d lines written (%d file, %d container): %d lost, %d duplicated, %d unexpected; per source: %s",
			a.name, len(want.want), w.count(), len(want.want)-w.count(), lr.lost, lr.dup, lr.unexpected, strings.Join(parts, "; "))
		t.Logf("%s: metrics: %d scrapes of the counter target served, %d failed (up 0), %d values not stored; %d of %d wide samples stored; %d node_exporter scrapes stored; during the %v outage %d of %d intervals have a sample (%d missed); over the whole run largest gap %v, %d intervals missed",
			a.name, mr.served, mr.failed, mr.seqLost, mr.wideGot, mr.wideWant, mr.nodeUps, outage.Round(time.Second), mr.inOutage, mr.outageExpected, mr.missedInOutage, mr.maxGap.Round(time.Millisecond), mr.missed)
		if a.rwBuf != nil {
			t.Logf("%s: buffers: logs %+v; metrics %+v", a.name, a.logBuf.Stats(), a.rwBuf.Stats())
		}
		for _, comp := range []string{"loki.write", "prometheus.remote_write"} {
			st, _ := a.p.Component(comp)
			for reason, n := range st.Dropped {
				t.Errorf("%s: %s dropped %d (%s)", a.name, comp, n, reason)
			}
		}
	}
	t.Logf("metrics catch-up: backlog %d samples (%s on disk) after %v; delivered in %v: %.0f samples/s against an ingest rate of %.0f samples/s (%.1f×); remote-write shards %d before the outage, peak %d during catch-up (trace %v); out-of-order samples appended by Prometheus: %v; test took %v",
		before.Items, mib(before.Bytes), outage.Round(time.Second), catchUp.Round(time.Millisecond), catchRate, ingest, catchRate/ingest, shardsBefore, peakShards, trace, ooo, time.Since(began).Round(time.Second))

	// Without the buffer, lines are lost and the scrapes pause: the
	// scenario shows what the buffer prevents.
	for _, r := range sources["plain"] {
		if r.lost == 0 {
			t.Errorf("without a buffer no line of %s was lost: the outage does not outlast its rotations", r.name)
		}
	}
	if m := metrics["plain"]; m.inOutage > m.outageExpected/2 {
		t.Errorf("without a buffer the scrapes went on: %d of %d intervals of the outage have a sample", m.inOutage, m.outageExpected)
	}
	// With it: nothing lost, duplicates within what was in flight.
	b, bm := logs["buffered"], metrics["buffered"]
	inFlight := int((4<<20 + 256<<10) / (cfg.pad + 20)) // the buffer's replay window and the Loki sink's
	if b.dup > inFlight {
		t.Errorf("buffered: %d duplicates, more than the %d lines in flight", b.dup, inFlight)
	}
	if b.unexpected > 0 {
		t.Errorf("buffered: %d unexpected lines", b.unexpected)
	}
	// Every served value is stored, or its scrape failed (and its up 0
	// sample is stored).
	if bm.seqLost > bm.failed || bm.wideGot+bm.failed*cfg.wide < bm.wideWant {
		t.Errorf("buffered: %d counter values not stored with %d failed scrapes; %d of %d wide samples stored",
			bm.seqLost, bm.failed, bm.wideGot, bm.wideWant)
	}
	// The scrapes keep their interval through the outage; a loaded
	// machine may miss a few (a scrape that overruns skips a tick).
	if bm.inOutage < bm.outageExpected*9/10 || bm.missedInOutage > max(2, bm.outageExpected/20) {
		t.Errorf("buffered: scrapes did not keep their interval: %d of %d intervals of the outage have a sample, %d missed",
			bm.inOutage, bm.outageExpected, bm.missedInOutage)
	}
	// On a 2-core machine the catch-up shares the CPU with Prometheus,
	// VictoriaLogs and both agents catching up on logs: the floor is
	// twice the ingest rate (the figures are in the log).
	if catchRate < 2*ingest {
		t.Errorf("catch-up at %.0f samples/s, not well above the ingest rate %.0f samples/s", catchRate, ingest)
	}
	if peakShards <= shardsBefore {
		t.Errorf("remote-write shards did not grow for the catch-up: %d before, peak %d", shardsBefore, peakShards)
	}
}

func specNames(specs []dockertest.Spec) []string {
	var out []string
	for _, s := range specs {
		out = append(out, s.Name)
	}
	return out
}

// TestBufferInnerGiveUpNotDropped: a Loki sink inside a disk buffer gives
// up on requests the receiver answers 503 to (MaxRetries), and the buffer
// sends them again until they are delivered. Every line arrives, so the
// pipeline must not report any as "dropped for good"
// (ferry_component_dropped_items_total).
// The Loki sink counts a request whose retries ran out under
// ferry.ReasonRetriesExhausted and acknowledges it with a retryable error;
// the buffer's Reporter for its inner sink counts that as a retry (it
// failed before that was fixed, 2026-12-05).
func TestBufferInnerGiveUpNotDropped(t *testing.T) {
	// The receiver answers 503 to the first 20 pushes, then accepts.
	var mu sync.Mutex
	failing, delivered := 20, 0
	addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case r.URL.Path != "/loki/api/v1/push": // the readiness probe
		case failing > 0:
			failing--
			http.Error(w, "try later", http.StatusServiceUnavailable)
		default:
			delivered++
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	pr, pw := io.Pipe()
	b := pipeline.New(pipeline.WithLogger(quietLogger(t)))
	logs := pipeline.FromSource(b, "lines", &source.Reader{R: pr, Labels: labels.FromStrings("job", "giveup"), BatchSize: 20, Linger: 10 * time.Millisecond})
	lk := &loki.Sink{URL: "http://" + addr + "/loki/api/v1/push", BatchWait: 10 * time.Millisecond,
		MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, MaxRetries: 1}
	d := buffer.Wrap(filepath.Join(t.TempDir(), "buf"), lk, buffer.Options{MaxBytes: 16 << 20, SyncInterval: 10 * time.Millisecond,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	pipeline.To(b, "loki", d, logs)
	p, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(context.Background()) }()
	for i := range 200 {
		fmt.Fprintf(pw, "line %d\n", i)
	}
	mustWait(t, "every line delivered", 60*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		st := d.Stats()
		return st.Items == 0 && delivered > 0 && st.Acked == st.Written
	})
	st, _ := p.Component("loki")
	bs := d.Stats()
	pw.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("buffer: written %d records, replayed %d, acked %d, retries %d; %d requests delivered; component dropped %v", bs.Written, bs.Replayed, bs.Acked, bs.Retries, delivered, st.Dropped)
	if bs.Retries == 0 {
		t.Fatal("the inner sink never gave up: the test did not exercise a retry through the buffer")
	}
	if len(st.Dropped) > 0 {
		t.Errorf("nothing was lost, yet the pipeline reports %v dropped for good", st.Dropped)
	}
}
