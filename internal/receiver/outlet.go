package receiver

import (
	"context"
	"errors"
	"math"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferrydev/ferry"
)

// Forever is a PushOptions.FullWait without limit: the request waits for
// room as long as its context and the Run last.
const Forever time.Duration = math.MaxInt64

// ReasonPipelineFull is the reason Push counts the items of a request with
// (ferry.Reporter.Dropped) when it refuses it because the pipeline is full.
const ReasonPipelineFull = "pipeline_full"

// PushOptions say how long Push waits.
type PushOptions struct {
	// FullWait is how long a request waits for room in the pipeline, and,
	// between Open and the first Run, for that Run, before it is refused:
	// 429 when the pipeline stayed full, 503 when no Run came. Zero refuses
	// at once; Forever waits as long as the request's context.
	FullWait time.Duration
	// WaitForAck makes Push return only once the batch was acknowledged,
	// with what the acknowledgement says; otherwise Push returns nil once
	// the batch is in the pipeline, and the batch has no acknowledgement.
	WaitForAck bool
	// AckTimeout bounds the wait for the acknowledgement; zero waits as
	// long as the request's context.
	AckTimeout time.Duration
}

// Outlet hands the items of requests to the running Run of a source. Its
// zero value is closed to requests until Open. It is safe for concurrent
// use.
//
// The source's Start calls Open, its Run calls Run (or Attach and Detach),
// its Close calls Close, and its HTTP handler calls Push for every request.
// A request before Open or after Close gets 503; one between Open and the
// first Run waits for that Run (up to FullWait); one after a Run returned
// gets 503. Run does not return while a request is handing a batch to
// out: requests that wait for room when Run is to return are woken and
// answered 503, and no request sends on out after Run returned, so the
// caller may close out then.
type Outlet[T any] struct {
	mu       sync.Mutex
	name     string // starts messages
	rep      ferry.Reporter
	opened   bool
	closed   bool
	ran      bool // a Run attached since Open
	out      chan<- ferry.Batch[T]
	stop     chan struct{} // closed when the attached Run detaches
	changed  chan struct{} // closed and replaced on every change of the above
	inflight sync.WaitGroup
	sending  atomic.Int32 // requests between taking out and the end of their send
}

// Open makes the outlet ready for a Run. name starts the messages of its
// errors ("lokipush"), and rep counts the items of refused requests and is
// told the health when a Run attaches.
func (o *Outlet[T]) Open(name string, rep ferry.Reporter) {
	if rep == nil {
		rep = ferry.NopReporter()
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.name, o.rep, o.opened = name, rep, true
	o.notifyLocked()
}

// Close refuses requests from now on, with 503, also those waiting for a
// first Run. A Run attached stays attached until it detaches.
func (o *Outlet[T]) Close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.closed = true
	o.notifyLocked()
}

// Reporter returns the Reporter given to Open, or one that only logs.
func (o *Outlet[T]) Reporter() ferry.Reporter {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.rep == nil {
		return ferry.NopReporter()
	}
	return o.rep
}

// Run makes requests emit on out until ctx is done and returns nil then,
// once no request is sending on out. It returns an error if the outlet is
// not open or a Run is attached already.
func (o *Outlet[T]) Run(ctx context.Context, out chan<- ferry.Batch[T]) error {
	if err := o.Attach(out); err != nil {
		return err
	}
	<-ctx.Done()
	o.Detach()
	return nil
}

// Attach makes requests emit on out until Detach, and reports the source
// healthy. It returns an error if the outlet is not open or closed, or
// another Run is attached.
func (o *Outlet[T]) Attach(out chan<- ferry.Batch[T]) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	switch {
	case !o.opened || o.closed:
		return errors.New(o.name + ": receiver not open")
	case o.out != nil:
		return errors.New(o.name + ": receiver already running")
	}
	o.out, o.stop, o.ran = out, make(chan struct{}), true
	o.notifyLocked()
	o.rep.SetHealth(ferry.Healthy, nil)
	return nil
}

// Detach stops requests from emitting on the attached out: those waiting
// for room are answered 503, and Detach returns once none is sending on
// out. Later requests get 503 until the next Attach.
func (o *Outlet[T]) Detach() {
	o.mu.Lock()
	if o.out == nil {
		o.mu.Unlock()
		return
	}
	close(o.stop)
	o.out, o.stop = nil, nil
	o.notifyLocked()
	o.mu.Unlock()
	// No request takes out any more; wait for those that did.
	o.inflight.Wait()
}

// Running reports whether a Run is attached.
func (o *Outlet[T]) Running() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.out != nil
}

// Sending returns how many requests hold the attached out: waiting for
// room or sending. Tests use it to know a request is blocked.
func (o *Outlet[T]) Sending() int { return int(o.sending.Load()) }

func (o *Outlet[T]) notifyLocked() {
	if o.changed != nil {
		close(o.changed)
	}
	o.changed = make(chan struct{})
}

// Push hands items to the running Run as one batch, waiting as opts say,
// and returns nil once the batch is in the pipeline (or, with WaitForAck,
// was delivered). Otherwise it returns what to answer, as an *Error when
// there is a status to answer:
//
//   - 429 with RetryAfter: the pipeline had no room within FullWait; the
//     items are counted as dropped with ReasonPipelineFull.
//   - 503 with RetryAfter: no Run is attached (before Open, after Close,
//     after Run returned, or none came within FullWait), Run returned
//     while the request waited, the batch was acknowledged with an error
//     that is not permanent, or its acknowledgement did not come within
//     AckTimeout.
//   - a ferry.Permanent error: the batch was acknowledged with it (its
//     items were dropped for good downstream).
//   - ctx's error when ctx ended first: the client went away.
//
// A batch Push did not hand on is settled with the reason.
func (o *Outlet[T]) Push(ctx context.Context, items []T, opts PushOptions) error {
	var acked chan error
	b := ferry.Batch[T]{Items: items}
	if opts.WaitForAck {
		acked = make(chan error, 1)
		b = ferry.NewBatch(items, func(err error) { acked <- err })
	}
	if err := o.hand(ctx, b, opts.FullWait); err != nil {
		return err
	}
	if acked == nil {
		return nil
	}
	var timeout <-chan time.Time
	if opts.AckTimeout > 0 {
		t := time.NewTimer(opts.AckTimeout)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case err := <-acked:
		switch {
		case err == nil:
			return nil
		case ferry.IsPermanent(err):
			return err
		}
		return retryf(http.StatusServiceUnavailable, "%s: not delivered, push again: %v", o.name, err)
	case <-timeout:
		return retryf(http.StatusServiceUnavailable, "%s: delivery not confirmed in time, push again", o.name)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// hand sends b on the attached out, waiting up to wait for room (and for
// a first Run). If it does not, it settles b and returns the error to
// answer.
func (o *Outlet[T]) hand(ctx context.Context, b ferry.Batch[T], wait time.Duration) error {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	// expired is the end of the wait, from the first time it is needed.
	expired := func() <-chan time.Time {
		if timer == nil {
			timer = time.NewTimer(wait)
		}
		return timer.C
	}
	for {
		o.mu.Lock()
		name, out, stop, changed := o.name, o.out, o.stop, o.changed
		firstRun := o.opened && !o.closed && !o.ran
		if out != nil {
			o.inflight.Add(1)
			o.sending.Add(1)
		}
		o.mu.Unlock()
		if out != nil {
			err := o.send(ctx, out, stop, b, wait, expired)
			o.sending.Add(-1)
			o.inflight.Done()
			return err
		}
		if !firstRun || wait <= 0 {
			return o.refuse(b, retryf(http.StatusServiceUnavailable, "%s: receiver not running", name))
		}
		select {
		case <-changed:
		case <-expired():
			return o.refuse(b, retryf(http.StatusServiceUnavailable, "%s: receiver not running", name))
		case <-ctx.Done():
			return o.refuse(b, ctx.Err())
		}
	}
}

// send sends b on out; the caller holds inflight.
func (o *Outlet[T]) send(ctx context.Context, out chan<- ferry.Batch[T], stop chan struct{}, b ferry.Batch[T], wait time.Duration, expired func() <-chan time.Time) error {
	select {
	case out <- b:
		return nil
	default:
	}
	full := func() error {
		o.rep.Dropped(ReasonPipelineFull, len(b.Items))
		return o.refuse(b, retryf(http.StatusTooManyRequests, "%s: pipeline full, retry later", o.name))
	}
	if wait <= 0 {
		return full()
	}
	select {
	case out <- b:
		return nil
	case <-expired():
		return full()
	case <-stop:
		return o.refuse(b, retryf(http.StatusServiceUnavailable, "%s: receiver stopped", o.name))
	case <-ctx.Done():
		return o.refuse(b, ctx.Err())
	}
}

// refuse settles b with err and returns err.
func (o *Outlet[T]) refuse(b ferry.Batch[T], err error) error {
	b.Done(err)
	return err
}
