// Package sinktest provides a fake Sink that records what it is sent, for
// unit tests of pipelines, and a conformance harness that checks any Sink
// against the contract of sink.Sink.
package sinktest

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/sink"
)

// ErrFake is the error a Sink fails with when told to fail without a
// specific error.
var ErrFake = errors.New("sinktest: injected failure")

// Sink is a fake sink.Sink that records every item it accepts. It is safe
// for concurrent use, and its methods return copies, so a test can inspect
// it while a pipeline runs. The zero value accepts everything.
//
// It can be told to fail the next N batches (FailNext), to reject
// everything as a permanent failure (FailPermanently), or to block until
// released (Block), which is how tests exercise retries, drops and
// backpressure. SendFunc, if set, replaces the recording entirely.
type Sink[T any] struct {
	// SendFunc, if not nil, is called for every batch instead of the
	// default behaviour; it takes over the acknowledgement.
	SendFunc func(ctx context.Context, b ferry.Batch[T]) error

	mu        sync.Mutex
	cond      chan struct{} // closed and replaced whenever items change
	items     []T
	batches   int
	failNext  int
	failErr   error
	permanent error
	blocked   chan struct{}
	closed    bool
	closes    int
}

var _ sink.Sink[ferry.Entry] = (*Sink[ferry.Entry])(nil)

// Send records b and acknowledges it, or fails, or blocks, as configured.
func (s *Sink[T]) Send(ctx context.Context, b ferry.Batch[T]) error {
	if s.SendFunc != nil {
		return s.SendFunc(ctx, b)
	}
	s.mu.Lock()
	blocked := s.blocked
	s.mu.Unlock()
	if blocked != nil {
		select {
		case <-blocked:
		case <-ctx.Done():
			// The cause says why (in a pipeline: the drain deadline).
			b.Done(context.Cause(ctx))
			return ctx.Err()
		}
	}
	s.mu.Lock()
	var err error
	switch {
	case s.closed:
		err = errors.New("sinktest: send after close")
	case s.permanent != nil:
		err = ferry.Permanent(s.permanent)
	case s.failNext > 0:
		s.failNext--
		err = s.failErr
	default:
		s.items = append(s.items, b.Items...)
		s.batches++
		s.notifyLocked()
	}
	s.mu.Unlock()
	b.Done(err)
	return err
}

func (s *Sink[T]) notifyLocked() {
	if s.cond != nil {
		close(s.cond)
		s.cond = nil
	}
}

// Close marks the sink closed; later sends fail.
func (s *Sink[T]) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.closes++
	s.notifyLocked()
	return nil
}

// FailNext makes the next n batches fail with err (ErrFake if nil).
func (s *Sink[T]) FailNext(n int, err error) {
	if err == nil {
		err = ErrFake
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failNext, s.failErr = n, err
}

// FailPermanently makes every batch fail with ferry.Permanent(err) until
// called with nil.
func (s *Sink[T]) FailPermanently(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.permanent = err
}

// Block makes Send wait until Unblock or its context ends.
func (s *Sink[T]) Block() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.blocked == nil {
		s.blocked = make(chan struct{})
	}
}

// Unblock releases blocked and future sends.
func (s *Sink[T]) Unblock() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.blocked != nil {
		close(s.blocked)
		s.blocked = nil
	}
}

// Items returns a copy of every item accepted so far, in order.
func (s *Sink[T]) Items() []T {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.items)
}

// Len returns the number of items accepted so far.
func (s *Sink[T]) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.items)
}

// Batches returns the number of batches accepted so far.
func (s *Sink[T]) Batches() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.batches
}

// Closed reports how many times Close was called.
func (s *Sink[T]) Closed() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closes
}

// Reset forgets the recorded items and every configured failure, and
// reopens the sink.
func (s *Sink[T]) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.items, s.batches, s.failNext, s.failErr, s.permanent, s.closed = nil, 0, 0, nil, nil, false
	if s.blocked != nil {
		close(s.blocked)
		s.blocked = nil
	}
}

// WaitLen waits until at least n items were accepted or timeout passes, and
// reports whether they were.
func (s *Sink[T]) WaitLen(n int, timeout time.Duration) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		if len(s.items) >= n {
			s.mu.Unlock()
			return true
		}
		if s.cond == nil {
			s.cond = make(chan struct{})
		}
		c := s.cond
		s.mu.Unlock()
		select {
		case <-c:
		case <-deadline.C:
			return false
		}
	}
}
