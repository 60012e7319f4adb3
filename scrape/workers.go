package scrape

import (
	"slices"
	"sync"
	"time"
)

// workers runs a Run's scrapes on goroutines that outlive a scrape. A
// scrape fits in a stack of 16 KB (none grew one further at 1000 targets);
// a goroutine starts with a few, and one per scrape grew its stack to that
// size on every scrape, copying it at each step, which cost about 20 µs a
// scrape (3 % of the process at 1000 targets). A worker keeps its grown
// stack between scrapes and exits after idleFor with nothing to do, so
// idle targets hold no goroutine once the scrapes stop.
//
// The next job goes to the worker that became idle last. Given to the one
// idle longest (as a channel's receivers are served), a steady stream of
// scrapes kept every worker of a burst alive: at 1000 targets, 990
// workers, each idle a second between scrapes, against a few busy at
// once. Last in, first out, the workers a burst left behind get nothing
// and exit, and the next scrape runs on the stack that is still in the
// CPU's caches.
type workers struct {
	idleFor time.Duration

	// mu guards what follows, and orders a new worker's wg.Add before
	// stop's wg.Wait.
	mu      sync.Mutex
	idle    []*worker // waiting for a job; the one idle longest first
	live    int       // workers started and not exited
	stopped bool
	wg      sync.WaitGroup
}

// worker is one goroutine of workers.
type worker struct {
	// job holds the job do gives the worker (nil: exit). do sends while
	// the worker is in workers.idle, under workers.mu, and takes it out:
	// the buffer is empty then, so the send never waits.
	job chan func()
}

// workerIdle is how long a worker waits for its next scrape.
const workerIdle = 2 * time.Second

func newWorkers() *workers { return &workers{idleFor: workerIdle} }

// do runs f on the worker that became idle last, or on a new one if none
// is idle. It does not wait for f. After stop, f runs on the caller's
// goroutine: only a timer that fired as its loop stopped calls do then,
// and f returns at once.
func (w *workers) do(f func()) {
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		f()
		return
	}
	if n := len(w.idle); n > 0 {
		wk := w.idle[n-1]
		w.idle[n-1] = nil
		w.idle = w.idle[:n-1]
		wk.job <- f
		w.mu.Unlock()
		return
	}
	w.live++
	w.wg.Add(1)
	w.mu.Unlock()
	go w.work(&worker{job: make(chan func(), 1)}, f)
}

func (w *workers) work(wk *worker, f func()) {
	defer w.wg.Done()
	idle := time.NewTimer(w.idleFor)
	defer idle.Stop()
	for f != nil {
		f()
		f = w.next(wk, idle)
	}
	w.mu.Lock()
	w.live--
	w.mu.Unlock()
}

// next waits up to idleFor for wk's next job; nil means wk is to exit.
func (w *workers) next(wk *worker, idle *time.Timer) func() {
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		return nil
	}
	w.idle = append(w.idle, wk)
	w.mu.Unlock()
	idle.Reset(w.idleFor)
	select {
	case f := <-wk.job:
		return f
	case <-idle.C:
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if i := slices.Index(w.idle, wk); i >= 0 {
		w.idle = slices.Delete(w.idle, i, i+1)
		return nil
	}
	// do or stop took wk out of idle before the timer fired, and sent
	// under mu: the job is there.
	return <-wk.job
}

// stop makes the idle workers exit and waits for every worker. A job given
// to do from then on runs on do's caller.
func (w *workers) stop() {
	w.mu.Lock()
	w.stopped = true
	for _, wk := range w.idle {
		wk.job <- nil
	}
	w.idle = nil
	w.mu.Unlock()
	w.wg.Wait()
}
