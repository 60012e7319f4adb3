package buffer

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/sink/sinktest"
)

// TestMemoryHandOverCopies: records handed to the replay in memory are
// copies: a producer that reuses its slice once the batch is acknowledged
// changes nothing that is delivered.
func TestMemoryHandOverCopies(t *testing.T) {
	inner := &sinktest.Sink[ferry.Entry]{}
	d := Wrap(t.TempDir(), inner, Options{MaxBytes: 1 << 20, SyncInterval: -1})
	start(t, d)
	// Caught up: the next records pass in memory.
	waitAcks(t, send(t, d, entries(1, 0, 10), 10), 1)
	if !inner.WaitLen(10, 20*time.Second) {
		t.Fatal("not delivered")
	}
	inner.Block()
	mem := d.Stats().FromMemory
	want := entries(1, 10, 10)
	items := append([]ferry.Entry(nil), want...)
	acked := make(chan error, 1)
	d.Send(context.Background(), ferry.NewBatch(items, func(err error) { acked <- err }))
	if err := <-acked; err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the record in the replay", func() bool { return d.Stats().Replayed == 2 })
	for i := range items {
		items[i] = entry(9, 999) // the producer reuses its slice
	}
	inner.Unblock()
	if !inner.WaitLen(20, 20*time.Second) {
		t.Fatal("not delivered")
	}
	for i, e := range inner.Items()[10:] {
		if !equalEntry(e, want[i]) {
			t.Fatalf("entry %d: %q, want %q", i, e.Line, want[i].Line)
		}
	}
	if d.Stats().FromMemory == mem {
		t.Fatal("the record was not handed over in memory")
	}
}

// TestMemoryRetryRereads: a record handed over in memory that the inner
// sink fails is read back from its segment for the retry.
func TestMemoryRetryRereads(t *testing.T) {
	inner := &sinktest.Sink[ferry.Entry]{}
	d := Wrap(t.TempDir(), inner, Options{MaxBytes: 1 << 20, SyncInterval: -1, MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond})
	start(t, d)
	waitAcks(t, send(t, d, entries(1, 0, 10), 10), 1)
	if !inner.WaitLen(10, 20*time.Second) {
		t.Fatal("not delivered")
	}
	inner.FailNext(3, errors.New("503"))
	mem := d.Stats().FromMemory
	want := entries(1, 0, 60)
	waitAcks(t, send(t, d, want[10:], 10), 5)
	if !inner.WaitLen(60, 20*time.Second) {
		t.Fatalf("delivered %d of 60", inner.Len())
	}
	// Retried records come after those sent meanwhile: compare sets.
	c := lineCounts(inner.Items())
	for _, e := range want {
		if c[e.Line] != 1 {
			t.Fatalf("%q delivered %d times", e.Line, c[e.Line])
		}
	}
	st := d.Stats()
	if st.FromMemory == mem || st.Retries < 3 || st.Corruptions != 0 {
		t.Fatalf("stats %+v: want records from memory, 3 retries, no corruption", st)
	}
}
