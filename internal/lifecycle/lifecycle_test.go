package lifecycle

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
)

var (
	errNotStarted = errors.New("not started")
	errClosed     = errors.New("closed")
)

func check(t *testing.T, s *State, want error) {
	t.Helper()
	if err := s.Err(errNotStarted, errClosed); err != want {
		t.Fatalf("Err = %v, want %v", err, want)
	}
	if s.Started() != (want == nil) {
		t.Fatalf("Started = %v with Err %v", s.Started(), want)
	}
}

func TestPhases(t *testing.T) {
	var s State
	check(t, &s, errNotStarted)
	starts := 0
	start := func() error { starts++; return nil }
	if err := s.Start(errClosed, start); err != nil {
		t.Fatal(err)
	}
	check(t, &s, nil)
	if err := s.Start(errClosed, start); err != nil || starts != 1 {
		t.Fatalf("second Start: %v, start called %d times; want nil, once", err, starts)
	}
	var closes []bool
	closeErr := errors.New("flush failed")
	closeFn := func(started bool) error { closes = append(closes, started); return closeErr }
	for range 2 {
		if err := s.Close(closeFn); err != closeErr {
			t.Fatalf("Close = %v, want the first Close's error", err)
		}
	}
	if len(closes) != 1 || !closes[0] {
		t.Fatalf("close calls %v, want one with started", closes)
	}
	check(t, &s, errClosed)
	if err := s.Start(errClosed, start); err != errClosed || starts != 1 {
		t.Fatalf("Start after Close: %v, start called %d times; want the closed error, once", err, starts)
	}
}

func TestFailedStartStaysNew(t *testing.T) {
	var s State
	boom := errors.New("address in use")
	if err := s.Start(errClosed, func() error { return boom }); err != boom {
		t.Fatalf("Start = %v, want start's error", err)
	}
	check(t, &s, errNotStarted)
	if err := s.Start(errClosed, nil); err != nil {
		t.Fatal(err)
	}
	check(t, &s, nil)
}

func TestCloseWithoutStart(t *testing.T) {
	var s State
	var started []bool
	if err := s.Close(func(st bool) error { started = append(started, st); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(nil); err != nil {
		t.Fatal(err)
	}
	if len(started) != 1 || started[0] {
		t.Fatalf("close calls %v, want one without started", started)
	}
	check(t, &s, errClosed)
}

// TestConcurrent races Starts, Errs and Closes: start and close run once
// each, never together, and a caller that Err let through sees what start
// wrote (the race detector checks the read of cfg).
func TestConcurrent(t *testing.T) {
	for range 200 {
		var s State
		var starts, closes, inside atomic.Int32
		var cfg *int // written by start, read after Err
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				s.Start(errClosed, func() error {
					if inside.Add(1) != 1 {
						t.Error("start overlaps start or close")
					}
					starts.Add(1)
					v := 42
					cfg = &v
					inside.Add(-1)
					return nil
				})
			})
			wg.Go(func() {
				if s.Err(errNotStarted, errClosed) == nil && *cfg != 42 {
					t.Error("Err let a caller through before start's writes")
				}
			})
			wg.Go(func() {
				s.Close(func(bool) error {
					if inside.Add(1) != 1 {
						t.Error("close overlaps start or close")
					}
					closes.Add(1)
					inside.Add(-1)
					return nil
				})
			})
		}
		wg.Wait()
		if starts.Load() > 1 || closes.Load() != 1 {
			t.Fatalf("start ran %d times, close %d; want at most once, once", starts.Load(), closes.Load())
		}
		check(t, &s, errClosed)
	}
}

// sink is the pattern the package doc describes for a component whose
// Send must not overlap its clean-up: Err under the component's lock, and
// the clean-up takes that lock first.
type sink struct {
	life  State
	mu    sync.Mutex
	queue chan int
}

func (k *sink) send(v int) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.life.Err(errNotStarted, errClosed); err != nil {
		return err
	}
	k.queue <- v // a send on a closed channel would panic
	return nil
}

func TestSendRacingClose(t *testing.T) {
	for range 200 {
		k := &sink{}
		k.life.Start(errClosed, func() error { k.queue = make(chan int, 1000); return nil })
		var sent atomic.Int32
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				if k.send(i) == nil {
					sent.Add(1)
				}
			})
		}
		k.life.Close(func(started bool) error {
			k.mu.Lock()
			defer k.mu.Unlock()
			close(k.queue)
			return nil
		})
		wg.Wait()
		if got := len(k.queue); int32(got) != sent.Load() {
			t.Fatalf("%d sends succeeded, %d in the queue", sent.Load(), got)
		}
		if err := k.send(1); err != errClosed {
			t.Fatalf("send after Close: %v", err)
		}
	}
}
