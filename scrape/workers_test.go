package scrape

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A worker takes the next job once its scrape is done, instead of a new
// goroutine for each: sequential jobs run on one goroutine, with the stack
// the first one grew.
func TestWorkersReuseAGoroutine(t *testing.T) {
	w := newWorkers()
	w.idleFor = time.Hour // no exit between jobs, however slow the machine
	ids := make(chan uint64, 10)
	job := func() { ids <- goid() }
	var first uint64
	for i := range 10 {
		w.do(job)
		id := <-ids // the job ran; its worker is idle or about to be
		if i == 0 {
			first = id
		} else if id != first {
			t.Fatalf("jobs ran on goroutines %d and %d, want one", first, id)
		}
		allIdle(t, w)
	}
	w.stop()
	w.do(job)
	if id := <-ids; id != goid() {
		t.Fatal("a job given after stop did not run on the caller")
	}
	if n := running(w); n != 0 {
		t.Fatalf("%d workers left after stop", n)
	}
}

// The next job goes to the worker that became idle last, so the workers a
// burst started exit while scrapes go on one at a time. Given to the one
// idle longest, as a channel does, every worker got a job within idleFor
// and none exited: this test then times out.
func TestWorkersShrinkAfterBurst(t *testing.T) {
	w := newWorkers()
	w.idleFor = 50 * time.Millisecond
	defer w.stop()
	const burst = 20
	release := make(chan struct{})
	var started sync.WaitGroup
	started.Add(burst)
	for range burst {
		w.do(func() { started.Done(); <-release })
	}
	started.Wait()
	if n := running(w); n != burst {
		t.Fatalf("%d workers for %d jobs at once, want %d", n, burst, burst)
	}
	close(release)
	// One job at a time, each given once every worker is idle: one worker
	// is enough, and the others stay idle for longer than idleFor.
	done := make(chan struct{})
	deadline := time.Now().Add(10 * time.Second)
	for running(w) > 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d workers still running after 10 s of one job at a time", running(w))
		}
		allIdle(t, w)
		w.do(func() { done <- struct{}{} })
		<-done
	}
}

// allIdle waits until every worker is idle.
func allIdle(t *testing.T, w *workers) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		w.mu.Lock()
		idle, live := len(w.idle), w.live
		w.mu.Unlock()
		if idle == live {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d workers idle after 10 s", idle, live)
		}
		runtime.Gosched()
	}
}

// running returns the number of workers started and not exited.
func running(w *workers) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.live
}

// Jobs given while every worker is busy get workers of their own, and
// stop waits for all of them.
func TestWorkersConcurrentAndStop(t *testing.T) {
	w := newWorkers()
	release := make(chan struct{})
	var running, done atomic.Int32
	for range 5 {
		w.do(func() {
			running.Add(1)
			<-release
			done.Add(1)
		})
	}
	deadline := time.Now().Add(10 * time.Second)
	for running.Load() < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("%d of 5 jobs running: a job waited for a busy worker", running.Load())
		}
		runtime.Gosched()
	}
	close(release)
	w.stop()
	if d := done.Load(); d != 5 {
		t.Fatalf("stop returned with %d of 5 jobs done", d)
	}
	// After stop, do runs the job itself.
	ran := false
	w.do(func() { ran = true })
	if !ran {
		t.Fatal("a job given after stop did not run on the caller")
	}
}

// goid returns the current goroutine's id, from its stack header.
func goid() uint64 {
	var buf [32]byte
	n := runtime.Stack(buf[:], false)
	var id uint64
	for _, c := range buf[len("goroutine "):n] {
		if c < '0' || c > '9' {
			break
		}
		id = id*10 + uint64(c-'0')
	}
	return id
}

// Jobs given while stop runs all run, on a worker stop waits for or on
// the caller, and none starts a worker after stop's wait (which would
// panic in the WaitGroup or outlive the Run).
func TestWorkersStopWhileGiven(t *testing.T) {
	for range 200 {
		w := newWorkers()
		var ran atomic.Int32
		var given sync.WaitGroup
		for range 8 {
			given.Go(func() { w.do(func() { ran.Add(1) }) })
		}
		w.stop()
		given.Wait()
		if n := ran.Load(); n != 8 {
			t.Fatalf("%d of 8 jobs ran once stop and every do returned", n)
		}
	}
}
