package buffer

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/sink"
	"github.com/ferrydev/ferry/sink/sinktest"
)

// TestStateDuringStart: Stats and State may be called while Start
// recovers a directory with a backlog, and while it replays (run with
// -race).
func TestStateDuringStart(t *testing.T) {
	dir := t.TempDir()
	inner := &sinktest.Sink[ferry.Entry]{}
	inner.Block()
	d := Wrap(dir, inner, Options{MaxBytes: 1 << 20, SegmentBytes: 8 << 10, SyncInterval: -1})
	start(t, d)
	for i := range 40 {
		d.Send(context.Background(), ferry.NewBatch(entries(1, i*10, 10), nil))
	}
	want := d.Stats().Records
	if err := closeNow(d); err != nil {
		t.Fatal(err)
	}

	inner2 := &sinktest.Sink[ferry.Entry]{}
	d2 := Wrap(dir, inner2, Options{MaxBytes: 1 << 20, SegmentBytes: 8 << 10, SyncInterval: -1})
	var stop atomic.Bool
	var wg sync.WaitGroup
	var calls atomic.Int64
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				st := d2.Stats()
				if st.Records < 0 || st.Bytes < 0 {
					t.Errorf("stats during Start: %+v", st)
				}
				if len(d2.State()) == 0 {
					t.Error("empty state")
				}
				calls.Add(1)
			}
		}()
	}
	waitFor(t, "Stats calls before Start", func() bool { return calls.Load() > 10 })
	if err := d2.Start(context.Background(), newReporter()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeNow(d2) })
	waitFor(t, "the backlog delivered", func() bool { return inner2.Len() == 400 })
	waitFor(t, "every record acknowledged", func() bool { return d2.Stats().Acked == want })
	stop.Store(true)
	wg.Wait()
	if st := d2.Stats(); st.Records != 0 || st.AckedItems != 400 || st.Segments < 1 {
		t.Fatalf("after the replay: %+v", st)
	}
}

// TestReplayRate: ReplayRate reports the items acknowledged per second
// over the recent window, and acked_items_total counts them.
func TestReplayRate(t *testing.T) {
	inner := &sinktest.Sink[ferry.Entry]{}
	d := Wrap(t.TempDir(), inner, Options{MaxBytes: 1 << 20, SyncInterval: -1})
	if d.Stats().ReplayRate != 0 {
		t.Fatal("rate before Start")
	}
	start(t, d)
	t0 := time.Now()
	waitAcks(t, send(t, d, entries(1, 0, 500), 50), 10)
	waitFor(t, "500 items acknowledged", func() bool { return d.Stats().AckedItems == 500 })
	st := d.Stats()
	// 500 items since Start, over at least a second (the rate never
	// divides by less), at most the time since t0.
	lo, hi := 500/max(time.Since(t0), 10*time.Second).Seconds(), 500.0
	if st.ReplayRate < lo || st.ReplayRate > hi {
		t.Fatalf("ReplayRate %.1f, want in [%.1f, %.1f]", st.ReplayRate, lo, hi)
	}
	if names := collectNames(t, d); !slices.Contains(names, "ferry_buffer_acked_items_total") {
		t.Errorf("ferry_buffer_acked_items_total missing from %v", names)
	}
}

// TestRateWindow: the window forgets what is older than ReplayRateWindow
// and divides by the time it spans.
func TestRateWindow(t *testing.T) {
	var r rateWindow
	t0 := time.Unix(1000, 0)
	if r.rate(t0) != 0 {
		t.Fatal("rate before reset")
	}
	r.reset(t0)
	r.add(t0.Add(500*time.Millisecond), 100)
	if got := r.rate(t0.Add(900 * time.Millisecond)); got != 100 {
		t.Errorf("rate within the first second = %v, want 100 (over at least a second)", got)
	}
	if got := r.rate(t0.Add(2 * time.Second)); got != 50 {
		t.Errorf("rate after 2s = %v, want 50", got)
	}
	for i := range 30 {
		r.add(t0.Add(time.Duration(i)*time.Second), 10)
	}
	if got := r.rate(t0.Add(30 * time.Second)); got != 10 {
		// The buckets of 21 to 29 hold 10 each, over the 9s from 21 to
		// 30; the bucket of 30 has just begun, empty.
		t.Errorf("steady rate = %v, want 10", got)
	}
	if got := r.rate(t0.Add(time.Hour)); got != 0 {
		t.Errorf("rate an hour later = %v", got)
	}
}

// TestConformance runs the sink conformance harness against a Disk in
// front of the fake sink: acknowledgement once, flush on Close, Send
// before Start and after Close.
func TestConformance(t *testing.T) {
	var inner *sinktest.Sink[ferry.Entry]
	sinktest.Run(t, sinktest.Harness[ferry.Entry]{
		New: func(t *testing.T) sink.Sink[ferry.Entry] {
			inner = &sinktest.Sink[ferry.Entry]{}
			return Wrap(t.TempDir(), inner, Options{MaxBytes: 1 << 20, SyncInterval: 5 * time.Millisecond})
		},
		Item:      func(i int) ferry.Entry { return entry(1, i) },
		Delivered: func() []ferry.Entry { return inner.Items() },
		Key:       func(e ferry.Entry) string { return e.Line },
	})
}

// TestLifecycleErrors: the errors wrap the root package's, a second Start
// starts nothing, a Start after Close fails.
func TestLifecycleErrors(t *testing.T) {
	d := Wrap(t.TempDir(), &sinktest.Sink[ferry.Entry]{}, Options{MaxBytes: 1 << 20})
	if err := d.Send(context.Background(), ferry.NewBatch(entries(1, 0, 1), nil)); !errors.Is(err, ferry.ErrNotStarted) {
		t.Errorf("Send before Start = %v", err)
	}
	r := newReporter()
	if err := d.Start(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background(), r); err != nil {
		t.Errorf("second Start = %v, want nil", err)
	}
	if err := closeNow(d); err != nil {
		t.Fatal(err)
	}
	if err := d.Send(context.Background(), ferry.NewBatch(entries(1, 0, 1), nil)); !errors.Is(err, ferry.ErrClosed) {
		t.Errorf("Send after Close = %v", err)
	}
	if err := d.Start(context.Background(), r); !errors.Is(err, ferry.ErrClosed) {
		t.Errorf("Start after Close = %v", err)
	}
}
