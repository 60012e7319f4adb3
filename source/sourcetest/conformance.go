// Package sourcetest checks Source implementations against the contract of
// source.Source, in the spirit of testing/slogtest.
package sourcetest

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/source"
	"github.com/prometheus/prometheus/model/labels"
)

// Harness describes a source implementation to Run.
type Harness[T any] struct {
	// New returns a fresh source, not started, that has at least Want items
	// to emit once started and run.
	New func(t *testing.T) source.Source[T]
	// Want is how many items Run waits for before cancelling (at least 1).
	Want int
	// Timeout bounds each wait (default 10s).
	Timeout time.Duration
}

// LateSendWindow is how long Run keeps watching the output channel after
// the source's Run returned, to catch a send that comes too late.
const LateSendWindow = 100 * time.Millisecond

// Run checks that a source
//   - that implements ferry.Starter refuses to Run without Start (it
//     returns an error wrapping ferry.ErrNotStarted, on which a pipeline
//     relies to name a wrapper that does not forward Start, and sends
//     nothing), and starts without error;
//   - emits non-empty batches and at least Want items;
//   - does not modify a batch after sending it;
//   - returns soon after its context is cancelled, with nil;
//   - never closes its output channel;
//   - never sends on its output channel after its Run returned, also when
//     it was blocked on a full channel at the cancel (checked for
//     LateSendWindow after Run returned);
//   - keeps emitting while earlier batches are still unacknowledged, up to
//     the channel's bound (acknowledgements may come late, in any order);
//   - that implements source.Closer closes without error, twice, and
//     then (if it implements ferry.Starter) refuses Start and Run with an
//     error wrapping ferry.ErrClosed: a component starts once and closes
//     for good;
//   - that implements ferry.Starter accepts a second Start as a no-op.
func Run[T any](t *testing.T, h Harness[T]) {
	t.Helper()
	check(t, h, h.New(t))
}

// failer is the part of *testing.T that check uses, so that the harness
// itself can be tested with a fake.
type failer interface {
	Helper()
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
}

func check[T any](t failer, h Harness[T], src source.Source[T]) {
	t.Helper()
	timeout := h.Timeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	want := max(h.Want, 1)
	bg := context.Background()
	if st, ok := src.(ferry.Starter); ok {
		// Run without Start must refuse, not start anything lazily.
		out := make(chan ferry.Batch[T], 1)
		ctx, cancel := context.WithTimeout(bg, timeout)
		err := src.Run(ctx, out)
		cancel()
		if err == nil {
			t.Errorf("Run without Start returned nil, want an error saying Start is required")
		} else if !errors.Is(err, ferry.ErrNotStarted) {
			t.Errorf("Run without Start returned %v, want an error wrapping ferry.ErrNotStarted", err)
		}
		if len(out) > 0 {
			t.Errorf("Run without Start sent a batch")
		}
		if err := st.Start(bg, ferry.NopReporter()); err != nil {
			t.Fatalf("Start: %v", err)
		}
		if err := st.Start(bg, ferry.NopReporter()); err != nil {
			t.Errorf("second Start: %v, want nil (a no-op)", err)
		}
	}
	defer func() {
		c, ok := src.(source.Closer)
		if !ok {
			return
		}
		ctx, cancel := context.WithTimeout(bg, timeout)
		defer cancel()
		for i := range 2 {
			if err := c.Close(ctx); err != nil {
				t.Errorf("Close %d: %v", i+1, err)
			}
		}
		st, ok := src.(ferry.Starter)
		if !ok {
			return
		}
		if err := st.Start(ctx, ferry.NopReporter()); !errors.Is(err, ferry.ErrClosed) {
			t.Errorf("Start after Close returned %v, want an error wrapping ferry.ErrClosed", err)
		}
		out := make(chan ferry.Batch[T], 1)
		if err := src.Run(ctx, out); !errors.Is(err, ferry.ErrClosed) {
			t.Errorf("Run after Close returned %v, want an error wrapping ferry.ErrClosed", err)
		}
		if len(out) > 0 {
			t.Errorf("Run after Close sent a batch")
		}
	}()

	const bound = 4
	out := make(chan ferry.Batch[T], bound)
	ctx, cancel := context.WithCancel(bg)
	defer cancel()
	ret := make(chan error, 1)
	go func() { ret <- src.Run(ctx, out) }()

	type held struct {
		b    ferry.Batch[T]
		snap []T
	}
	var pending []held
	got := 0
	returned := false
	var runErr error
	deadline := time.After(timeout)
	for got < want {
		select {
		case b, ok := <-out:
			if !ok {
				t.Fatalf("the source closed its output channel")
			}
			if len(b.Items) == 0 {
				t.Errorf("the source emitted an empty batch")
			}
			got += len(b.Items)
			pending = append(pending, held{b, append([]T(nil), b.Items...)})
		case runErr = <-ret:
			// A finite source may return while its last batches still sit
			// in the channel: take those first.
			returned = true
			for n := len(out); n > 0; n-- {
				b := <-out
				got += len(b.Items)
				pending = append(pending, held{b, append([]T(nil), b.Items...)})
			}
			if got < want {
				t.Fatalf("Run returned %v after %d items, want at least %d", runErr, got, want)
			}
		case <-deadline:
			t.Fatalf("got %d items within %v, want %d", got, timeout, want)
		}
	}
	// Give a misbehaving source a chance to modify what it sent, and a
	// source that goes on emitting the time to fill the channel, so that
	// it is blocked on a full channel when cancelled.
	fill := time.NewTimer(20 * time.Millisecond)
	<-fill.C
	// Acknowledge in reverse order: sources must cope with any order.
	for i := len(pending) - 1; i >= 0; i-- {
		p := pending[i]
		if !reflect.DeepEqual(p.b.Items, p.snap) {
			t.Errorf("batch %d changed after it was sent", i)
		}
		p.b.Done(nil)
	}

	// Cancel while not reading: a source blocked on the full channel must
	// give up its send, not leave it to a goroutine that sends later.
	cancel()
	if !returned {
		select {
		case runErr = <-ret:
		case <-time.After(timeout):
			t.Fatalf("Run did not return within %v of cancel (with its output channel not read)", timeout)
		}
	}
	if runErr != nil && runErr != context.Canceled {
		t.Errorf("Run returned %v after cancel, want nil", runErr)
	}
	// What is in the channel now was sent before Run returned; anything
	// after it was sent later.
	for n := len(out); n > 0; n-- {
		(<-out).Done(context.Canceled)
	}
	window := time.NewTimer(LateSendWindow)
	defer window.Stop()
	for {
		select {
		case b, ok := <-out:
			if !ok {
				t.Fatalf("the source closed its output channel")
			}
			b.Done(context.Canceled)
			t.Errorf("the source sent a batch of %d items after its Run returned", len(b.Items))
			return
		case <-window.C:
			return
		}
	}
}

// Targeted turns a TargetSource into a Source that sees a fixed target set,
// so that Run can check it. The Source implements ferry.Starter and
// source.Closer when s does.
func Targeted[T any](s source.TargetSource[T], targets []labels.Labels) source.Source[T] {
	ts := targetedSource[T]{s, targets}
	_, starts := s.(ferry.Starter)
	_, closes := s.(source.Closer)
	switch {
	case starts && closes:
		return struct {
			targetedSource[T]
			starter
			source.Closer
		}{ts, starter{s}, s.(source.Closer)}
	case starts:
		return struct {
			targetedSource[T]
			starter
		}{ts, starter{s}}
	case closes:
		return struct {
			targetedSource[T]
			source.Closer
		}{ts, s.(source.Closer)}
	}
	return ts
}

type targetedSource[T any] struct {
	s       source.TargetSource[T]
	targets []labels.Labels
}

func (ts targetedSource[T]) Run(ctx context.Context, out chan<- ferry.Batch[T]) error {
	ch := make(chan []labels.Labels, 1)
	ch <- ts.targets
	return ts.s.Run(ctx, ch, out)
}

type starter struct{ s any }

func (s starter) Start(ctx context.Context, r ferry.Reporter) error {
	return s.s.(ferry.Starter).Start(ctx, r)
}
