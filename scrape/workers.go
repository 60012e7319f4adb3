package scrape

import (
	"sync"
	"time"
)

// workers runs a Run's scrapes on goroutines that outlive a scrape. A
// scrape fits in a stack of 16 KB (none grew one further at 1000 targets);
// a goroutine starts with a few, and one per scrape grew its stack to that
// size on every scrape, copying it at each step, which cost about 20 µs a
// scrape (3 % of the process at 1000 targets). A worker keeps its grown
// stack between scrapes and exits after workerIdle with nothing to do, so
// idle targets still hold no goroutine once the scrapes stop, and a burst
// of scrapes leaves no more workers behind than it needed at once.
type workers struct {
	jobs chan func() // unbuffered: a job goes to a worker waiting for one
	quit chan struct{}
	wg   sync.WaitGroup

	mu      sync.Mutex // orders a new worker's wg.Add before stop's wg.Wait
	stopped bool
}

// workerIdle is how long a worker waits for its next scrape.
const workerIdle = 2 * time.Second

func newWorkers() *workers {
	return &workers{jobs: make(chan func()), quit: make(chan struct{})}
}

// do runs f on an idle worker, or on a new one if none is idle. It does
// not wait for f. After stop, f runs on the caller's goroutine: only a
// timer that fired as its loop stopped calls do then, and f returns at
// once.
func (w *workers) do(f func()) {
	select {
	case w.jobs <- f:
		return
	default:
	}
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		f()
		return
	}
	w.wg.Add(1)
	w.mu.Unlock()
	go w.work(f)
}

func (w *workers) work(f func()) {
	defer w.wg.Done()
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		f()
		idle.Reset(workerIdle)
		select {
		case f = <-w.jobs:
		case <-idle.C:
			return
		case <-w.quit:
			return
		}
	}
}

// stop makes the idle workers exit and waits for every worker. A job given
// to do from then on runs on do's caller, or on a worker that has not
// exited yet.
func (w *workers) stop() {
	w.mu.Lock()
	w.stopped = true
	w.mu.Unlock()
	close(w.quit)
	w.wg.Wait()
}
