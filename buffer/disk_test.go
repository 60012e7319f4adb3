package buffer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
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
	// The newest entries, all that were not dropped, are delivered. A
	// record that was dropped from the disk while the replay held it in
	// memory may be delivered too, so the count alone does not say that
	// the newest arrived: wait for each of them.
	kept := batches*20 - int(s.DroppedItems)
	newest := entries(1, batches*20-kept, kept)
	waitFor(t, fmt.Sprintf("the newest %d entries, the ones not dropped", kept), func() bool {
		c := lineCounts(inner.Items())
		for _, e := range newest {
			if c[e.Line] == 0 {
				return false
			}
		}
		return true
	})
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

// recordSpans returns the [start, end) of each record of an undamaged
// segment file.
func recordSpans(t *testing.T, path string) [][2]int64 {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var spans [][2]int64
	for off := int64(segHeaderSize); off < int64(len(data)); {
		end := off + recHeaderSize + int64(readRecHeader(data[off:]).length)
		spans = append(spans, [2]int64{off, end})
		off = end
	}
	return spans
}

// replayAll starts a Disk on dir, waits until it replayed everything it
// could read, and returns what the inner sink got and the stats.
func replayAll(t *testing.T, dir string, segBytes int64) ([]ferry.Entry, Stats) {
	t.Helper()
	inner := &sinktest.Sink[ferry.Entry]{}
	d := Wrap(dir, inner, Options{MaxBytes: 1 << 24, SegmentBytes: segBytes, SyncInterval: 5 * time.Millisecond})
	start(t, d)
	waitFor(t, "replay", func() bool { return d.Stats().Records == 0 })
	s := d.Stats()
	closeNow(d)
	return inner.Items(), s
}

// TestCorruptRecordResync damages one record (or a few neighbouring ones)
// in the middle of a segment in several ways: the replay skips exactly the
// damaged records, counts the damage once and delivers every other entry.
func TestCorruptRecordResync(t *testing.T) {
	const n, segBytes = 2000, 8 << 10
	for _, c := range []struct {
		name   string
		damage func(data []byte, rec [2]int64, next [2]int64) (from, to int64) // returns the damaged range
	}{
		{"payload byte", func(data []byte, rec, _ [2]int64) (int64, int64) {
			at := rec[0] + recHeaderSize + 5
			data[at] ^= 0x40
			return at, at + 1
		}},
		{"length grown", func(data []byte, rec, _ [2]int64) (int64, int64) {
			data[rec[0]] += 3
			return rec[0], rec[0] + 1
		}},
		{"length shrunk", func(data []byte, rec, _ [2]int64) (int64, int64) {
			data[rec[0]] -= 7
			return rec[0], rec[0] + 1
		}},
		{"length huge", func(data []byte, rec, _ [2]int64) (int64, int64) {
			data[rec[0]+3] = 0xff
			return rec[0] + 3, rec[0] + 4
		}},
		{"checksum", func(data []byte, rec, _ [2]int64) (int64, int64) {
			data[rec[0]+5] ^= 1
			return rec[0] + 5, rec[0] + 6
		}},
		{"zeroed across two records", func(data []byte, rec, next [2]int64) (int64, int64) {
			from, to := rec[1]-10, next[0]+30
			clear(data[from:to])
			return from, to
		}},
		{"garbage header", func(data []byte, rec, _ [2]int64) (int64, int64) {
			copy(data[rec[0]:], "\x12\x00\x00\x00garbage-garbage-")
			return rec[0], rec[0] + recHeaderSize
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			writeSegments(t, dir, n, segBytes)
			ids, _ := listSegments(dir)
			if len(ids) < 5 {
				t.Fatalf("%d segments", len(ids))
			}
			victim := segName(dir, ids[len(ids)/2])
			spans := recordSpans(t, victim)
			if len(spans) < 5 {
				t.Fatalf("%d records in the victim segment", len(spans))
			}
			k := len(spans) / 2
			data, _ := os.ReadFile(victim)
			// Which entries the victim's records hold: decode them first.
			lines := recordLines(t, data, spans)
			from, to := c.damage(data, spans[k], spans[k+1])
			os.WriteFile(victim, data, 0o644)
			lost := map[string]bool{}
			for i, sp := range spans {
				if sp[0] < to && from < sp[1] {
					for _, l := range lines[i] {
						lost[l] = true
					}
				}
			}
			got, s := replayAll(t, dir, segBytes)
			counts := lineCounts(got)
			for i := range n {
				l := entry(1, i).Line
				switch {
				case lost[l] && counts[l] != 0:
					t.Errorf("%q was in a damaged record but delivered", l)
				case !lost[l] && counts[l] != 1:
					t.Errorf("%q delivered %d times, want once", l, counts[l])
				}
			}
			if s.Corruptions != 1 {
				t.Errorf("%d corruptions counted, want 1", s.Corruptions)
			}
		})
	}
}

// TestCorruptLastSegment: damage in the middle of the segment a crash left
// last is not a torn tail: recovery keeps the valid records after it, and
// the replay skips only the damaged one.
func TestCorruptLastSegment(t *testing.T) {
	dir := t.TempDir()
	writeSegments(t, dir, 500, 64<<10)
	ids, _ := listSegments(dir)
	var path string
	for _, id := range ids {
		if fi, _ := os.Stat(segName(dir, id)); fi.Size() > segHeaderSize {
			path = segName(dir, id)
		} else {
			os.Remove(segName(dir, id)) // the empty active segment of the closed Disk
		}
	}
	spans := recordSpans(t, path)
	data, _ := os.ReadFile(path)
	lines := recordLines(t, data, spans)
	k := len(spans) / 2
	data[spans[k][0]+recHeaderSize+3] ^= 0x10
	os.WriteFile(path, data, 0o644)
	got, s := replayAll(t, dir, 64<<10)
	counts := lineCounts(got)
	for i, ls := range lines {
		for _, l := range ls {
			if want := min(1, abs(i-k)); counts[l] != want {
				t.Fatalf("record %d (damaged: %d): %q delivered %d times", i, k, l, counts[l])
			}
		}
	}
	if s.Corruptions != 1 {
		t.Fatalf("%d corruptions counted, want 1", s.Corruptions)
	}
}

func abs(x int) int { return max(x, -x) }

// recordLines returns the lines of each record.
func recordLines(t *testing.T, data []byte, spans [][2]int64) [][]string {
	t.Helper()
	data = bytes.Clone(data) // decoded lines alias it
	out := make([][]string, len(spans))
	for i, sp := range spans {
		h := readRecHeader(data[sp[0]:])
		items := make([]ferry.Entry, h.items)
		var prev *ferry.Entry
		err := forEachItem(data[sp[0]+recHeaderSize:sp[1]], h.items, func(j int, b []byte) error {
			if err := (EntryCodec{}).Decode(b, &items[j], prev); err != nil {
				return err
			}
			prev = &items[j]
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range items {
			out[i] = append(out[i], e.Line)
		}
	}
	return out
}

// TestCorruption flips bytes at random offsets in random segments: the
// buffer counts the damage, delivers every entry outside the damaged
// records and never stalls.
func TestCorruption(t *testing.T) {
	for seed := range 20 {
		rnd := rand.New(rand.NewPCG(uint64(seed), 1))
		dir := t.TempDir()
		writeSegments(t, dir, 2000, 8<<10)
		ids, _ := listSegments(dir)
		if len(ids) < 4 {
			t.Fatalf("%d segments", len(ids))
		}
		victim := ids[rnd.IntN(len(ids)-1)] // the last one is empty
		path := segName(dir, victim)
		spans := recordSpans(t, path)
		data, _ := os.ReadFile(path)
		lines := recordLines(t, data, spans)
		off := int64(rnd.IntN(len(data)))
		data[off] ^= byte(1 + rnd.IntN(255))
		os.WriteFile(path, data, 0o644)
		lost := map[string]bool{}
		for i, sp := range spans {
			if sp[0] <= off && off < sp[1] {
				for _, l := range lines[i] {
					lost[l] = true
				}
			}
		}

		got, s := replayAll(t, dir, 8<<10)
		if s.Corruptions != 1 {
			t.Fatalf("seed %d: corruption at %d of segment %d counted %d times", seed, off, victim, s.Corruptions)
		}
		counts := lineCounts(got)
		for i := range 2000 {
			if l := entry(1, i).Line; !lost[l] && counts[l] != 1 {
				t.Fatalf("seed %d: damage at %d: %q delivered %d times", seed, off, l, counts[l])
			}
		}
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
		// A cut inside a record is a torn tail, cut off and counted once.
		torn := int64(0)
		for _, sp := range recordSpans(t, path) {
			if sp[0] < cut && cut < sp[1] {
				torn = 1
			}
		}
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
		if c := d.Stats().Corruptions; c != torn {
			t.Fatalf("seed %d: cut at %d: %d corruptions counted, want %d", seed, cut, c, torn)
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

// TestAckOnlyAfterFsync: a batch is acknowledged only once the fsync that
// covers it returned, and Sends go on writing while an fsync runs.
func TestAckOnlyAfterFsync(t *testing.T) {
	inner := &sinktest.Sink[ferry.Entry]{}
	d := Wrap(t.TempDir(), inner, Options{MaxBytes: 1 << 20, SyncInterval: 5 * time.Millisecond})
	inSync, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	d.hookSync = func() error {
		once.Do(func() {
			close(inSync)
			<-release
		})
		return nil
	}
	start(t, d)
	acked := make(chan int, 10)
	d.Send(context.Background(), ferry.NewBatch(entries(1, 0, 10), func(err error) { acked <- 0 }))
	<-inSync // the first fsync runs, and waits
	// A second batch is written meanwhile: Send does not wait for the
	// fsync.
	if err := d.Send(context.Background(), ferry.NewBatch(entries(1, 10, 10), func(err error) { acked <- 1 })); err != nil {
		t.Fatal(err)
	}
	select {
	case i := <-acked:
		t.Fatalf("batch %d acknowledged while its fsync had not returned", i)
	default:
	}
	close(release)
	for want := range 2 {
		if got := <-acked; got != want {
			t.Fatalf("batch %d acknowledged before batch %d", got, want)
		}
	}
}

// TestFsyncFails: a failed fsync fails the batches that waited for it,
// retryably, and makes the buffer Failing until an fsync succeeds again;
// what was acknowledged is delivered.
func TestFsyncFails(t *testing.T) {
	inner := &sinktest.Sink[ferry.Entry]{}
	d := Wrap(t.TempDir(), inner, Options{MaxBytes: 1 << 20, SyncInterval: -1})
	var mu sync.Mutex
	var fail error
	d.hookSync = func() error {
		mu.Lock()
		defer mu.Unlock()
		return fail
	}
	r := start(t, d)
	var ackErr error = errors.New("not acknowledged")
	if err := d.Send(context.Background(), ferry.NewBatch(entries(1, 0, 10), func(err error) { ackErr = err })); err != nil || ackErr != nil {
		t.Fatalf("Send = %v, ack %v", err, ackErr)
	}
	mu.Lock()
	fail = syscall.EIO
	mu.Unlock()
	err := d.Send(context.Background(), ferry.NewBatch(entries(1, 10, 10), func(err error) { ackErr = err }))
	if !errors.Is(err, syscall.EIO) || !errors.Is(ackErr, syscall.EIO) || ferry.Settled(ackErr) {
		t.Fatalf("Send = %v, ack %v; want a retryable EIO", err, ackErr)
	}
	if h, _ := r.Health(); h != ferry.Failing {
		t.Fatalf("health %v, want failing", h)
	}
	mu.Lock()
	fail = nil
	mu.Unlock()
	if err := d.Send(context.Background(), ferry.NewBatch(entries(1, 20, 10), func(err error) { ackErr = err })); err != nil || ackErr != nil {
		t.Fatalf("after the fsync works again: Send = %v, ack %v", err, ackErr)
	}
	if h, _ := r.Health(); h != ferry.Healthy {
		t.Fatalf("health %v, want healthy", h)
	}
	waitFor(t, "delivery", func() bool {
		c := lineCounts(inner.Items())
		return c[entry(1, 0).Line] > 0 && c[entry(1, 29).Line] > 0
	})
	if s := d.Stats(); s.WriteErrors == 0 {
		t.Fatal("the failed fsync was not counted")
	}
}

// TestRotationSyncs: sealing a segment starts its fsync at once, so the
// batches in it are acknowledged without waiting for SyncInterval.
func TestRotationSyncs(t *testing.T) {
	inner := &sinktest.Sink[ferry.Entry]{}
	d := Wrap(t.TempDir(), inner, Options{MaxBytes: 1 << 20, SegmentBytes: 8 << 10, SyncInterval: time.Hour})
	start(t, d)
	first := send(t, d, entries(1, 0, 10), 10)
	// Enough for several segments.
	send(t, d, entries(1, 10, 1000), 10)
	waitAcks(t, first, 1)
}

// TestReplayFromMemory: while the replay keeps up, records pass to it in
// memory; when it falls behind it reads them back from the segments; in
// both cases everything arrives once and in order.
func TestReplayFromMemory(t *testing.T) {
	inner := &sinktest.Sink[ferry.Entry]{}
	d := Wrap(t.TempDir(), inner, Options{MaxBytes: 1 << 20, SegmentBytes: 16 << 10, SyncInterval: 5 * time.Millisecond, MaxInFlightBytes: 4 << 10})
	start(t, d)
	var want []ferry.Entry
	for i := range 20 {
		b := entries(1, i*10, 10)
		want = append(want, b...)
		waitAcks(t, send(t, d, b, 10), 1)
		if !inner.WaitLen(len(want), 20*time.Second) {
			t.Fatal("not delivered")
		}
	}
	if d.stats.fromMemory.Load() == 0 {
		t.Fatal("no record passed in memory while the replay kept up")
	}
	// Behind: the inner sink holds the replay until the backlog exceeds
	// MaxInFlightBytes.
	inner.Block()
	memBefore := d.stats.fromMemory.Load()
	for i := 20; i < 120; i++ {
		b := entries(1, i*10, 10)
		want = append(want, b...)
		send(t, d, b, 10)
	}
	waitFor(t, "a backlog", func() bool { return d.Stats().Bytes > 8<<10 })
	inner.Unblock()
	if !inner.WaitLen(len(want), 20*time.Second) {
		t.Fatalf("delivered %d of %d", inner.Len(), len(want))
	}
	got := inner.Items()
	for i := range want {
		if !equalEntry(got[i], want[i]) {
			t.Fatalf("entry %d: %q, want %q", i, got[i].Line, want[i].Line)
		}
	}
	if d.stats.fromMemory.Load()-memBefore >= 100 {
		t.Fatal("the backlog was not read back from the segments")
	}
}
