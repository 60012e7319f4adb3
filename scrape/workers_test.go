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
	ids := make(chan uint64, 10)
	job := func() { ids <- goid() }
	w.do(job) // no worker yet: a new one
	for range 9 {
		// The next job, as do gives it to a worker waiting for one; the
		// send waits for the worker to finish the job before.
		select {
		case w.jobs <- job:
		case <-time.After(10 * time.Second):
			t.Fatal("no worker took the next job")
		}
	}
	w.stop()
	close(ids)
	first := <-ids
	n := 1
	for id := range ids {
		n++
		if id != first {
			t.Fatalf("jobs ran on goroutines %d and %d, want one", first, id)
		}
	}
	if n != 10 {
		t.Fatalf("%d jobs ran, want 10", n)
	}
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
