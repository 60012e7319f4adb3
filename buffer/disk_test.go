package buffer

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/sink/sinktest"
)

func TestDeliversInOrder(t *testing.T) {
	inner := &sinktest.Sink[ferry.Entry]{}
	d := Wrap(t.TempDir(), inner, Options{MaxBytes: 1 << 20, SegmentBytes: 16 << 10, SyncInterval: 5 * time.Millisecond})
	start(t, d)
	want := entries(1, 0, 2000)
	waitAcks(t, send(t, d, want, 37), (len(want)+36)/37)
	if !inner.WaitLen(len(want), 20*time.Second) {
		t.Fatalf("inner got %d of %d", inner.Len(), len(want))
	}
	got := inner.Items()
	if len(got) != len(want) {
		t.Fatalf("got %d entries, want %d", len(got), len(want))
	}
	for i := range want {
		if !equalEntry(got[i], want[i]) {
			t.Fatalf("entry %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	waitFor(t, "segments freed", func() bool { s := d.Stats(); return s.Records == 0 && s.Segments == 1 })
	if s := d.Stats(); s.Written == 0 || s.Acked != s.Written || s.Corruptions != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestSyncPerBatch(t *testing.T) {
	inner := &sinktest.Sink[ferry.Entry]{}
	d := Wrap(t.TempDir(), inner, Options{MaxBytes: 1 << 20, SyncInterval: -1})
	start(t, d)
	var got error = errors.New("not acknowledged")
	err := d.Send(context.Background(), ferry.NewBatch(entries(1, 0, 10), func(err error) { got = err }))
	if err != nil || got != nil {
		t.Fatalf("Send = %v, ack = %v; want both nil when Send returns", err, got)
	}
}

// TestRestartReplaysUnacked: records the inner sink never acknowledged are
// sent again by the next Disk on the same directory, and only those.
func TestRestartReplaysUnacked(t *testing.T) {
	dir := t.TempDir()
	inner := &sinktest.Sink[ferry.Entry]{}
	d := Wrap(dir, inner, Options{MaxBytes: 1 << 20, SegmentBytes: 8 << 10, SyncInterval: 5 * time.Millisecond, MaxInFlight: 2})
	start(t, d)
	first := entries(1, 0, 300)
	waitAcks(t, send(t, d, first, 10), 30)
	if !inner.WaitLen(300, 20*time.Second) {
		t.Fatal("first entries not delivered")
	}
	waitFor(t, "marker saved", func() bool { s := d.Stats(); return s.Records == 0 })
	inner.FailNext(1<<30, nil) // the receiver is down
	second := entries(1, 300, 500)
	waitAcks(t, send(t, d, second, 10), 50)
	closeNow(d)

	inner2 := &sinktest.Sink[ferry.Entry]{}
	d2 := Wrap(dir, inner2, Options{MaxBytes: 1 << 20, SegmentBytes: 8 << 10, SyncInterval: 5 * time.Millisecond})
	start(t, d2)
	if !inner2.WaitLen(len(second), 20*time.Second) {
		t.Fatalf("replayed %d of %d", inner2.Len(), len(second))
	}
	counts := lineCounts(inner2.Items())
	for _, e := range second {
		if counts[e.Line] == 0 {
			t.Fatalf("%q lost", e.Line)
		}
	}
	for _, e := range first {
		if counts[e.Line] != 0 {
			t.Fatalf("%q was acknowledged before the restart and replayed", e.Line)
		}
	}
}

// TestOutOfOrderAcks: the marker moves only to the highest record below
// which all are acknowledged; a restart replays the unacknowledged ones.
func TestOutOfOrderAcks(t *testing.T) {
	dir := t.TempDir()
	var mu sync.Mutex
	var held []ferry.Batch[ferry.Entry]
	inner := &sinktest.Sink[ferry.Entry]{SendFunc: func(ctx context.Context, b ferry.Batch[ferry.Entry]) error {
		mu.Lock()
		held = append(held, b)
		mu.Unlock()
		return nil
	}}
	d := Wrap(dir, inner, Options{MaxBytes: 1 << 20, SyncInterval: 5 * time.Millisecond, MaxInFlight: 4})
	start(t, d)
	// Four batches, each one record.
	for i := range 4 {
		waitAcks(t, send(t, d, entries(1, i*10, 10), 10), 1)
	}
	waitFor(t, "4 records in flight", func() bool { mu.Lock(); defer mu.Unlock(); return len(held) == 4 })
	mu.Lock()
	held[3].Done(nil)
	held[1].Done(nil)
	held[2].Done(nil)
	mu.Unlock()
	waitFor(t, "acks processed", func() bool { return d.Stats().Acked == 0 && d.Stats().Records == 4 })
	closeNow(d) // record 0 never acknowledged

	inner2 := &sinktest.Sink[ferry.Entry]{}
	d2 := Wrap(dir, inner2, Options{MaxBytes: 1 << 20, SyncInterval: 5 * time.Millisecond})
	start(t, d2)
	if !inner2.WaitLen(40, 20*time.Second) {
		t.Fatalf("replayed %d entries, want all 40 (the first record was never acknowledged)", inner2.Len())
	}
}

func TestOutOfOrderAcksAdvance(t *testing.T) {
	var mu sync.Mutex
	var held []ferry.Batch[ferry.Entry]
	inner := &sinktest.Sink[ferry.Entry]{SendFunc: func(ctx context.Context, b ferry.Batch[ferry.Entry]) error {
		mu.Lock()
		held = append(held, b)
		mu.Unlock()
		return nil
	}}
	d := Wrap(t.TempDir(), inner, Options{MaxBytes: 1 << 20, SyncInterval: 5 * time.Millisecond, MaxInFlight: 4})
	start(t, d)
	for i := range 4 {
		waitAcks(t, send(t, d, entries(1, i*10, 10), 10), 1)
	}
	waitFor(t, "4 records in flight", func() bool { mu.Lock(); defer mu.Unlock(); return len(held) == 4 })
	mu.Lock()
	held[2].Done(nil)
	held[1].Done(nil)
	held[0].Done(nil)
	mu.Unlock()
	waitFor(t, "three acknowledged", func() bool { s := d.Stats(); return s.Acked == 3 && s.Records == 1 })
	mu.Lock()
	held[3].Done(nil)
	mu.Unlock()
	waitFor(t, "all acknowledged", func() bool { s := d.Stats(); return s.Acked == 4 && s.Records == 0 })
}

// TestRetriesFromDisk: retryable failures of the inner sink are retried
// with backoff and never skipped; permanent ones settle the record.
func TestRetriesFromDisk(t *testing.T) {
	inner := &sinktest.Sink[ferry.Entry]{}
	inner.FailNext(5, errors.New("429 too many requests"))
	d := Wrap(t.TempDir(), inner, Options{MaxBytes: 1 << 20, SyncInterval: 5 * time.Millisecond, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond})
	r := start(t, d)
	want := entries(1, 0, 100)
	waitAcks(t, send(t, d, want, 10), 10)
	if !inner.WaitLen(100, 20*time.Second) {
		t.Fatalf("delivered %d of 100", inner.Len())
	}
	if c := lineCounts(inner.Items()); len(c) != 100 {
		t.Fatalf("%d distinct lines delivered, want 100", len(c))
	}
	if s := d.Stats(); s.Retries < 5 || r.retries < 5 {
		t.Fatalf("retries: stats %d, reporter %d; want >= 5", s.Retries, r.retries)
	}
}

func TestPermanentSettles(t *testing.T) {
	inner := &sinktest.Sink[ferry.Entry]{}
	inner.FailPermanently(errors.New("400 bad request"))
	d := Wrap(t.TempDir(), inner, Options{MaxBytes: 1 << 20, SyncInterval: 5 * time.Millisecond})
	start(t, d)
	waitAcks(t, send(t, d, entries(1, 0, 50), 10), 5)
	waitFor(t, "records settled", func() bool { s := d.Stats(); return s.Acked == 5 && s.Records == 0 })
	if s := d.Stats(); s.Retries != 0 {
		t.Fatalf("permanent failures retried %d times", s.Retries)
	}
}

// TestBlock: with the inner sink down and the buffer full, Send waits, and
// gives up with its context; once the inner sink recovers it goes on.
func TestBlock(t *testing.T) {
	inner := &sinktest.Sink[ferry.Entry]{}
	inner.FailNext(1<<30, nil)
	d := Wrap(t.TempDir(), inner, Options{MaxBytes: 16 << 10, SegmentBytes: 8 << 10, SyncInterval: 5 * time.Millisecond, MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond})
	start(t, d)
	var sent int
	for i := 0; ; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := d.Send(ctx, ferry.NewBatch(entries(1, i*20, 20), nil))
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		sent += 20
		if i > 1000 {
			t.Fatal("Send never blocked")
		}
	}
	if s := d.Stats(); s.Bytes > d.MaxBytes {
		t.Fatalf("%d bytes on disk, MaxBytes %d", s.Bytes, d.MaxBytes)
	}
	inner.Reset() // the receiver is back
	done := make(chan error, 1)
	go func() { done <- d.Send(context.Background(), ferry.NewBatch(entries(2, 0, 20), nil)) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Send still blocked after the inner sink recovered")
	}
	if !inner.WaitLen(sent, 20*time.Second) {
		t.Fatalf("delivered %d of %d", inner.Len(), sent)
	}
}

func TestDropOldest(t *testing.T) {
	inner := &sinktest.Sink[ferry.Entry]{}
	inner.FailNext(1<<30, nil)
	d := Wrap(t.TempDir(), inner, Options{MaxBytes: 16 << 10, SegmentBytes: 8 << 10, SyncInterval: 5 * time.Millisecond, Policy: DropOldest, MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond})
	r := start(t, d)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const batches = 100
	for i := range batches {
		if err := d.Send(ctx, ferry.NewBatch(entries(1, i*20, 20), nil)); err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
	}
	s := d.Stats()
	if s.Bytes > d.MaxBytes || s.DroppedItems == 0 || r.Drops(ReasonDropOldest) != int(s.DroppedItems) {
		t.Fatalf("stats %+v, reporter drops %d", s, r.Drops(ReasonDropOldest))
	}
	inner.Reset()
	kept := batches*20 - int(s.DroppedItems)
	if !inner.WaitLen(kept, 20*time.Second) {
		t.Fatalf("delivered %d, want the %d not dropped", inner.Len(), kept)
	}
	// The newest entries survive.
	if c := lineCounts(inner.Items()); c[entry(1, batches*20-1).Line] == 0 {
		t.Fatal("newest entry lost")
	}
}

// TestDiskFull: a write that fails with ENOSPC acknowledges the batch with a
// retryable error and makes the buffer Failing; writes that succeed again
// make it Healthy; nothing acknowledged is lost.
func TestDiskFull(t *testing.T) {
	inner := &sinktest.Sink[ferry.Entry]{}
	d := Wrap(t.TempDir(), inner, Options{MaxBytes: 1 << 20, SyncInterval: -1})
	var full sync.Mutex
	var isFull bool
	d.hookWrite = func(p []byte) error {
		full.Lock()
		defer full.Unlock()
		if isFull {
			return syscall.ENOSPC
		}
		return nil
	}
	r := start(t, d)
	if err := d.Send(context.Background(), ferry.NewBatch(entries(1, 0, 10), nil)); err != nil {
		t.Fatal(err)
	}
	full.Lock()
	isFull = true
	full.Unlock()
	var ackErr error
	err := d.Send(context.Background(), ferry.NewBatch(entries(1, 10, 10), func(err error) { ackErr = err }))
	if !errors.Is(err, syscall.ENOSPC) || !errors.Is(ackErr, syscall.ENOSPC) || ferry.Settled(ackErr) {
		t.Fatalf("Send = %v, ack = %v; want a retryable ENOSPC error", err, ackErr)
	}
	if h, _ := r.Health(); h != ferry.Failing {
		t.Fatalf("health %v, want failing", h)
	}
	full.Lock()
	isFull = false
	full.Unlock()
	ackErr = errors.New("not acknowledged")
	if err := d.Send(context.Background(), ferry.NewBatch(entries(1, 20, 10), func(err error) { ackErr = err })); err != nil || ackErr != nil {
		t.Fatalf("after the disk has room: Send = %v, ack = %v", err, ackErr)
	}
	if h, _ := r.Health(); h != ferry.Healthy {
		t.Fatalf("health %v, want healthy", h)
	}
	if !inner.WaitLen(20, 20*time.Second) {
		t.Fatal("acknowledged entries not delivered")
	}
	c := lineCounts(inner.Items())
	for _, i := range []int{0, 9, 20, 29} {
		if c[entry(1, i).Line] != 1 {
			t.Fatalf("entry %d delivered %d times", i, c[entry(1, i).Line])
		}
	}
	if s := d.Stats(); s.WriteErrors == 0 {
		t.Fatal("write error not counted")
	}
}

func TestUnwritableDir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o644)
	d := Wrap(filepath.Join(file, "sub"), &sinktest.Sink[ferry.Entry]{}, Options{MaxBytes: 1 << 20})
	err := d.Start(context.Background(), newReporter())
	if err == nil || !strings.Contains(err.Error(), "buffer") {
		t.Fatalf("Start = %v, want a clear error", err)
	}
	d.Close(context.Background())
}

func TestDirInUse(t *testing.T) {
	dir := t.TempDir()
	start(t, Wrap(dir, &sinktest.Sink[ferry.Entry]{}, Options{MaxBytes: 1 << 20}))
	d := Wrap(dir, &sinktest.Sink[ferry.Entry]{}, Options{MaxBytes: 1 << 20})
	if err := d.Start(context.Background(), newReporter()); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second Start on the same directory = %v", err)
	}
}

func TestValidate(t *testing.T) {
	in := &sinktest.Sink[ferry.Entry]{}
	for _, c := range []struct {
		d    *Disk[ferry.Entry]
		want string
	}{
		{Wrap("", in, Options{MaxBytes: 1 << 30}), "Dir is empty"},
		{Wrap("x", in, Options{}), "MaxBytes is required"},
		{Wrap("x", in, Options{MaxBytes: 1 << 20, SegmentBytes: 2 << 20}), "below one segment"}, {Wrap("x", in, Options{MaxBytes: 1000}), "below one segment"},
		{Wrap("x", in, Options{MaxBytes: 1 << 20, SegmentBytes: 100}), "below the minimum"},
		{Wrap[ferry.Entry]("x", nil, Options{MaxBytes: 1 << 30}), "Inner sink is nil"},
		{Wrap("x", in, Options{MaxBytes: 1 << 30, Policy: 7}), "unknown Policy(7)"},
		{New[ferry.Entry]("x", in, nil, Options{MaxBytes: 1 << 30}), "Codec is nil"},
	} {
		err := c.d.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Validate = %v, want %q", err, c.want)
		}
		if err := c.d.Start(context.Background(), newReporter()); err == nil {
			t.Errorf("Start with %q succeeded", c.want)
		}
	}
	if err := Wrap("x", in, Options{MaxBytes: 1 << 30}).Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestLifecycle(t *testing.T) {
	inner := &sinktest.Sink[ferry.Entry]{}
	d := Wrap(t.TempDir(), inner, Options{MaxBytes: 1 << 20})
	var ackErr error
	if err := d.Send(context.Background(), ferry.NewBatch(entries(1, 0, 1), func(err error) { ackErr = err })); !errors.Is(err, ErrNotStarted) || !errors.Is(ackErr, ErrNotStarted) {
		t.Fatalf("Send before Start = %v, ack %v", err, ackErr)
	}
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := d.Send(context.Background(), ferry.NewBatch(entries(1, 0, 1), func(err error) { ackErr = err })); !errors.Is(err, ErrClosed) || !errors.Is(ackErr, ErrClosed) {
		t.Fatalf("Send after Close = %v, ack %v", err, ackErr)
	}
}

// TestTooLarge: an item larger than a segment is dropped, counted and
// acknowledged permanently; the others of its batch are kept.
func TestTooLarge(t *testing.T) {
	inner := &sinktest.Sink[ferry.Entry]{}
	d := Wrap(t.TempDir(), inner, Options{MaxBytes: 1 << 20, SegmentBytes: 4 << 10, SyncInterval: -1})
	r := start(t, d)
	items := entries(1, 0, 3)
	items[1].Line = strings.Repeat("x", 8<<10)
	var ackErr error
	d.Send(context.Background(), ferry.NewBatch(items, func(err error) { ackErr = err }))
	if !ferry.IsPermanent(ackErr) || r.Drops(ReasonTooLarge) != 1 {
		t.Fatalf("ack %v, drops %d", ackErr, r.Drops(ReasonTooLarge))
	}
	if !inner.WaitLen(2, 20*time.Second) {
		t.Fatal("the other entries were not delivered")
	}
}

// writeSegments fills dir with n entries through a Disk whose inner sink is
// down, and closes it.
func writeSegments(t *testing.T, dir string, n int, segBytes int64) {
	t.Helper()
	inner := &sinktest.Sink[ferry.Entry]{}
	inner.FailNext(1<<30, nil)
	d := Wrap(dir, inner, Options{MaxBytes: 1 << 24, SegmentBytes: segBytes, SyncInterval: 2 * time.Millisecond})
	start(t, d)
	waitAcks(t, send(t, d, entries(1, 0, n), 10), n/10)
	closeNow(d)
}

// TestCorruption flips bytes at random offsets in random segments: the
// buffer counts the corruption, skips the rest of that segment, delivers
// every other one and never stalls.
func TestCorruption(t *testing.T) {
	for seed := range 20 {
		rnd := rand.New(rand.NewPCG(uint64(seed), 1))
		dir := t.TempDir()
		writeSegments(t, dir, 2000, 8<<10)
		ids, _ := listSegments(dir)
		if len(ids) < 4 {
			t.Fatalf("%d segments", len(ids))
		}
		victim := ids[rnd.IntN(len(ids))]
		path := segName(dir, victim)
		data, _ := os.ReadFile(path)
		off := rnd.IntN(len(data))
		data[off] ^= byte(1 + rnd.IntN(255))
		os.WriteFile(path, data, 0o644)

		inner := &sinktest.Sink[ferry.Entry]{}
		d := Wrap(dir, inner, Options{MaxBytes: 1 << 24, SegmentBytes: 8 << 10, SyncInterval: 5 * time.Millisecond})
		start(t, d)
		waitFor(t, "replay", func() bool { s := d.Stats(); return s.Records == 0 })
		s := d.Stats()
		if s.Corruptions == 0 {
			t.Fatalf("seed %d: corruption at %d of segment %d not counted", seed, off, victim)
		}
		// Everything outside the damaged segment arrives.
		got := lineCounts(inner.Items())
		lost := 2000 - len(got)
		if lost > 2000/len(ids)+20 {
			t.Fatalf("seed %d: %d entries missing, more than one segment", seed, lost)
		}
		closeNow(d)
	}
}

// TestTruncation cuts the last segment at random offsets, as a crash
// during a write does: every complete record before the cut is delivered.
func TestTruncation(t *testing.T) {
	for seed := range 20 {
		rnd := rand.New(rand.NewPCG(uint64(seed), 2))
		dir := t.TempDir()
		writeSegments(t, dir, 500, 64<<10)
		ids, _ := listSegments(dir)
		// The last file is the (empty) active segment of the closed Disk;
		// cut the one before, which holds the records.
		last := ids[len(ids)-1]
		for _, id := range ids {
			if fi, _ := os.Stat(segName(dir, id)); fi.Size() > segHeaderSize {
				last = id
			}
		}
		for _, id := range ids {
			if id > last {
				os.Remove(segName(dir, id))
			}
		}
		path := segName(dir, last)
		fi, _ := os.Stat(path)
		cut := rnd.Int64N(fi.Size())
		os.Truncate(path, cut)

		inner := &sinktest.Sink[ferry.Entry]{}
		d := Wrap(dir, inner, Options{MaxBytes: 1 << 24, SegmentBytes: 64 << 10, SyncInterval: 5 * time.Millisecond})
		start(t, d)
		waitFor(t, "replay", func() bool { return d.Stats().Records == 0 })
		got := inner.Items()
		for i, e := range got {
			if !equalEntry(e, entry(1, i)) {
				t.Fatalf("seed %d: entry %d is %q", seed, i, e.Line)
			}
		}
		if cut < fi.Size() && cut > segHeaderSize && len(got) == 500 {
			t.Fatalf("seed %d: cut at %d of %d but everything delivered", seed, cut, fi.Size())
		}
		closeNow(d)
	}
}

// TestCorruptMarker: a damaged read marker replays everything rather than
// skipping anything.
func TestCorruptMarker(t *testing.T) {
	dir := t.TempDir()
	writeSegments(t, dir, 100, 64<<10)
	os.WriteFile(filepath.Join(dir, markerName), []byte("garbage"), 0o644)
	inner := &sinktest.Sink[ferry.Entry]{}
	d := Wrap(dir, inner, Options{MaxBytes: 1 << 24, SegmentBytes: 64 << 10, SyncInterval: 5 * time.Millisecond})
	start(t, d)
	if !inner.WaitLen(100, 20*time.Second) {
		t.Fatalf("delivered %d of 100", inner.Len())
	}
	if d.Stats().Corruptions != 1 {
		t.Fatalf("corruptions %d", d.Stats().Corruptions)
	}
}

func TestStatsAndMetrics(t *testing.T) {
	inner := &sinktest.Sink[ferry.Entry]{}
	inner.FailNext(1<<30, nil)
	d := Wrap(t.TempDir(), inner, Options{Name: "loki-a", MaxBytes: 1 << 20, SyncInterval: -1, MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond})
	start(t, d)
	d.Send(context.Background(), ferry.NewBatch(entries(1, 0, 10), nil))
	waitFor(t, "oldest age", func() bool { return d.Stats().OldestAge > 0 })
	s := d.Stats()
	if s.Records != 1 || s.Items != 10 || s.Bytes <= segHeaderSize || s.Name != "loki-a" {
		t.Fatalf("stats %+v", s)
	}
	names := collectNames(t, d)
	for _, want := range []string{"ferry_buffer_bytes", "ferry_buffer_records", "ferry_buffer_oldest_record_age_seconds",
		"ferry_buffer_replayed_records_total", "ferry_buffer_dropped_items_total", "ferry_buffer_corruptions_total"} {
		if !slices.Contains(names, want) {
			t.Errorf("metric %s missing from %v", want, names)
		}
	}
}

// TestCloseDrains: Close replays what is left to the inner sink before it
// returns, within its context.
func TestCloseDrains(t *testing.T) {
	inner := &sinktest.Sink[ferry.Entry]{}
	inner.Block()
	d := Wrap(t.TempDir(), inner, Options{MaxBytes: 1 << 20, SyncInterval: time.Hour})
	start(t, d)
	d.Send(context.Background(), ferry.NewBatch(entries(1, 0, 100), nil))
	go func() {
		waitFor(t, "a blocked send", func() bool { return d.Stats().Replayed > 0 })
		inner.Unblock()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := d.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if inner.Len() != 100 {
		t.Fatalf("Close returned with %d of 100 delivered", inner.Len())
	}
}
