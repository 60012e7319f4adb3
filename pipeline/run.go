package pipeline

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/source"
)

// Pipeline is a validated graph of components, ready to Run once.
type Pipeline struct {
	opts  options
	nodes []*node

	mu      sync.Mutex
	started bool
}

// Components returns a snapshot of every component's status, in the order
// the components were added. It is safe to call at any time, also while Run
// is running.
func (p *Pipeline) Components() []Status {
	out := make([]Status, 0, len(p.nodes))
	for _, n := range p.nodes {
		out = append(out, n.c.status())
	}
	return out
}

// Component returns the status of the named component.
func (p *Pipeline) Component(name string) (Status, bool) {
	for _, n := range p.nodes {
		if n.c.name == name {
			return n.c.status(), true
		}
	}
	return Status{}, false
}

// run is the state of one Run.
type run struct {
	opts options

	// srcCtx is cancelled when Run's context is done: sources and
	// discoverers stop reading. discCtx is also cancelled when every source
	// has finished, since nobody needs targets any more.
	srcCtx    context.Context
	discCtx   context.Context
	cancelSrc context.CancelFunc // stops the sources, and so the Run
	// hardCtx is cancelled at the drain deadline, with errDeadline as its
	// cause: sinks and processors stop waiting and give up what they hold.
	hardCtx     context.Context
	errDeadline error

	// draining is set when the drain starts (ctx done, or every source
	// finished); undelivered counts the batches whose outcome was not
	// settled from then on.
	draining    atomic.Bool
	undelivered atomic.Int64

	sources sync.WaitGroup // sources
	rest    sync.WaitGroup // everything else

	mu      sync.Mutex
	running map[*component]bool
	errs    []error
}

// Run starts every component and blocks until the pipeline has drained.
//
// It returns nil when every source is exhausted and all data has been
// delivered, or when ctx is done and the drain finished in time: sources
// stop, processors pass on what they hold, sinks flush within the drain
// deadline (WithDrainTimeout) and acknowledge what they could not deliver
// with an error, and then sources and discoverers that implement
// source.Closer are closed (saving their positions) last. A failing
// discoverer or source is restarted with backoff and shown as failing; it
// does not stop the others.
//
// If the drain deadline passed and batches were acknowledged with an error
// that is not settled, Run returns an error wrapping ferry.ErrUndelivered
// that names the deadline: the stop was orderly and the data will be read
// again on the next start. Batches the pipeline itself gives up at the
// deadline are acknowledged with such an error, and the context of calls
// into sinks and processors is cancelled with it as its cause
// (context.Cause). Run returns other errors, joined with that one, if
// components did not stop by the deadline, failed to close, or if sources
// failed permanently. A component whose Run, Process, Flush or Send says
// it was not started (ferry.ErrNotStarted), which only a wrapper that
// does not forward Start can cause, stops the pipeline as if ctx ended,
// and Run returns an error naming it. A Pipeline runs once.
func (p *Pipeline) Run(ctx context.Context) error {
	p.mu.Lock()
	if p.started {
		p.mu.Unlock()
		return errors.New("pipeline: Run called twice")
	}
	p.started = true
	p.mu.Unlock()

	r := &run{opts: p.opts, running: map[*component]bool{}}
	r.errDeadline = fmt.Errorf("pipeline: drain deadline of %v passed before delivery: %w", p.opts.drain, ferry.ErrUndelivered)
	var cancelSrc, cancelDisc context.CancelFunc
	var cancelHard context.CancelCauseFunc
	r.srcCtx, cancelSrc = context.WithCancel(ctx)
	r.cancelSrc = cancelSrc
	r.discCtx, cancelDisc = context.WithCancel(r.srcCtx)
	r.hardCtx, cancelHard = context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancelSrc()
	defer cancelDisc()
	defer cancelHard(nil)

	for _, n := range p.nodes {
		n.c.ctx = ferry.WithReporter(r.hardCtx, n.c)
	}
	if err := p.startAll(ctx); err != nil {
		return err
	}
	for _, n := range p.nodes {
		n.impl.start(r)
	}
	go func() {
		r.sources.Wait()
		cancelDisc()
	}()
	done := make(chan struct{})
	go func() {
		r.sources.Wait()
		r.rest.Wait()
		close(done)
	}()

	// The drain deadline starts when ctx is done, or when every source has
	// finished by itself.
	sourcesDone := make(chan struct{})
	go func() { r.sources.Wait(); close(sourcesDone) }()
	var deadline <-chan time.Time
	select {
	case <-done:
	case <-ctx.Done():
	case <-sourcesDone:
	}
	r.draining.Store(true)
	t := time.NewTimer(p.opts.drain)
	defer t.Stop()
	deadline = t.C
	passed := false
	select {
	case <-done:
	case <-deadline:
		passed = true
		cancelHard(r.errDeadline)
		p.opts.logger.Warn("pipeline: drain deadline reached; giving up undelivered data", "timeout", p.opts.drain)
		grace := time.NewTimer(stopGrace)
		defer grace.Stop()
		select {
		case <-done:
		case <-grace.C:
			r.mu.Lock()
			var stuck []string
			for c := range r.running {
				stuck = append(stuck, c.name)
			}
			r.mu.Unlock()
			slices.Sort(stuck)
			return fmt.Errorf("pipeline: components did not stop after the drain deadline: %v", stuck)
		}
	}

	// Everything downstream has drained: save positions last.
	closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.opts.drain)
	defer cancel()
	for _, n := range p.nodes {
		if c, ok := n.value.(source.Closer); ok && (n.c.kind == KindSource || n.c.kind == KindDiscoverer) {
			if err := safeCall(n.c.name, func() error { return c.Close(ferry.WithReporter(closeCtx, n.c)) }); err != nil {
				n.c.failed(ferry.Failing, err)
				r.fail(fmt.Errorf("%s %q: close: %w", n.c.kind, n.c.name, err))
			}
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := r.undelivered.Load(); passed && n > 0 {
		batches := "batches"
		if n == 1 {
			batches = "batch"
		}
		r.errs = append(r.errs, fmt.Errorf("pipeline: drain deadline of %v passed with %d %s not delivered: %w", p.opts.drain, n, batches, ferry.ErrUndelivered))
	}
	return errors.Join(r.errs...)
}

// watchAck returns b with an Ack that counts, once the drain has started,
// an outcome that is not settled, and then passes it on to b's own Ack.
// Batches without an Ack are returned as they are: nobody reads them again.
func watchAck[T any](r *run, b ferry.Batch[T]) ferry.Batch[T] {
	if b.Ack == nil {
		return b
	}
	parent := b.Ack
	b.Ack = ferry.NewAck(func(err error) {
		if !ferry.Settled(err) && r.draining.Load() {
			r.undelivered.Add(1)
		}
		parent.Done(err)
	})
	return b
}

// startAll calls Start on every component that implements ferry.Starter, in
// the order they were added. If one fails, those already started are closed
// again and the error names the component: nothing runs.
func (p *Pipeline) startAll(ctx context.Context) error {
	var started []*node
	for _, n := range p.nodes {
		st, ok := n.value.(ferry.Starter)
		if !ok || isNil(n.value) {
			continue
		}
		if err := safeCall(n.c.name, func() error { return st.Start(n.c.ctx, n.c) }); err != nil {
			n.c.failed(ferry.Failing, err)
			closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.opts.drain)
			defer cancel()
			for _, s := range started {
				if c, ok := s.value.(interface{ Close(context.Context) error }); ok {
					_ = safeCall(s.c.name, func() error { return c.Close(closeCtx) })
				}
			}
			return fmt.Errorf("pipeline: %s %q: start: %w", n.c.kind, n.c.name, err)
		}
		started = append(started, n)
	}
	return nil
}

// notStarted reports whether err says that a component was not started
// (ferry.ErrNotStarted). The pipeline started every ferry.Starter before
// any call, so such an error never heals: the component given to the
// pipeline is, or wraps, one that needs Start and never got it, as a
// wrapper that does not forward Start. The first time, the pipeline logs
// an error naming the component and its type, stops as if its context
// ended, and Run returns that error.
func (r *run) notStarted(c *component, err error) bool {
	if !errors.Is(err, ferry.ErrNotStarted) {
		return false
	}
	if c.notStarted.Swap(true) {
		return true
	}
	why := c.typ + " does not implement ferry.Starter, so the pipeline could not start it"
	if c.starter {
		why = "the pipeline started " + c.typ + ", whose Start did not start what it wraps"
	}
	err = fmt.Errorf("pipeline: %s %q says it was not started: %s (a component that wraps another must implement ferry.Starter and call the wrapped component's Start): %w", c.kind, c.name, why, err)
	c.failed(ferry.Failing, err)
	c.logger.Error("component not started; stopping the pipeline", "type", c.typ, "err", err)
	r.fail(err)
	r.cancelSrc()
	return true
}

// stopGrace is how long Run waits past the drain deadline for components
// that ignore it before returning anyway.
const stopGrace = 2 * time.Second

func (r *run) fail(err error) {
	r.mu.Lock()
	r.errs = append(r.errs, err)
	r.mu.Unlock()
}

// goTracked runs fn on a new goroutine, counted in wg and listed as running
// for c until it returns.
func (r *run) goTracked(wg *sync.WaitGroup, c *component, fn func()) {
	wg.Add(1)
	r.mu.Lock()
	r.running[c] = true
	r.mu.Unlock()
	go func() {
		defer wg.Done()
		defer func() {
			r.mu.Lock()
			delete(r.running, c)
			r.mu.Unlock()
		}()
		fn()
	}()
}

// safeCall calls fn and turns a panic into an error.
func safeCall(name string, fn func() error) (err error) {
	defer func() {
		if rec := recover(); rec != nil {
			err = panicError(name, rec)
			err = fmt.Errorf("%w\n%s", err, debug.Stack())
		}
	}()
	return fn()
}

// supervise runs fn until ctx is done or fn returns nil, restarting it with
// exponential backoff after errors (from minBackoff, doubling up to
// maxBackoff, and from minBackoff again after a run longer than maxBackoff).
// A panic counts as an error; a permanent error is recorded as a failure of
// the Run and not restarted.
func (r *run) supervise(ctx context.Context, c *component, fn func(context.Context) error) {
	backoff := r.opts.minBackoff
	cctx := ferry.WithReporter(ctx, c)
	for {
		start := time.Now()
		err := safeCall(c.name, func() error { return fn(cctx) })
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			return
		}
		if r.notStarted(c, err) {
			return
		}
		c.failed(ferry.Failing, err)
		if ferry.IsPermanent(err) {
			c.logger.Error("failed permanently; not restarting", "err", err)
			r.fail(fmt.Errorf("%s %q: %w", c.kind, c.name, err))
			return
		}
		if time.Since(start) > r.opts.maxBackoff {
			backoff = r.opts.minBackoff
		}
		c.logger.Warn("failed; restarting", "err", err, "backoff", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, r.opts.maxBackoff)
		c.restarts.Add(1)
	}
}
