package sinktest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/sink"
)

// Harness describes a sink implementation to Run.
type Harness[T any] struct {
	// New returns a fresh sink, connected to a healthy receiver and not
	// started: Run calls Start when the sink implements ferry.Starter. It is
	// called once per sub-test.
	New func(t *testing.T) sink.Sink[T]
	// Item returns the i-th distinct test item.
	Item func(i int) T
	// Delivered, if not nil, returns what the receiver behind the last sink
	// New returned has stored, in any order. It lets Run check that nothing
	// was lost and that the sink did not keep using batches it had
	// acknowledged.
	Delivered func() []T
	// Key, if not nil, identifies an item when comparing deliveries (by
	// default the items are compared with reflect.DeepEqual).
	Key func(T) string
	// Timeout bounds each wait (default 10s).
	Timeout time.Duration
}

// Run checks a Sink against the contract of sink.Sink, in the spirit of
// testing/slogtest:
//   - every batch is acknowledged exactly once, and with nil for a healthy
//     receiver;
//   - Close flushes: when it returns, every batch sent before has been
//     acknowledged;
//   - Send returns once its context is done;
//   - Send after Close acknowledges with an error; Close twice and Close
//     without Send are fine;
//   - Close without Start, and twice, is fine;
//   - a sink that implements ferry.Starter starts without error, and Send
//     before Start acknowledges the batch once with an error that is not
//     settled (the data may be read again) and returns an error wrapping
//     ferry.ErrNotStarted (a pipeline relies on it to name a wrapper that
//     does not forward Start);
//   - the sink does not use a batch's items after acknowledging it
//     (checked when Delivered is set).
//
// Every sub-test but those about Start calls Start first when the sink
// implements ferry.Starter. A sink without Start, such as this package's
// fake, is used as it is.
func Run[T any](t *testing.T, h Harness[T]) {
	t.Helper()
	timeout := h.Timeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	key := h.Key
	if key == nil {
		key = func(v T) string { return fmt.Sprintf("%#v", v) }
	}

	started := func(t *testing.T) sink.Sink[T] {
		t.Helper()
		s := h.New(t)
		if st, ok := s.(ferry.Starter); ok {
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			if err := st.Start(ctx, ferry.NopReporter()); err != nil {
				t.Fatalf("Start: %v", err)
			}
		}
		return s
	}

	t.Run("AckExactlyOnceAndFlushOnClose", func(t *testing.T) {
		s := started(t)
		const batches, per = 20, 7
		var mu sync.Mutex
		acks := make([]int, batches)
		errs := make([]error, batches)
		var sent []T
		for i := range batches {
			items := make([]T, per)
			for j := range items {
				items[j] = h.Item(i*per + j)
			}
			sent = append(sent, items...)
			b := ferry.NewBatch(items, func(err error) {
				mu.Lock()
				acks[i]++
				errs[i] = err
				mu.Unlock()
				// The sink must be done with the items now: scribble over
				// them to catch one that is not.
				for j := range items {
					items[j] = h.Item(-1 - j)
				}
			})
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			if err := s.Send(ctx, b); err != nil {
				t.Errorf("Send %d: %v", i, err)
			}
			cancel()
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
		mu.Lock()
		for i, n := range acks {
			if n != 1 {
				t.Errorf("batch %d acknowledged %d times by the time Close returned, want 1", i, n)
			}
			if errs[i] != nil {
				t.Errorf("batch %d acknowledged with %v, want nil for a healthy receiver", i, errs[i])
			}
		}
		mu.Unlock()
		// Late double acknowledgements.
		time.Sleep(50 * time.Millisecond)
		mu.Lock()
		for i, n := range acks {
			if n > 1 {
				t.Errorf("batch %d acknowledged %d times", i, n)
			}
		}
		mu.Unlock()
		if h.Delivered != nil {
			got := map[string]int{}
			for _, v := range h.Delivered() {
				got[key(v)]++
			}
			for _, v := range sent {
				if got[key(v)] == 0 {
					t.Errorf("item %v was acknowledged but not delivered (or delivered after being overwritten)", v)
					break
				}
			}
		}
	})

	t.Run("SendHonoursContext", func(t *testing.T) {
		s := started(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		acked := make(chan error, 1)
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.Send(ctx, ferry.NewBatch([]T{h.Item(0)}, func(err error) { acked <- err }))
		}()
		select {
		case <-done:
		case <-time.After(timeout):
			t.Fatalf("Send with a cancelled context did not return within %v", timeout)
		}
		cctx, ccancel := context.WithTimeout(context.Background(), timeout)
		defer ccancel()
		s.Close(cctx)
		select {
		case <-acked:
		case <-time.After(timeout):
			t.Errorf("batch sent with a cancelled context was never acknowledged")
		}
	})

	t.Run("SendAfterClose", func(t *testing.T) {
		s := started(t)
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Errorf("Close without Send: %v", err)
		}
		if err := s.Close(ctx); err != nil {
			t.Errorf("second Close: %v", err)
		}
		acked := make(chan error, 2)
		s.Send(ctx, ferry.NewBatch([]T{h.Item(0)}, func(err error) { acked <- err }))
		select {
		case err := <-acked:
			if err == nil {
				t.Errorf("Send after Close acknowledged with nil, want an error")
			}
		case <-time.After(timeout):
			t.Errorf("Send after Close did not acknowledge the batch")
		}
	})

	t.Run("CloseWithoutStart", func(t *testing.T) {
		s := h.New(t)
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		for i := range 2 {
			if err := s.Close(ctx); err != nil {
				t.Errorf("Close %d without Start: %v", i+1, err)
			}
		}
	})

	t.Run("SendBeforeStart", func(t *testing.T) {
		s := h.New(t)
		if _, ok := s.(ferry.Starter); !ok {
			t.Skip("the sink has no Start")
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		var mu sync.Mutex
		var acks []error
		err := s.Send(ctx, ferry.NewBatch([]T{h.Item(0)}, func(err error) {
			mu.Lock()
			acks = append(acks, err)
			mu.Unlock()
		}))
		if !errors.Is(err, ferry.ErrNotStarted) {
			t.Errorf("Send before Start returned %v, want an error wrapping ferry.ErrNotStarted", err)
		}
		s.Close(ctx)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case len(acks) != 1:
			t.Errorf("batch sent before Start acknowledged %d times by the time Close returned, want 1", len(acks))
		case ferry.Settled(acks[0]):
			t.Errorf("batch sent before Start acknowledged with %v, want an error that is not settled", acks[0])
		}
	})
}

// Equal reports whether two item slices hold the same items in the same
// order, compared with reflect.DeepEqual. It is a convenience for tests.
func Equal[T any](a, b []T) bool { return reflect.DeepEqual(a, b) }
