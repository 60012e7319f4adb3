package buffer

import (
	"bufio"
	"context"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/sink/sinktest"
)

// rss returns the resident set size of this process in bytes.
func rss(t testing.TB) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status")
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	t.Fatal("VmRSS not found")
	return 0
}

// peakRSS samples rss until stop is closed and returns the highest.
func peakRSS(t testing.TB, stop chan struct{}) func() int64 {
	var peak atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			if r := rss(t); r > peak.Load() {
				peak.Store(r)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	})
	return func() int64 { wg.Wait(); return peak.Load() }
}

// TestRSSBacklog (FERRY_BUFFER_RSS=1; FERRY_BUFFER_RSS_BYTES sets the
// backlog, default 2 GiB) writes a backlog while the inner sink is down,
// then replays it, and compares the process's RSS with the RSS of an
// empty buffer: memory must not grow with the backlog.
func TestRSSBacklog(t *testing.T) {
	if os.Getenv("FERRY_BUFFER_RSS") != "1" {
		t.Skip("set FERRY_BUFFER_RSS=1")
	}
	backlog := int64(2 << 30)
	if v, err := strconv.ParseInt(os.Getenv("FERRY_BUFFER_RSS_BYTES"), 10, 64); err == nil {
		backlog = v
	}
	items := benchEntries(benchBatchSize)
	dir := t.TempDir()
	var down atomic.Bool
	down.Store(true)
	var delivered atomic.Int64
	inner := &sinktest.Sink[ferry.Entry]{SendFunc: func(ctx context.Context, b ferry.Batch[ferry.Entry]) error {
		if down.Load() {
			b.Done(sinktest.ErrFake)
			return nil
		}
		delivered.Add(int64(len(b.Items)))
		b.Done(nil)
		return nil
	}}
	d := Wrap(dir, inner, Options{MaxBytes: backlog + 1<<30, MinBackoff: 50 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	if err := d.Start(context.Background(), newReporter()); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// Empty: the buffer running, a few batches through it, then settled.
	down.Store(false)
	stop := make(chan struct{})
	peak := peakRSS(t, stop)
	for range 1000 { // data flowing through an empty buffer
		d.Send(ctx, ferry.Batch[ferry.Entry]{Items: items})
	}
	d.sync()
	waitFor(t, "warm-up delivered", func() bool { return d.Stats().Records == 0 })
	close(stop)
	flowPeak := peak()
	down.Store(true)
	runtime.GC()
	debug.FreeOSMemory()
	empty := rss(t)

	stop = make(chan struct{})
	peak = peakRSS(t, stop)
	for d.Stats().Bytes < backlog {
		d.Send(ctx, ferry.Batch[ferry.Entry]{Items: items})
	}
	d.sync()
	close(stop)
	writePeak := peak()
	runtime.GC()
	debug.FreeOSMemory()
	full := rss(t)
	s := d.Stats()

	stop = make(chan struct{})
	peak = peakRSS(t, stop)
	down.Store(false)
	waitFor(t, "backlog replayed", func() bool { return d.Stats().Records == 0 })
	close(stop)
	replayPeak := peak()
	closeNow(d)

	t.Logf("empty buffer: RSS %d MiB after GC, peak %d MiB with data flowing through; backlog of %d MiB (%d entries): RSS %d MiB after GC, peak %d MiB while writing, peak %d MiB while replaying",
		empty>>20, flowPeak>>20, s.Bytes>>20, s.Items, full>>20, writePeak>>20, replayPeak>>20)
	if full-empty > 10<<20 {
		t.Errorf("RSS grew by %d MiB with the backlog", (full-empty)>>20)
	}
	if replayPeak-flowPeak > 10<<20 {
		t.Errorf("RSS peaked %d MiB higher while replaying the backlog than with data flowing through an empty buffer", (replayPeak-flowPeak)>>20)
	}
}
