package dockerlogs

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/client"
	"github.com/docker/docker/errdefs"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/discovery/docker"
	"github.com/ferrydev/ferry/internal/poll"
	"github.com/ferrydev/ferry/positions"
	"github.com/ferrydev/ferry/relabel"
	"github.com/ferrydev/ferry/source"
)

// fakeEngine serves one stopped container's log from memory, honouring
// since as the daemon does (lines at or after it), and can fail or forget
// the container.
type fakeEngine struct {
	client.APIClient
	mu      sync.Mutex
	lines   []fakeLine
	fail    error
	removed bool
	opens   []string // the since of each ContainerLogs call
	raw     []byte   // if set, the log served, whatever since is
	cut     int      // if > 0, the next log served breaks after that many bytes
	// omit leaves the lines with these texts out of the next log served,
	// as Docker 20.10 following a log that rotates fast skips a rotated
	// file; later logs have them.
	omit map[string]bool
	// runOpens, if > 0, is how many logs are opened while the container
	// still runs (FinishedAt empty); it stops as the last one ends.
	runOpens int

	// Inspections: how many per container, how many at once at most,
	// each taking inspectDelay.
	inspectDelay          time.Duration
	inspected             map[string]int
	inflight, maxInflight atomic.Int64
	// events, if set, is the event stream; eventErrs ends it.
	events    chan events.Message
	eventErrs chan error
	read      atomic.Int64
}

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

type fakeLine struct {
	ts     int64
	stream byte
	text   string
}

func (f *fakeEngine) ContainerInspect(_ context.Context, id string) (container.InspectResponse, error) {
	n := f.inflight.Add(1)
	defer f.inflight.Add(-1)
	for m := f.maxInflight.Load(); n > m && !f.maxInflight.CompareAndSwap(m, n); m = f.maxInflight.Load() {
	}
	time.Sleep(f.inspectDelay) // a slow engine, when a test asks for one
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.inspected == nil {
		f.inspected = map[string]int{}
	}
	f.inspected[id]++
	if f.removed {
		return container.InspectResponse{}, errdefs.NotFound(errors.New("no such container"))
	}
	if f.fail != nil {
		return container.InspectResponse{}, f.fail
	}
	return container.InspectResponse{
		ContainerJSONBase: &container.ContainerJSONBase{State: f.state()},
		Config:            &container.Config{},
	}, nil
}

func (f *fakeEngine) ContainerLogs(_ context.Context, _ string, o container.LogsOptions) (io.ReadCloser, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.opens = append(f.opens, o.Since)
	if f.fail != nil {
		return nil, f.fail
	}
	if f.raw != nil {
		return io.NopCloser(countingReader{bytes.NewReader(f.raw), &f.read}), nil
	}
	var since int64
	if o.Since != "" {
		sec, nsec, _ := strings.Cut(o.Since, ".")
		s, _ := strconv.ParseInt(sec, 10, 64)
		n, _ := strconv.ParseInt(nsec, 10, 64)
		since = s*1e9 + n
	}
	omit := f.omit
	f.omit = nil
	var b []byte
	for _, l := range f.lines {
		if l.ts < since || omit[l.text] {
			continue
		}
		// As the daemon does, a line over 16 KiB comes in parts, each
		// stamped like the first, the last one ending with the newline
		// (and empty when the line is a multiple of the part size).
		stamp := time.Unix(0, l.ts).UTC().Format("2006-01-02T15:04:05.000000000Z07:00") + " "
		text := l.text
		for {
			p := stamp + text + "\n"
			if len(text) >= dockerPartialSize {
				p, text = stamp+text[:dockerPartialSize], text[dockerPartialSize:]
			}
			h := make([]byte, 8)
			h[0] = l.stream
			binary.BigEndian.PutUint32(h[4:], uint32(len(p)))
			b = append(append(b, h...), p...)
			if p[len(p)-1] == '\n' {
				break
			}
		}
	}
	if f.cut > 0 && f.cut < len(b) {
		b, f.cut = b[:f.cut], 0
		return io.NopCloser(io.MultiReader(bytes.NewReader(b), errReader{errors.New("connection reset")})), nil
	}
	return io.NopCloser(strings.NewReader(string(b))), nil
}

// state is the container's state; f.mu is held.
func (f *fakeEngine) state() *container.State {
	if len(f.opens) < f.runOpens {
		return &container.State{Running: true}
	}
	return &container.State{Running: false, FinishedAt: strconv.Itoa(len(f.lines))}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func (f *fakeEngine) Events(ctx context.Context, _ events.ListOptions) (<-chan events.Message, <-chan error) {
	if f.events != nil {
		return f.events, f.eventErrs
	}
	return make(chan events.Message), make(chan error)
}

// inspections returns how many times each container was inspected.
func (f *fakeEngine) inspections() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := make(map[string]int, len(f.inspected))
	for id, n := range f.inspected {
		m[id] = n
	}
	return m
}

type nopRep struct{}

func (nopRep) Logger() *slog.Logger          { return slog.New(slog.DiscardHandler) }
func (nopRep) SetHealth(ferry.Health, error) {}
func (nopRep) Dropped(string, int)           {}
func (nopRep) Retried()                      {}

// mustStart starts s with r; the fake engine cannot make Start fail.
func mustStart(s *Source, r ferry.Reporter) {
	if err := s.Start(context.Background(), r); err != nil {
		panic(err)
	}
}

// runOnC1 runs s in the background on the fake's container c1, sending
// to out; Run's result comes on done after cancel.
func runOnC1(s *Source, out chan ferry.Batch[ferry.Entry]) (cancel context.CancelFunc, done <-chan error) {
	ctx, cancel := context.WithCancel(ferry.WithReporter(context.Background(), nopRep{}))
	targets := make(chan []labels.Labels, 1)
	targets <- []labels.Labels{labels.FromStrings(docker.LabelContainerID, "c1")}
	d := make(chan error, 1)
	mustStart(s, nopRep{})
	go func() { d <- s.Run(ctx, targets, out) }()
	return cancel, d
}

// runFake runs a Source on f until want entries arrived, acknowledging
// them, and returns them.
func runFake(t *testing.T, s *Source, want int) []string {
	t.Helper()
	out := make(chan ferry.Batch[ferry.Entry])
	cancel, done := runOnC1(s, out)
	var got []string
	timeout := time.After(10 * time.Second)
	for len(got) < want {
		select {
		case b := <-out:
			for _, e := range b.Items {
				got = append(got, e.Line)
			}
			b.Done(nil)
		case <-timeout:
			t.Fatalf("got %d lines %v, want %d", len(got), got, want)
		}
	}
	// Nothing more comes.
	select {
	case b := <-out:
		t.Fatalf("extra batch %v", b.Items)
	case <-time.After(200 * time.Millisecond):
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	return got
}

// TestResumeEqualTimestamps: lines sharing a nanosecond timestamp are
// skipped on resume exactly as far as they were delivered.
func TestResumeEqualTimestamps(t *testing.T) {
	base := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC).UnixNano()
	f := &fakeEngine{}
	for i, ts := range []int64{base, base + 1, base + 1, base + 1, base + 2} {
		f.lines = append(f.lines, fakeLine{ts: ts, stream: 1, text: fmt.Sprintf("line %d", i)})
	}
	pf, err := positions.Open(t.TempDir()+"/p.json", positions.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// First run: only two of the three lines at base+1 were delivered.
	f.lines = f.lines[:3]
	got := runFake(t, &Source{Client: f, PositionsFile: pf}, 3)
	if strings.Join(got, ",") != "line 0,line 1,line 2" {
		t.Fatalf("first run %v", got)
	}
	since := base + 1 - 1e9 // the newest line less the skew window
	if v, _ := pf.Get("docker/c1"); v != fmt.Sprintf("%d:3:%d", since, base+1) {
		t.Fatalf("position %q", v)
	}
	// The rest arrives; a new Source resumes.
	for i, ts := range []int64{base + 1, base + 2} {
		f.lines = append(f.lines, fakeLine{ts: ts, stream: 2, text: fmt.Sprintf("line %d", i+3)})
	}
	got = runFake(t, &Source{Client: f, PositionsFile: pf}, 2)
	if strings.Join(got, ",") != "line 3,line 4" {
		t.Fatalf("second run %v", got)
	}
	if want := fmt.Sprintf("%d.%09d", since/1e9, since%1e9); f.opens[len(f.opens)-1] != want {
		t.Errorf("since %q, want %q", f.opens[len(f.opens)-1], want)
	}
	// Removed: the position goes once everything is settled.
	f.removed = true
	s := &Source{Client: f, PositionsFile: pf}
	cancel, done := runOnC1(s, make(chan ferry.Batch[ferry.Entry]))
	poll.Until(t, func() bool {
		s.mu.Lock()
		r := s.cur
		s.mu.Unlock()
		if r == nil {
			return false
		}
		r.mu.Lock()
		c := r.ctrs["c1"]
		r.mu.Unlock()
		if c == nil {
			return false
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.removed
	}, "c1 to be found removed")
	cancel()
	<-done
	s.Close(context.Background())
	if _, ok := pf.Get("docker/c1"); ok {
		t.Error("position of a removed container kept")
	}
}

// TestFailingEngineRetried: a failing engine is retried with backoff, not
// fatal, and reading resumes when it is back.
func TestFailingEngineRetried(t *testing.T) {
	f := &fakeEngine{fail: errors.New("connection refused")}
	f.lines = []fakeLine{{ts: 1e18, stream: 1, text: "a"}, {ts: 1e18 + 5, stream: 2, text: "b"}}
	go func() {
		time.Sleep(600 * time.Millisecond) // the engine fails a while: the thing under test
		f.mu.Lock()
		f.fail = nil
		f.mu.Unlock()
	}()
	got := runFake(t, &Source{Client: f}, 2)
	if strings.Join(got, ",") != "a,b" {
		t.Fatalf("got %v", got)
	}
}

func TestPosition(t *testing.T) {
	for _, s := range []string{"0:0:0", "1732530000123456789:3:1732530000123456790"} {
		p, ok := parsePosition(s)
		if !ok || p.String() != s {
			t.Errorf("%s: %v %v", s, p, ok)
		}
	}
	for _, s := range []string{"", "x", "17", "1:2", "-1:0:0", "1:x:0", "1:-1:0", "1:1:x", "1:1:1:1"} {
		if _, ok := parsePosition(s); ok {
			t.Errorf("%q accepted", s)
		}
	}
}

// TestHistory: the position after a reading is a since and a count of
// lines to skip that works for lines stamped out of order, and for more
// lines than the history holds.
func TestHistory(t *testing.T) {
	var h history
	h.reset(position{})
	if p := h.position(); p != (position{}) {
		t.Fatalf("empty: %v", p)
	}
	// stdout at 10s, then stderr stamped earlier, written after it.
	h.record(10e9, 0)
	h.record(10e9-5, 0)
	h.record(10e9+1, 0)
	if p := h.position(); p != (position{Since: 9e9 + 1, Skip: 3, Newest: 10e9 + 1}) {
		t.Errorf("skewed: %v", p)
	}
	// A reading that started at a position counts the lines it skipped.
	h.reset(position{Since: 5e9, Skip: 2, Newest: 5e9})
	h.record(5e9, 0)
	h.record(5e9, 0)
	h.record(5e9+1, 0)
	if p := h.position(); p != (position{Since: 5e9, Skip: 3, Newest: 5e9 + 1}) {
		t.Errorf("resumed: %v", p)
	}
	// Many lines in the window: the ring bounds it.
	h.reset(position{})
	for i := range 3 * historySize {
		h.record(int64(1e12+i), 0)
	}
	p := h.position()
	if p.Since != 1e12+2*historySize || p.Skip != historySize || p.Newest != 1e12+3*historySize-1 {
		t.Errorf("ring: %v", p)
	}
}

// BenchmarkSourceLines measures the whole path of a line through a Source:
// decoding, skipping, labels, batching, sending and acknowledging, with the
// engine faked in memory (the log of one container of 100k lines).
//
//	go test -run '^$' -bench BenchmarkSourceLines -benchmem ./source/dockerlogs
func BenchmarkSourceLines(b *testing.B) {
	const n = 100000
	raw, _ := benchLog(n)
	f := &fakeEngine{raw: raw}
	rules := []relabel.Rule{relabel.Replace([]string{LabelLogStream}, "(.*)", "stream", "$1")}
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	for b.Loop() {
		readN(&Source{Client: f, Rules: rules}, labels.FromStrings(docker.LabelContainerID, "c1", docker.LabelContainerName, "/bench"), n)
	}
	runtime.ReadMemStats(&m1)
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "lines/s")
	b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/float64(n*b.N), "allocs/line")
}

// readN runs s on the one target until n lines were delivered, each
// batch acknowledged as it comes, and stops it.
func readN(s *Source, target labels.Labels, n int) {
	ctx, cancel := context.WithCancel(ferry.WithReporter(context.Background(), nopRep{}))
	targets := make(chan []labels.Labels, 1)
	out := make(chan ferry.Batch[ferry.Entry], 4)
	done := make(chan error, 1)
	mustStart(s, nopRep{})
	go func() { done <- s.Run(ctx, targets, out) }()
	targets <- []labels.Labels{target}
	for got := 0; got < n; {
		bt := <-out
		got += len(bt.Items)
		bt.Done(nil)
	}
	cancel()
	<-done
}

// TestFailedBatchIsReadAgain: a batch the sink fails (not permanently) is
// read again within the same Run, and the position ends past everything.
func TestFailedBatchIsReadAgain(t *testing.T) {
	f := &fakeEngine{}
	for i := range 50 {
		f.lines = append(f.lines, fakeLine{ts: 1e18 + int64(i), stream: 1, text: fmt.Sprintf("line %d", i)})
	}
	s := &Source{Client: f, BatchSize: 10}
	out := make(chan ferry.Batch[ferry.Entry])
	cancel, done := runOnC1(s, out)
	defer cancel()
	seen := map[string]int{}
	batches := 0
	timeout := time.After(10 * time.Second)
	for len(seen) < 50 {
		select {
		case b := <-out:
			batches++
			if batches == 2 {
				b.Done(errors.New("sink unavailable"))
				continue
			}
			for _, e := range b.Items {
				seen[e.Line]++
			}
			b.Done(nil)
		case <-timeout:
			t.Fatalf("got %d distinct lines", len(seen))
		}
	}
	cancel()
	<-done
	if p, _ := s.load("docker/c1"); p.Newest != 1e18+49 || p.Skip != 50 {
		t.Errorf("position %v", p)
	}
}

// TestResumeSkewedStreams: the daemon stamps stdout and stderr separately,
// so a stderr line can follow, in the log, a stdout line stamped later. A
// restart of the program between the two must not lose the stderr line.
func TestResumeSkewedStreams(t *testing.T) {
	f := &fakeEngine{lines: []fakeLine{{ts: 10e9, stream: 1, text: "A"}}}
	pf, err := positions.Open(t.TempDir()+"/p.json", positions.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := runFake(t, &Source{Client: f, PositionsFile: pf}, 1); strings.Join(got, ",") != "A" {
		t.Fatalf("first run %v", got)
	}
	f.lines = append(f.lines, fakeLine{ts: 10e9 - 5, stream: 2, text: "B"}, fakeLine{ts: 10e9 + 7, stream: 1, text: "C"})
	if got := runFake(t, &Source{Client: f, PositionsFile: pf}, 2); strings.Join(got, ",") != "B,C" {
		t.Fatalf("second run %v", got)
	}
}

// TestLastBatchFailedIsReadAgain: when the last batch of a stopped
// container fails, nothing comes after it to notice, yet it is read again.
func TestLastBatchFailedIsReadAgain(t *testing.T) {
	f := &fakeEngine{lines: []fakeLine{{ts: 1e18, stream: 1, text: "only"}}}
	s := &Source{Client: f, RefreshInterval: 50 * time.Millisecond}
	out := make(chan ferry.Batch[ferry.Entry])
	cancel, done := runOnC1(s, out)
	defer cancel()
	b := <-out
	b.Done(errors.New("sink unavailable"))
	select {
	case b = <-out:
		if len(b.Items) != 1 || b.Items[0].Line != "only" {
			t.Fatalf("again: %v", b.Items)
		}
		b.Done(nil)
	case <-time.After(5 * time.Second):
		t.Fatal("the failed batch was not read again")
	}
	cancel()
	<-done
	if p, ok := s.load("docker/c1"); !ok || p.Newest != 1e18 {
		t.Errorf("position %v %v", p, ok)
	}
}

// TestBackpressure: while nobody takes its batches, a reader stops reading:
// it holds at most a batch being sent, a batch filling and its buffer.
func TestBackpressure(t *testing.T) {
	raw, _ := benchLog(100000)
	f := &fakeEngine{raw: raw}
	s := &Source{Client: f, BatchSize: 100}
	out := make(chan ferry.Batch[ferry.Entry]) // never read until later
	cancel, done := runOnC1(s, out)
	time.Sleep(500 * time.Millisecond) // time for a reader that ignores backpressure to read on
	perLine := len(raw) / 100000
	if n := f.read.Load(); n > int64(2*100*perLine+64<<10) {
		t.Errorf("read %d bytes of %d while blocked", n, len(raw))
	}
	// Released, everything arrives.
	got := 0
	for got < 100000 {
		b := <-out
		got += len(b.Items)
		b.Done(nil)
	}
	cancel()
	<-done
}

// The source reports its acknowledged positions (source.PositionReporter),
// which the pipeline's debug page shows; no production source did before.
func TestPositionsReported(t *testing.T) {
	var _ source.PositionReporter = (*Source)(nil)
	f := &fakeEngine{lines: []fakeLine{{ts: 1e18, stream: 1, text: "one"}}}
	s := &Source{Client: f}
	if got := s.Positions(); len(got) != 0 {
		t.Errorf("before Start: %v", got)
	}
	out := make(chan ferry.Batch[ferry.Entry])
	cancel, done := runOnC1(s, out)
	b := <-out
	b.Done(nil)
	poll.Until(t, func() bool { return s.Positions()[PositionPrefix+"c1"] != "" }, "the position of c1")
	cancel()
	<-done
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := s.Positions(); len(got) != 1 {
		t.Errorf("Positions = %v, want c1 only", got)
	}
}

// Configuration errors fail Validate (so pipeline.Build) and Start, and Run
// before Start fails without reading.
func TestValidateAndStart(t *testing.T) {
	bad := &Source{Client: &fakeEngine{}, Rules: []relabel.Rule{relabel.Keep([]string{"a"}, "(")}}
	if err := bad.Validate(); err == nil {
		t.Error("Validate accepted an invalid rule")
	}
	if err := bad.Start(context.Background(), nopRep{}); err == nil {
		t.Error("Start accepted an invalid rule")
	}
	if err := bad.Run(context.Background(), nil, nil); !errors.Is(err, ErrNotStarted) || ferry.IsPermanent(err) {
		t.Errorf("Run before Start = %v, want ErrNotStarted", err)
	}
	if err := bad.Close(context.Background()); err != nil {
		t.Errorf("Close without Start: %v", err)
	}
}
