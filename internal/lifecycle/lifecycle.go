// Package lifecycle holds State, the started/closed gate of a component
// (see ferry.Starter), so that every component implements "start once,
// close for good, refuse Run and Send before Start and after Close" the
// same way.
//
// A component keeps a State in an unexported field and its package
// declares its two errors, wrapping the root package's:
//
//	var (
//		ErrNotStarted = fmt.Errorf("mysink: Send before Start: %w", ferry.ErrNotStarted)
//		ErrClosed     = fmt.Errorf("mysink: %w", ferry.ErrClosed)
//	)
//
//	func (s *Sink) Start(ctx context.Context, r ferry.Reporter) error {
//		return s.life.Start(ErrClosed, func() error {
//			// open what Send needs; set fields Send reads
//		})
//	}
//
//	func (s *Sink) Send(ctx context.Context, b ferry.Batch[T]) error {
//		if err := s.life.Err(ErrNotStarted, ErrClosed); err != nil {
//			b.Done(err)
//			return err
//		}
//		// the fields Start set are visible here
//	}
//
//	func (s *Sink) Close(ctx context.Context) error {
//		return s.life.Close(func(started bool) error {
//			// flush and free what Start took, if started
//		})
//	}
package lifecycle

import (
	"sync"
	"sync/atomic"
)

// The phases of a State, in order.
const (
	phaseNew uint32 = iota
	phaseStarted
	phaseClosed
)

// State is the lifecycle of one component: new, then started, then closed,
// each once. Its zero value is new. It is safe for concurrent use.
//
// The contract it keeps:
//
//   - Start once: the first Start that succeeds moves the State to
//     started; a later Start returns nil without starting anything again
//     (a program may start a component before it hands it to a pipeline,
//     which starts it too), and a Start after Close returns the closed
//     error, since a component does not start again.
//   - Close for good: the first Close moves the State to closed, from new
//     or started, and calls its function once; every later Close returns
//     the first one's error.
//   - Run and Send are refused before Start and after Close: Err returns
//     the component's own errors then, and nil only in between.
//
// The functions given to Start and Close run under the State's lock, so
// that a Start and a Close never overlap, and Err never lets a caller
// through before start returned: what start wrote is visible to every
// caller Err let through, without another lock.
//
// Close marks the State closed before it calls its function, so that Err
// refuses from then on. A call that Err let through just before may still
// be running while the function runs: a component whose Send must not
// overlap its clean-up calls Err under a lock of its own and takes that
// lock in the function before it frees anything (or waits for such calls
// in another way).
type State struct {
	mu       sync.Mutex // held while start or close runs
	phase    atomic.Uint32
	closeErr error // the first Close's error
}

// Start calls start and, if it returns nil, moves s to started. On a
// started State it returns nil without calling start, and on a closed
// State it returns closed (which may be nil for a component without
// Close). If start fails, s stays new and a later Start may try again. A
// nil start starts nothing.
func (s *State) Start(closed error, start func() error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.phase.Load() {
	case phaseStarted:
		return nil
	case phaseClosed:
		return closed
	}
	if start != nil {
		if err := start(); err != nil {
			return err
		}
	}
	s.phase.Store(phaseStarted)
	return nil
}

// Err returns nil while s is started and not closed, notStarted before a
// Start succeeded, and closed after Close (a component without Close may
// pass nil). It is one atomic load, cheap enough for every Send.
func (s *State) Err(notStarted, closed error) error {
	switch s.phase.Load() {
	case phaseStarted:
		return nil
	case phaseNew:
		return notStarted
	}
	return closed
}

// Started reports whether s is started and not closed.
func (s *State) Started() bool { return s.phase.Load() == phaseStarted }

// Close moves s to closed and, the first time, calls close (if not nil)
// with whether s was started, and returns its error; later calls return
// that error again without calling anything.
func (s *State) Close(close func(started bool) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	was := s.phase.Swap(phaseClosed)
	if was == phaseClosed {
		return s.closeErr
	}
	if close != nil {
		s.closeErr = close(was == phaseStarted)
	}
	return s.closeErr
}
