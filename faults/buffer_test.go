package faults

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/buffer"
	"github.com/ferrydev/ferry/discovery/file"
	"github.com/ferrydev/ferry/internal/peers"
	"github.com/ferrydev/ferry/pipeline"
	"github.com/ferrydev/ferry/positions"
	"github.com/ferrydev/ferry/sink"
	"github.com/ferrydev/ferry/sink/loki"
	"github.com/ferrydev/ferry/sink/remotewrite"
	"github.com/ferrydev/ferry/sink/sinktest"
	"github.com/ferrydev/ferry/source"
	"github.com/ferrydev/ferry/source/filetail"
	"github.com/prometheus/prometheus/model/labels"
)

// TestBufferVictoriaLogsOutage: lines from a Reader source go through a
// disk buffer and the Loki sink to VictoriaLogs, which is stopped for a
// while and started again. The source never stops reading (its lines are
// acknowledged once on disk), and every line arrives.
func TestBufferVictoriaLogsOutage(t *testing.T) {
	vl := peers.StartVictoriaLogs(t)
	pr, pw := io.Pipe()
	run := fmt.Sprint(time.Now().UnixNano())
	b := pipeline.New(pipeline.WithDrainTimeout(60 * time.Second))
	logs := pipeline.FromSource(b, "lines", &source.Reader{R: pr, Labels: labels.FromStrings("job", "buffer-outage", "run", run), BatchSize: 100, Linger: 10 * time.Millisecond})
	d := buffer.Wrap(filepath.Join(t.TempDir(), "buf"),
		&loki.Sink{URL: vl.PushURL(), BatchWait: 50 * time.Millisecond, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, MaxRetries: 3},
		buffer.Options{MaxBytes: 64 << 20, SyncInterval: 50 * time.Millisecond, MinBackoff: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond})
	pipeline.To(b, "victorialogs", d, logs)
	p, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(context.Background()) }()

	next := 0
	write := func(n int) {
		for range n {
			fmt.Fprintf(pw, "outage line %06d\n", next)
			next++
		}
	}
	count := func() int {
		return len(vl.Query(t, fmt.Sprintf(`run:=%q | fields _msg`, run)))
	}
	write(1000)
	mustWait(t, "the first lines delivered", 60*time.Second, func() bool { return count() == 1000 })

	vl.Stop()
	write(3000) // written while the receiver is down: the Reader keeps reading
	mustWait(t, "the outage's lines durable in the buffer", 60*time.Second, func() bool {
		s := d.Stats()
		return s.Items >= 3000 && s.Retries > 0
	})
	vl.Start()
	write(1000)
	pw.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	rows := vl.Query(t, fmt.Sprintf(`run:=%q | fields _msg`, run))
	seen := map[string]int{}
	for _, r := range rows {
		seen[r["_msg"]]++
	}
	lost, dups := 0, 0
	for i := range next {
		c := seen[fmt.Sprintf("outage line %06d", i)]
		if c == 0 {
			lost++
		}
		dups += max(0, c-1)
	}
	t.Logf("%d lines written, %d stored, %d lost, %d duplicates; buffer %+v", next, len(rows), lost, dups, d.Stats())
	if lost != 0 {
		t.Fatalf("%d lines lost", lost)
	}
}

// TestBufferPrometheusBacklog sends a metrics backlog whose samples are
// older than Prometheus's head block allows through a buffer and remote
// write, to two Prometheus 3 servers that were down while it built up: one
// with storage.tsdb.out_of_order_time_window set accepts all of it, one
// without rejects it as out of bounds (counted as a permanent drop, not
// retried forever).
func TestBufferPrometheusBacklog(t *testing.T) {
	withOOO := peers.StartPrometheus3(t, "global:\n  scrape_interval: 1m\nstorage:\n  tsdb:\n    out_of_order_time_window: 3h\n")
	without := peers.StartPrometheus3(t, "")
	now := time.Now()
	live := []ferry.Sample{{Labels: labels.FromStrings("__name__", "ferry_buffer_live", "job", "t"), T: now.UnixMilli(), V: 1}}
	const n = 120
	backlog := make([]ferry.Sample, n)
	for i := range backlog {
		// From 100 to 70 minutes ago: older than the head's lower bound
		// (its newest sample minus one hour) once live data is there.
		backlog[i] = ferry.Sample{Labels: labels.FromStrings("__name__", "ferry_buffer_backlog", "job", "t"),
			T: now.Add(-100*time.Minute + time.Duration(i)*15*time.Second).UnixMilli(), V: float64(i)}
	}
	for _, prom := range []*peers.Prometheus{withOOO, without} {
		// Live samples reach Prometheus first (another agent, or this one's
		// newer data), then it goes down while the backlog is buffered.
		direct := &remotewrite.Sink{URL: prom.WriteURL()}
		bufSendSamples(t, direct, live)
		direct.Close(context.Background())
		prom.Stop()

		rep := &bufCountingReporter{}
		rw := &remotewrite.Sink{URL: prom.WriteURL(), MinBackoff: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond, BatchSendDeadline: 100 * time.Millisecond}
		d := buffer.Wrap(filepath.Join(t.TempDir(), "buf"), rw, buffer.Options{MaxBytes: 16 << 20, SyncInterval: 20 * time.Millisecond})
		if err := d.Start(context.Background(), rep); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < n; i += 10 {
			acked := make(chan error, 1)
			d.Send(context.Background(), ferry.NewBatch(append([]ferry.Sample(nil), backlog[i:i+10]...), func(err error) { acked <- err }))
			if err := <-acked; err != nil {
				t.Fatal(err)
			}
		}
		prom.Start()
		mustWait(t, "the backlog settled", 120*time.Second, func() bool { return d.Stats().Records == 0 })
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		d.Close(ctx)
		cancel()

		res := prom.Query(t, `count_over_time(ferry_buffer_backlog[3h])`, now)
		got := 0.0
		if len(res) == 1 {
			got = res[0].Float(t)
		}
		if prom == withOOO {
			if got != n {
				t.Fatalf("with out_of_order_time_window: %v of %d backlog samples stored", got, n)
			}
			t.Logf("with out_of_order_time_window: %v of %d backlog samples stored", got, n)
		} else {
			if got != 0 || rep.dropped() == 0 {
				t.Fatalf("without out_of_order_time_window: %v of %d stored, %d counted as dropped; want 0 stored, all dropped", got, n, rep.dropped())
			}
			t.Logf("without out_of_order_time_window: 0 stored, %d samples dropped (out of bounds)", rep.dropped())
		}
	}
}

func bufSendSamples(t *testing.T, s *remotewrite.Sink, items []ferry.Sample) {
	t.Helper()
	acked := make(chan error, 1)
	if st, ok := any(s).(ferry.Starter); ok {
		if err := st.Start(context.Background(), ferry.NopReporter()); err != nil {
			t.Fatal(err)
		}
	}
	s.Send(context.Background(), ferry.NewBatch(items, func(err error) { acked <- err }))
	if err := <-acked; err != nil {
		t.Fatal(err)
	}
}

// bufCountingReporter is a Reporter that counts drops.
type bufCountingReporter struct {
	mu sync.Mutex
	n  int
}

func (r *bufCountingReporter) Logger() *slog.Logger          { return slog.Default() }
func (r *bufCountingReporter) SetHealth(ferry.Health, error) {}
func (r *bufCountingReporter) Retried()                      {}
func (r *bufCountingReporter) Dropped(reason string, n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.n += n
}
func (r *bufCountingReporter) dropped() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

// TestBufferDiskFull mounts a 256 KiB tmpfs (as root; skipped otherwise)
// and fills it through a buffer whose inner sink is down: the write that
// hits ENOSPC fails its batch with a retryable error and the buffer turns
// Failing; once the inner sink delivers and frees segments, writes succeed
// and it is Healthy again. Every acknowledged line is delivered.
func TestBufferDiskFull(t *testing.T) {
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v: %s); TestDiskFull in buffer covers ENOSPC with an injected writer", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })

	inner := &sinktest.Sink[ferry.Entry]{}
	inner.FailNext(1<<30, nil)
	rep := &bufHealthReporter{}
	d := buffer.Wrap(filepath.Join(dir, "buf"), inner, buffer.Options{MaxBytes: 16 << 20, SegmentBytes: 16 << 10,
		SyncInterval: -1, MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	if err := d.Start(context.Background(), rep); err != nil {
		t.Fatal(err)
	}
	defer d.Close(context.Background())
	lbls := labels.FromStrings("job", "full")
	acked := map[string]bool{}
	batch := func(i int) (ferry.Batch[ferry.Entry], *error) {
		items := make([]ferry.Entry, 10)
		for j := range items {
			items[j] = ferry.Entry{Labels: lbls, Line: fmt.Sprintf("full line %06d %s", i*10+j, strings.Repeat("x", 100))}
		}
		var res error = errors.New("not acknowledged")
		return ferry.NewBatch(items, func(err error) {
			res = err
			if err == nil {
				for _, e := range items {
					acked[e.Line] = true
				}
			}
		}), &res
	}
	i := 0
	var sendErr error
	for ; i < 10000; i++ {
		b, res := batch(i)
		sendErr = d.Send(context.Background(), b)
		if sendErr != nil {
			if !errors.Is(sendErr, syscall.ENOSPC) || !errors.Is(*res, syscall.ENOSPC) || ferry.Settled(*res) {
				t.Fatalf("Send = %v, ack = %v; want a retryable ENOSPC", sendErr, *res)
			}
			break
		}
	}
	if sendErr == nil {
		t.Fatal("the disk never filled")
	}
	if h := rep.health(); h != ferry.Failing {
		t.Fatalf("health %v after ENOSPC, want failing", h)
	}
	t.Logf("disk full after %d batches: %v; buffer %+v", i, sendErr, d.Stats())
	inner.Reset() // the receiver is back: segments are delivered and freed
	mustWait(t, "a write to succeed again", 60*time.Second, func() bool {
		i++
		b, res := batch(i)
		return d.Send(context.Background(), b) == nil && *res == nil
	})
	if h := rep.health(); h != ferry.Healthy {
		t.Fatalf("health %v after the disk has room, want healthy", h)
	}
	mustWait(t, "everything delivered", 60*time.Second, func() bool { return d.Stats().Records == 0 })
	got := map[string]bool{}
	for _, e := range inner.Items() {
		got[e.Line] = true
	}
	for l := range acked {
		if !got[l] {
			t.Fatalf("acknowledged %q lost", l)
		}
	}
	t.Logf("%d acknowledged lines, all delivered; write errors %d", len(acked), d.Stats().WriteErrors)
}

// bufHealthReporter records the last health.
type bufHealthReporter struct {
	bufCountingReporter
	hmu sync.Mutex
	h   ferry.Health
}

func (r *bufHealthReporter) SetHealth(h ferry.Health, _ error) {
	r.hmu.Lock()
	defer r.hmu.Unlock()
	r.h = h
}

func (r *bufHealthReporter) health() ferry.Health {
	r.hmu.Lock()
	defer r.hmu.Unlock()
	return r.h
}

// TestBufferRotationOutage: a file rotated faster than the receiver's
// outage lasts. Without a buffer, the source stops reading when the Loki
// sink is full, and the generations renamed away twice meanwhile are gone
// before it reads them: lines are lost. With the buffer, the source goes on
// reading into it during the outage, and nothing is lost.
func TestBufferRotationOutage(t *testing.T) {
	vl := peers.StartVictoriaLogs(t)
	outage := 5 * time.Second
	scenario := func(buffered bool) (written, stored int) {
		dir := t.TempDir()
		logDir := filepath.Join(dir, "logs")
		os.Mkdir(logDir, 0o755)
		pf, err := positions.Open(filepath.Join(dir, "positions.json"), positions.Options{})
		if err != nil {
			t.Fatal(err)
		}
		run := fmt.Sprintf("%d-%v", time.Now().UnixNano(), buffered)
		b := pipeline.New(pipeline.WithDrainTimeout(5 * time.Second))
		m := pipeline.Discover(b, "files", &file.Discoverer{RefreshInterval: 200 * time.Millisecond,
			Patterns: []file.Pattern{{Path: filepath.Join(logDir, "app.log"), Labels: labels.FromStrings("job", "rotation", "run", run)}}})
		logs := pipeline.FromTargets(b, "tail", &filetail.Source{PositionsFile: pf, SaveInterval: time.Second,
			StartAt: filetail.StartBeginning, PollInterval: 50 * time.Millisecond, RotateWait: 100 * time.Millisecond}, m)
		var s sink.Sink[ferry.Entry] = &loki.Sink{URL: vl.PushURL(), BatchWait: 100 * time.Millisecond,
			MinBackoff: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond, MaxRetries: -1, MaxBufferedBytes: 256 << 10}
		if buffered {
			s = buffer.Wrap(filepath.Join(dir, "buffer"), &loki.Sink{URL: vl.PushURL(), BatchWait: 100 * time.Millisecond,
				MinBackoff: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond, MaxRetries: 2, MaxBufferedBytes: 256 << 10},
				buffer.Options{MaxBytes: 256 << 20, SyncInterval: 100 * time.Millisecond, MaxBackoff: 500 * time.Millisecond})
		}
		pipeline.To(b, "loki", s, logs)
		p, err := b.Build()
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- p.Run(ctx) }()

		// 2,000 lines/s, a rotation every second: five rotations during
		// the outage, while the rotated file is kept only until the next.
		// (RotateWait is short so that the rotation alone loses nothing.)
		w := &fileWriter{dir: logDir, rate: 2000, rotate: 2000, pad: 200}
		werr := make(chan error, 1)
		go func() { werr <- w.run(context.Background(), 16000) }()
		filter := fmt.Sprintf(`run:=%q`, run)
		mustWait(t, "the first lines stored", 60*time.Second, func() bool { return countLogs(t, vl.URL, filter) > 0 })
		vl.Stop()
		time.Sleep(outage) // the outage under test
		vl.Start()
		if err := <-werr; err != nil {
			t.Fatal(err)
		}
		want := newTally()
		want.expectWritten(w, nil)
		lost, _, _, _ := want.awaitSettled(t, vl.URL, filter, 5*time.Second, 90*time.Second)
		if d, ok := s.(*buffer.Disk[ferry.Entry]); ok {
			t.Logf("buffer: %+v", d.Stats())
		}
		cancel()
		<-done
		return len(want.want), len(want.want) - lost
	}

	written, stored := scenario(false)
	t.Logf("without a buffer: %d lines written, %d stored, %d lost", written, stored, written-stored)
	if stored == written {
		t.Errorf("without a buffer nothing was lost: the scenario does not show the loss the buffer prevents")
	}
	written, stored = scenario(true)
	t.Logf("with a buffer: %d lines written, %d stored, %d lost", written, stored, written-stored)
	if stored != written {
		t.Fatalf("with a buffer %d of %d lines lost", written-stored, written)
	}
}

// TestBufferPrometheusCatchUp builds a backlog of 500 series × 240 samples
// (30 minutes of a 7.5s interval) while Prometheus 3 is down, starts it,
// and measures how fast the buffer and the remote-write sink catch up:
// every sample must be stored.
func TestBufferPrometheusCatchUp(t *testing.T) {
	prom := peers.StartPrometheus3(t, "global:\n  scrape_interval: 1m\nstorage:\n  tsdb:\n    out_of_order_time_window: 3h\n")
	prom.Stop()
	const series, per = 500, 240
	now := time.Now()
	rw := &remotewrite.Sink{URL: prom.WriteURL(), MinBackoff: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond}
	d := buffer.Wrap(filepath.Join(t.TempDir(), "buf"), rw, buffer.Options{MaxBytes: 256 << 20, SyncInterval: 100 * time.Millisecond})
	if err := d.Start(context.Background(), &bufCountingReporter{}); err != nil {
		t.Fatal(err)
	}
	lbls := make([]labels.Labels, series)
	for i := range lbls {
		lbls[i] = labels.FromStrings("__name__", "ferry_buffer_catchup", "instance", fmt.Sprintf("host-%03d:9100", i), "job", "node")
	}
	// One batch per scrape interval, as a scraper sends them.
	acks := make(chan error, per)
	for k := range per {
		batch := make([]ferry.Sample, series)
		ts := now.Add(-30*time.Minute + time.Duration(k)*7500*time.Millisecond).UnixMilli()
		for i := range batch {
			batch[i] = ferry.Sample{Labels: lbls[i], T: ts, V: float64(k)}
		}
		d.Send(context.Background(), ferry.NewBatch(batch, func(err error) { acks <- err }))
	}
	for range per {
		if err := <-acks; err != nil {
			t.Fatal(err)
		}
	}
	backlog := d.Stats()
	began := time.Now()
	prom.Start()
	mustWait(t, "the backlog delivered", 180*time.Second, func() bool { return d.Stats().Records == 0 })
	took := time.Since(began)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	d.Close(ctx)
	cancel()
	res := prom.Query(t, `sum(count_over_time(ferry_buffer_catchup[1h]))`, now)
	got := 0.0
	if len(res) == 1 {
		got = res[0].Float(t)
	}
	t.Logf("backlog of %d samples (%d bytes on disk) delivered %v after Prometheus started: %.0f samples/s including its start (ingest rate of the scraper: %d samples/s)",
		backlog.Items, backlog.Bytes, took.Round(time.Millisecond), float64(backlog.Items)/took.Seconds(), series*2/15)
	if got != series*per {
		t.Fatalf("%v of %d samples stored", got, series*per)
	}
}
