package receiver

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/internal/poll"
	"github.com/ferrydev/ferry/internal/receiver/receivertest"
	"github.com/ferrydev/ferry/internal/reptest"
)

// running opens o and runs it with an out channel of capacity n until the
// test ends; stop ends Run early and returns once it returned.
func running(t *testing.T, o *Outlet[int], rep ferry.Reporter, n int) (out chan ferry.Batch[int], stop func()) {
	t.Helper()
	o.Open("test", rep)
	out = make(chan ferry.Batch[int], n)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- o.Run(ctx, out) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	poll.Until(t, o.Running, "Run to attach")
	return out, stop
}

// wantStatus checks that err answers status, with Retry-After if retry.
func wantStatus(t *testing.T, err error, status int, retry bool) {
	t.Helper()
	if s, r := Status(err); s != status || r != retry {
		t.Fatalf("%v: status %d, Retry-After %v; want %d, %v", err, s, r, status, retry)
	}
}

func TestPushHandsOn(t *testing.T) {
	var o Outlet[int]
	out, _ := running(t, &o, nil, 1)
	if err := o.Push(context.Background(), []int{1, 2}, PushOptions{}); err != nil {
		t.Fatal(err)
	}
	b := <-out
	if len(b.Items) != 2 || b.Ack != nil {
		t.Fatalf("batch %v with ack %v, want 2 items and none", b.Items, b.Ack)
	}
}

func TestPushNotRunning(t *testing.T) {
	var o Outlet[int]
	wantStatus(t, o.Push(context.Background(), []int{1}, PushOptions{FullWait: Forever}), 503, true)

	// Open, no Run: refused at once without FullWait, after it with one.
	o.Open("test", nil)
	wantStatus(t, o.Push(context.Background(), []int{1}, PushOptions{}), 503, true)
	wantStatus(t, o.Push(context.Background(), []int{1}, PushOptions{FullWait: time.Millisecond}), 503, true)

	// After Run returned: refused at once, however long the wait.
	_, stop := running(t, &o, nil, 1)
	stop()
	wantStatus(t, o.Push(context.Background(), []int{1}, PushOptions{FullWait: Forever, WaitForAck: true}), 503, true)
}

func TestPushWaitsForFirstRun(t *testing.T) {
	var o Outlet[int]
	o.Open("test", nil)
	pushed := make(chan error, 1)
	go func() { pushed <- o.Push(context.Background(), []int{1}, PushOptions{FullWait: Forever}) }()
	out, _ := running(t, &o, nil, 1)
	if err := <-pushed; err != nil {
		t.Fatal(err)
	}
	<-out

	// Close answers pushes waiting for a first Run at once.
	var c Outlet[int]
	c.Open("test", nil)
	go func() { pushed <- c.Push(context.Background(), []int{1}, PushOptions{FullWait: Forever}) }()
	c.Close()
	wantStatus(t, <-pushed, 503, true)
	if err := c.Run(context.Background(), out); err == nil {
		t.Error("Run on a closed outlet succeeded")
	}
}

func TestPushFull(t *testing.T) {
	var o Outlet[int]
	rep := &reptest.Reporter{}
	running(t, &o, rep, 0) // nobody reads
	wantStatus(t, o.Push(context.Background(), []int{1, 2}, PushOptions{}), 429, true)
	wantStatus(t, o.Push(context.Background(), []int{1, 2, 3}, PushOptions{FullWait: time.Millisecond}), 429, true)
	if n := rep.Drops(ReasonPipelineFull); n != 5 {
		t.Errorf("%d items counted as dropped, want 5", n)
	}
}

// TestRunWaitsForPushes: a push blocked on a full pipeline when Run ends
// is answered 503, and Run returns only once it stopped trying to send.
func TestRunWaitsForPushes(t *testing.T) {
	var o Outlet[int]
	_, stop := running(t, &o, nil, 0)
	pushed := make(chan error, 1)
	go func() {
		pushed <- o.Push(context.Background(), []int{1}, PushOptions{FullWait: Forever, WaitForAck: true})
	}()
	poll.Until(t, func() bool { return o.Sending() == 1 }, "the push to wait for room")
	stop()
	if n := o.Sending(); n != 0 {
		t.Fatalf("Run returned while %d pushes hold out", n)
	}
	wantStatus(t, <-pushed, 503, true)
}

func TestPushAcknowledgement(t *testing.T) {
	for _, tc := range []struct {
		name    string
		outcome error
		status  int // 200: nil; 0: the permanent error itself
		retry   bool
	}{
		{"delivered", nil, 200, false},
		{"permanent", ferry.Permanentf("too old"), 0, false},
		{"retryable", errors.New("sink down"), 503, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var o Outlet[int]
			out, _ := running(t, &o, nil, 1)
			go func() { (<-out).Done(tc.outcome) }()
			err := o.Push(context.Background(), []int{1}, PushOptions{WaitForAck: true})
			switch tc.status {
			case 200:
				if err != nil {
					t.Fatal(err)
				}
			case 0:
				if !ferry.IsPermanent(err) {
					t.Fatalf("%v, want the permanent outcome", err)
				}
			default:
				wantStatus(t, err, tc.status, tc.retry)
			}
		})
	}
	t.Run("timeout", func(t *testing.T) {
		var o Outlet[int]
		out, _ := running(t, &o, nil, 1)
		err := o.Push(context.Background(), []int{1}, PushOptions{WaitForAck: true, AckTimeout: time.Millisecond})
		wantStatus(t, err, 503, true)
		(<-out).Done(nil) // a late acknowledgement goes nowhere
	})
	t.Run("client gone", func(t *testing.T) {
		var o Outlet[int]
		out, _ := running(t, &o, nil, 1)
		ctx, cancel := context.WithCancel(context.Background())
		go func() { b := <-out; cancel(); b.Done(nil) }()
		// The acknowledgement and the client's going race: either wins.
		if err := o.Push(ctx, []int{1}, PushOptions{WaitForAck: true}); err != nil {
			wantStatus(t, err, 0, false)
		}
	})
}

// TestPushesRacingRunReturn: many pushes race the return of Run, and the
// caller closes out as soon as Run returned, as a pipeline does: none may
// send afterwards.
func TestPushesRacingRunReturn(t *testing.T) {
	for _, wait := range []time.Duration{0, Forever} {
		for range 20 {
			var o Outlet[int]
			o.Open("test", nil)
			receivertest.RaceRunReturn(t, receivertest.Receiver[int]{
				Run: o.Run,
				Push: func() (int, error) {
					err := o.Push(context.Background(), []int{1, 2, 3}, PushOptions{FullWait: wait})
					switch s, _ := Status(err); {
					case err == nil:
						return 3, nil
					case s == 503 || s == 429:
						return 0, nil
					}
					return 0, err
				},
			})
		}
	}
}

func TestSecondRun(t *testing.T) {
	var o Outlet[int]
	running(t, &o, nil, 1)
	if err := o.Run(context.Background(), make(chan ferry.Batch[int])); err == nil {
		t.Error("a second Run attached")
	}
	if got := o.Reporter(); got == nil {
		t.Error("no Reporter")
	}
	var unopened Outlet[int]
	if unopened.Reporter() == nil {
		t.Error("no Reporter before Open")
	}
}
