package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/discovery"
	"github.com/ferrydev/ferry/internal/poll"
	"github.com/ferrydev/ferry/pipeline"
	"github.com/ferrydev/ferry/process"
	"github.com/ferrydev/ferry/relabel"
	"github.com/ferrydev/ferry/sink/sinktest"
	"github.com/ferrydev/ferry/source"
	"github.com/prometheus/prometheus/model/labels"
)

// counter is a source that emits numbered entries without end and records
// the outcome of every batch, as a source with positions would.
type counter struct {
	batch int
	limit int // stop after this many entries when > 0
	fail  error

	mu      sync.Mutex
	next    int
	emitted int // entries handed to the pipeline
	acked   map[int]error
	runs    int
}

func (c *counter) Run(ctx context.Context, out chan<- ferry.Batch[ferry.Entry]) error {
	c.mu.Lock()
	c.runs++
	fail := c.fail
	c.fail = nil
	if c.acked == nil {
		c.acked = map[int]error{}
	}
	c.mu.Unlock()
	if fail != nil {
		return fail
	}
	for {
		c.mu.Lock()
		if c.limit > 0 && c.next >= c.limit {
			c.mu.Unlock()
			return nil
		}
		first := c.next
		items := make([]ferry.Entry, c.batch)
		for i := range items {
			items[i] = ferry.Entry{Labels: labels.FromStrings("job", "t"), Line: fmt.Sprint(first + i)}
		}
		c.next += c.batch
		c.mu.Unlock()
		b := ferry.NewBatch(items, func(err error) {
			c.mu.Lock()
			if _, dup := c.acked[first]; dup {
				panic("batch acknowledged twice")
			}
			c.acked[first] = err
			c.mu.Unlock()
		})
		if err := source.Send(ctx, out, b); err != nil {
			// The source gave this batch up itself; it was never emitted.
			c.mu.Lock()
			delete(c.acked, first)
			c.mu.Unlock()
			return nil
		}
		c.mu.Lock()
		c.emitted += c.batch
		c.mu.Unlock()
	}
}

func (c *counter) snapshot() (emitted int, acked map[int]error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := make(map[int]error, len(c.acked))
	for k, v := range c.acked {
		m[k] = v
	}
	return c.emitted, m
}

func run(t *testing.T, p *pipeline.Pipeline, ctx context.Context) chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	return done
}

func wait(t *testing.T, done chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return")
		return nil
	}
}

func TestDrainOnCancelLosesNothing(t *testing.T) {
	src := &counter{batch: 10}
	fake := &sinktest.Sink[ferry.Entry]{}
	b := pipeline.New(pipeline.WithDrainTimeout(5 * time.Second))
	s := pipeline.FromSource(b, "counter", src)
	s = pipeline.Process(b, "noop", process.Map(func(*ferry.Entry) {}), s)
	pipeline.To(b, "fake", fake, s)
	p, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := run(t, p, ctx)
	if !fake.WaitLen(500, 10*time.Second) {
		t.Fatal("nothing arrived")
	}
	cancel()
	if err := wait(t, done); err != nil {
		t.Fatalf("Run: %v", err)
	}
	emitted, acked := src.snapshot()
	got := map[string]bool{}
	for _, e := range fake.Items() {
		got[e.Line] = true
	}
	// Every batch the source handed over was acknowledged, and every one
	// acknowledged as delivered is in the sink.
	if len(acked)*10 < emitted {
		t.Fatalf("emitted %d entries, only %d batches acknowledged", emitted, len(acked))
	}
	for first, err := range acked {
		if err != nil {
			t.Errorf("batch %d acknowledged with %v after a clean drain", first, err)
			continue
		}
		for i := first; i < first+10; i++ {
			if !got[fmt.Sprint(i)] {
				t.Fatalf("entry %d acknowledged as delivered but not in the sink", i)
			}
		}
	}
	if fake.Closed() != 1 {
		t.Fatalf("sink closed %d times", fake.Closed())
	}
}

func TestAckOnlyAfterSinkAccepted(t *testing.T) {
	src := &counter{batch: 5, limit: 5}
	fake := &sinktest.Sink[ferry.Entry]{}
	fake.Block()
	b := pipeline.New()
	pipeline.To(b, "fake", fake, pipeline.FromSource(b, "one", src))
	p, _ := b.Build()
	done := run(t, p, context.Background())
	poll.Until(t, func() bool { st, _ := p.Component("fake"); return st.ItemsIn == 5 }, "the batch reached the blocked sink")
	if _, acked := src.snapshot(); len(acked) != 0 {
		t.Fatalf("acknowledged before the sink accepted: %v", acked)
	}
	fake.Unblock()
	if err := wait(t, done); err != nil {
		t.Fatal(err)
	}
	if _, acked := src.snapshot(); len(acked) != 1 || acked[0] != nil {
		t.Fatalf("acks %v, want one nil", acked)
	}
}

func TestBlockedSinkBoundsMemory(t *testing.T) {
	src := &counter{batch: 100}
	fake := &sinktest.Sink[ferry.Entry]{}
	fake.Block()
	b := pipeline.New(pipeline.WithBuffer(2), pipeline.WithDrainTimeout(time.Second))
	s := pipeline.Process(b, "noop", process.Map(func(*ferry.Entry) {}), pipeline.FromSource(b, "counter", src))
	pipeline.To(b, "fake", fake, s)
	p, _ := b.Build()
	ctx, cancel := context.WithCancel(context.Background())
	done := run(t, p, ctx)
	// Wait until the sink's queue is full and the source has stopped
	// (its count unchanged for 20ms); then watch it stay stopped
	// for 300ms: that pause is what is under test.
	var e1 int
	changed := time.Now()
	poll.Until(t, func() bool {
		if e, _ := src.snapshot(); e != e1 {
			e1, changed = e, time.Now()
		}
		st, _ := p.Component("fake")
		return time.Since(changed) > 20*time.Millisecond && st.QueueLen == st.QueueCap
	}, "the pipeline to fill up")
	time.Sleep(300 * time.Millisecond) // the pause under test
	e2, _ := src.snapshot()
	// Source buffer, forwarder, processor input, processor, sink input and
	// the blocked Send hold at most 2+1+2+1+2+1 batches.
	if e2 != e1 || e2 > 9*100 {
		t.Fatalf("source kept reading into a blocked pipeline: %d then %d entries", e1, e2)
	}
	if st, _ := p.Component("fake"); st.QueueLen != st.QueueCap {
		t.Fatalf("sink queue %d/%d, want full", st.QueueLen, st.QueueCap)
	}
	cancel()
	if err := wait(t, done); !errors.Is(err, ferry.ErrUndelivered) {
		t.Fatalf("Run: %v, want ferry.ErrUndelivered", err)
	}
	// The blocked sink gave up at the deadline: nothing is acknowledged as
	// delivered, everything is acknowledged.
	emitted, acked := src.snapshot()
	if len(acked)*100 != emitted {
		t.Fatalf("%d entries emitted, %d batches acknowledged", emitted, len(acked))
	}
	for _, err := range acked {
		if err == nil {
			t.Fatal("undelivered batch acknowledged as delivered")
		}
	}
}

func TestFailingSourceRestartsAndRecovers(t *testing.T) {
	src := &counter{batch: 1, limit: 3, fail: errors.New("daemon unreachable")}
	fake := &sinktest.Sink[ferry.Entry]{}
	fake.Block()
	b := pipeline.New(pipeline.WithBackoff(200*time.Millisecond, time.Second))
	pipeline.To(b, "fake", fake, pipeline.FromSource(b, "flaky", src))
	p, _ := b.Build()
	done := run(t, p, context.Background())
	poll.Until(t, func() bool { st, _ := p.Component("flaky"); return st.Health == ferry.Failing }, "the source failed")
	st, _ := p.Component("flaky")
	if st.Health != ferry.Failing || !strings.Contains(st.LastError, "daemon unreachable") {
		t.Fatalf("health %v %q, want failing with the error", st.Health, st.LastError)
	}
	fake.Unblock()
	if err := wait(t, done); err != nil {
		t.Fatal(err)
	}
	st, _ = p.Component("flaky")
	if st.Health != ferry.Healthy || st.Restarts != 1 || st.ItemsOut != 3 {
		t.Fatalf("after restart: %+v", st)
	}
	if fake.Len() != 3 {
		t.Fatalf("sink got %d", fake.Len())
	}
}

func TestPermanentFailureIsNotRestarted(t *testing.T) {
	src := &counter{batch: 1, limit: 1, fail: ferry.Permanent(errors.New("bad config"))}
	b := pipeline.New(pipeline.WithBackoff(time.Millisecond, time.Millisecond))
	pipeline.To(b, "fake", &sinktest.Sink[ferry.Entry]{}, pipeline.FromSource(b, "broken", src))
	p, _ := b.Build()
	err := p.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "bad config") {
		t.Fatalf("Run: %v", err)
	}
	if src.runs != 1 {
		t.Fatalf("ran %d times", src.runs)
	}
}

func TestBuildListsEveryProblem(t *testing.T) {
	b := pipeline.New()
	a := pipeline.FromSource(b, "logs", &source.Slice[ferry.Entry]{})
	pipeline.FromSource(b, "logs", &source.Slice[ferry.Entry]{})   // duplicate
	pipeline.FromSource(b, "unused", &source.Slice[ferry.Entry]{}) // never consumed
	bad := pipeline.Relabel(b, "bad rules", []relabel.Rule{relabel.Replace(nil, "(", "x", "")}, a)
	pipeline.To(b, "out", &sinktest.Sink[ferry.Entry]{}, bad)
	pipeline.To[ferry.Entry](b, "", nil, a)                     // empty name, nil sink
	targets := pipeline.Discover(b, "disc", discovery.Static{}) // never consumed
	_ = targets
	_, err := b.Build()
	if err == nil {
		t.Fatal("Build accepted a broken graph")
	}
	for _, want := range []string{
		`"logs": name already used`,
		`source "unused": output is not consumed`,
		`discoverer "disc": output is not consumed`,
		`processor "bad rules": relabel rule 0`,
		`sink: empty name`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	b2 := pipeline.New()
	pipeline.To(b2, "nil sink", (*sinktest.Sink[ferry.Entry])(nil), pipeline.FromSource(b2, "s", &source.Slice[ferry.Entry]{}))
	if _, err := b2.Build(); err == nil || !strings.Contains(err.Error(), "component is nil") {
		t.Fatalf("nil sink: %v", err)
	}
}

func TestFanOutAndFanIn(t *testing.T) {
	var acks atomic.Int32
	var ackErr atomic.Value
	mk := func(name string) *source.Slice[ferry.Entry] {
		return &source.Slice[ferry.Entry]{
			Items:     []ferry.Entry{{Line: name + "1"}, {Line: name + "2"}},
			BatchSize: 1,
			Acked: func(err error) {
				acks.Add(1)
				if err != nil {
					ackErr.Store(err)
				}
			},
		}
	}
	upper := &sinktest.Sink[ferry.Entry]{}
	plain := &sinktest.Sink[ferry.Entry]{}
	b := pipeline.New()
	a := pipeline.FromSource(b, "a", mk("a"))
	c := pipeline.FromSource(b, "c", mk("c"))
	// The processor modifies entries in place; the other consumer of the
	// same stream must not see that.
	up := pipeline.Process(b, "upper", process.Map(func(e *ferry.Entry) { e.Line = strings.ToUpper(e.Line) }), a, c)
	pipeline.To(b, "upper-sink", upper, up)
	pipeline.To(b, "plain-sink", plain, a, c)
	p, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if acks.Load() != 4 || ackErr.Load() != nil {
		t.Fatalf("%d acks (%v), want 4 nil: one per batch after both consumers", acks.Load(), ackErr.Load())
	}
	if got := lines(upper.Items()); got != "A1,A2,C1,C2" {
		t.Fatalf("upper got %s", got)
	}
	if got := lines(plain.Items()); got != "a1,a2,c1,c2" {
		t.Fatalf("plain got %s", got)
	}
}

func lines(es []ferry.Entry) string {
	var s []string
	for _, e := range es {
		s = append(s, e.Line)
	}
	// Fan-in interleaves sources; compare as a sorted set.
	sortStrings(s)
	return strings.Join(s, ",")
}

func sortStrings(s []string) {
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
}

func TestProcessorChainFilterFlushAndPanic(t *testing.T) {
	var acks []error
	var mu sync.Mutex
	src := &source.Slice[ferry.Entry]{
		Items:     []ferry.Entry{{Line: "keep"}, {Line: "drop"}, {Line: "boom"}, {Line: "keep2"}},
		BatchSize: 2,
		Acked:     func(err error) { mu.Lock(); acks = append(acks, err); mu.Unlock() },
	}
	hold := &holder{}
	fake := &sinktest.Sink[ferry.Entry]{}
	b := pipeline.New()
	s := pipeline.FromSource(b, "src", src)
	s = pipeline.Process(b, "filter", process.Filter(func(e *ferry.Entry) bool { return e.Line != "drop" }), s)
	s = pipeline.Process(b, "panicky", process.Func[ferry.Entry](func(_ context.Context, b ferry.Batch[ferry.Entry]) (ferry.Batch[ferry.Entry], error) {
		for _, e := range b.Items {
			if e.Line == "boom" {
				panic("bad entry")
			}
		}
		return b, nil
	}), s)
	s = pipeline.Process(b, "holder", hold, s)
	pipeline.To(b, "fake", fake, s)
	p, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := lines(fake.Items()); got != "keep" {
		t.Fatalf("sink got %q", got)
	}
	if len(acks) != 2 {
		t.Fatalf("acks %v", acks)
	}
	var nils, errs int
	for _, e := range acks {
		if e == nil {
			nils++
		} else if strings.Contains(e.Error(), "panic: bad entry") {
			errs++
		}
	}
	if nils != 1 || errs != 1 {
		t.Fatalf("acks %v: want one delivered (after the flush) and one failed by the panic", acks)
	}
	st, _ := p.Component("panicky")
	if st.Health != ferry.Degraded || st.Dropped["processor_error"] != 2 {
		t.Fatalf("panicky status %+v", st)
	}
	if st, _ := p.Component("filter"); st.ItemsIn != 4 || st.ItemsOut != 3 {
		t.Fatalf("filter counts %+v", st)
	}
}

// holder keeps every entry until flushed, as a multiline stage does.
type holder struct {
	items []ferry.Entry
	acks  []*ferry.Ack
}

func (h *holder) Process(_ context.Context, b ferry.Batch[ferry.Entry]) (ferry.Batch[ferry.Entry], error) {
	h.items = append(h.items, b.Items...)
	h.acks = append(h.acks, b.Ack)
	return ferry.Batch[ferry.Entry]{}, nil
}

func (h *holder) Flush(context.Context) (ferry.Batch[ferry.Entry], error) {
	b := ferry.Batch[ferry.Entry]{Items: h.items, Ack: ferry.JoinAcks(h.acks...)}
	h.items, h.acks = nil, nil
	return b, nil
}

// targetEcho is a TargetSource that emits one entry per target set.
type targetEcho struct {
	runs atomic.Int32
}

func (te *targetEcho) Run(ctx context.Context, targets <-chan []labels.Labels, out chan<- ferry.Batch[ferry.Entry]) error {
	n := te.runs.Add(1)
	for {
		select {
		case ts := <-targets:
			var names []string
			for _, t := range ts {
				names = append(names, t.Get("container"))
			}
			sortStrings(names)
			source.Send(ctx, out, ferry.NewBatch([]ferry.Entry{{Line: fmt.Sprintf("run%d:%s", n, strings.Join(names, ","))}}, nil))
			if n == 1 {
				return errors.New("lost connection")
			}
		case <-ctx.Done():
			return nil
		}
	}
}

func TestTargetsFlowAndAreResentAfterRestart(t *testing.T) {
	fake := &sinktest.Sink[ferry.Entry]{}
	b := pipeline.New(pipeline.WithBackoff(10*time.Millisecond, 10*time.Millisecond))
	d1 := pipeline.Discover(b, "d1", discovery.Static{labels.FromStrings("__name", "/a")})
	d2 := pipeline.Discover(b, "d2", discovery.Static{labels.FromStrings("__name", "/b"), labels.FromStrings("__name", "/skip")})
	rel := pipeline.RelabelTargets(b, "relabel", []relabel.Rule{
		relabel.Drop([]string{"__name"}, "/skip"),
		relabel.Replace([]string{"__name"}, "/(.*)", "container", "$1"),
	}, d1, d2)
	pipeline.To(b, "fake", fake, pipeline.FromTargets(b, "echo", &targetEcho{}, rel))
	p, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := run(t, p, ctx)
	poll.Wait(poll.Timeout, func() bool {
		for _, e := range fake.Items() {
			if e.Line == "run2:a,b" {
				return true
			}
		}
		return false
	})
	cancel()
	wait(t, done)
	var all []string
	for _, e := range fake.Items() {
		all = append(all, e.Line)
	}
	if !strings.Contains(strings.Join(all, " "), "run2:a,b") {
		t.Fatalf("restarted source did not get the merged, relabeled targets: %v", all)
	}
	if st, _ := p.Component("relabel"); st.ItemsOut != 2 {
		t.Fatalf("relabel status %+v", st)
	}
}

// closer records when it is closed relative to the sink.
type closerSource struct {
	source.Slice[ferry.Entry]
	sink   *sinktest.Sink[ferry.Entry]
	closed int // sink length seen at Close
}

func (c *closerSource) Close(context.Context) error { c.closed = c.sink.Len(); return nil }

func TestSourcesClosedAfterSinksDrained(t *testing.T) {
	fake := &sinktest.Sink[ferry.Entry]{}
	src := &closerSource{Slice: source.Slice[ferry.Entry]{Items: make([]ferry.Entry, 7)}, sink: fake}
	b := pipeline.New()
	pipeline.To(b, "fake", fake, pipeline.FromSource(b, "src", src))
	p, _ := b.Build()
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if src.closed != 7 {
		t.Fatalf("source closed when the sink had %d of 7 entries", src.closed)
	}
	if err := p.Run(context.Background()); err == nil {
		t.Fatal("second Run accepted")
	}
}

// finalHolder holds everything until the final flush.
type finalHolder struct{ holder }

func (h *finalHolder) Flush(ctx context.Context) (ferry.Batch[ferry.Entry], error) {
	if !process.IsFinal(ctx) {
		return ferry.Batch[ferry.Entry]{}, nil
	}
	return h.holder.Flush(ctx)
}

func TestFinalFlushAtEndOfInput(t *testing.T) {
	fake := &sinktest.Sink[ferry.Entry]{}
	b := pipeline.New(pipeline.WithFlushInterval(time.Hour))
	s := pipeline.Process(b, "hold", &finalHolder{}, pipeline.FromSource(b, "src", &source.Slice[ferry.Entry]{Items: make([]ferry.Entry, 3)}))
	pipeline.To(b, "fake", fake, s)
	p, _ := b.Build()
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if fake.Len() != 3 {
		t.Fatalf("held entries not flushed at end of input: %d", fake.Len())
	}
}
