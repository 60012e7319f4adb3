// Package sourcetest checks Source implementations against the contract of
// source.Source, in the spirit of testing/slogtest.
package sourcetest

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/source"
	"github.com/prometheus/prometheus/model/labels"
)

// Harness describes a source implementation to Run.
type Harness[T any] struct {
	// New returns a fresh source that has at least Want items to emit.
	New func(t *testing.T) source.Source[T]
	// Want is how many items Run waits for before cancelling (at least 1).
	Want int
	// Timeout bounds each wait (default 10s).
	Timeout time.Duration
}

// Run checks that a source
//   - emits non-empty batches and at least Want items;
//   - does not modify a batch after sending it;
//   - returns soon after its context is cancelled, with nil;
//   - never closes its output channel;
//   - keeps emitting while earlier batches are still unacknowledged, up to
//     the channel's bound (acknowledgements may come late, in any order).
func Run[T any](t *testing.T, h Harness[T]) {
	t.Helper()
	timeout := h.Timeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	want := max(h.Want, 1)
	src := h.New(t)
	out := make(chan ferry.Batch[T], 4)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ret := make(chan error, 1)
	go func() { ret <- src.Run(ctx, out) }()

	type held struct {
		b    ferry.Batch[T]
		snap []T
	}
	var pending []held
	got := 0
	deadline := time.After(timeout)
	for got < want {
		select {
		case b, ok := <-out:
			if !ok {
				t.Fatal("the source closed its output channel")
			}
			if len(b.Items) == 0 {
				t.Errorf("the source emitted an empty batch")
			}
			got += len(b.Items)
			pending = append(pending, held{b, append([]T(nil), b.Items...)})
		case err := <-ret:
			// A finite source may return while its last batches still sit
			// in the channel: take those first.
			for drained := false; !drained; {
				select {
				case b := <-out:
					got += len(b.Items)
					pending = append(pending, held{b, append([]T(nil), b.Items...)})
				default:
					drained = true
				}
			}
			if got < want {
				t.Fatalf("Run returned %v after %d items, want at least %d", err, got, want)
			}
			ret <- err // for the check after cancel
		case <-deadline:
			t.Fatalf("got %d items within %v, want %d", got, timeout, want)
		}
	}
	// Give a misbehaving source a chance to modify what it sent.
	time.Sleep(20 * time.Millisecond)
	// Acknowledge in reverse order: sources must cope with any order.
	for i := len(pending) - 1; i >= 0; i-- {
		p := pending[i]
		if !reflect.DeepEqual(p.b.Items, p.snap) {
			t.Errorf("batch %d changed after it was sent", i)
		}
		p.b.Done(nil)
	}

	cancel()
	// Drain what is in flight while waiting for Run to return.
	stop := time.After(timeout)
	for {
		select {
		case b, ok := <-out:
			if !ok {
				t.Fatal("the source closed its output channel")
			}
			b.Done(context.Canceled)
		case err := <-ret:
			if err != nil && err != context.Canceled {
				t.Errorf("Run returned %v after cancel, want nil", err)
			}
			return
		case <-stop:
			t.Fatalf("Run did not return within %v of cancel", timeout)
		}
	}
}

// Targeted turns a TargetSource into a Source that sees a fixed target set,
// so that Run can check it.
func Targeted[T any](s source.TargetSource[T], targets []labels.Labels) source.Source[T] {
	return targetedSource[T]{s, targets}
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
