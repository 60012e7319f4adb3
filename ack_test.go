package ferry_test

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ferrydev/ferry"
)

func TestAckFanOutOnceAfterAllWithFirstError(t *testing.T) {
	var calls atomic.Int32
	var got error
	a := ferry.NewAck(func(err error) { calls.Add(1); got = err })
	a.Retain(2) // three owners
	e1, e2 := errors.New("first"), errors.New("second")
	a.Done(nil)
	a.Done(e1)
	if calls.Load() != 0 {
		t.Fatal("acknowledged before every owner was done")
	}
	a.Done(e2)
	if calls.Load() != 1 || got != e1 {
		t.Fatalf("calls=%d err=%v, want 1 call with the first error", calls.Load(), got)
	}
	a.Done(nil) // an extra call is ignored, not reported twice
	if calls.Load() != 1 {
		t.Fatalf("extra Done reported again")
	}
}

func TestAckConcurrent(t *testing.T) {
	var calls atomic.Int32
	a := ferry.NewAck(func(error) { calls.Add(1) })
	const n = 1000
	a.Retain(n - 1)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() { defer wg.Done(); a.Done(nil) }()
	}
	wg.Wait()
	if calls.Load() != 1 {
		t.Fatalf("calls=%d, want 1", calls.Load())
	}
}

func TestJoinAcksCompletesEveryParent(t *testing.T) {
	var a1, a2 error = errors.New("unset"), errors.New("unset")
	p1 := ferry.NewAck(func(err error) { a1 = err })
	p2 := ferry.NewAck(func(err error) { a2 = err })
	boom := errors.New("boom")
	ferry.JoinAcks(p1, nil, p2).Done(boom)
	if a1 != boom || a2 != boom {
		t.Fatalf("parents got %v, %v; want %v", a1, a2, boom)
	}
	if ferry.JoinAcks(nil, nil) != nil {
		t.Fatal("JoinAcks of nils should be nil")
	}
}

func TestNilAckAndBatch(t *testing.T) {
	var a *ferry.Ack
	a.Retain(3)
	a.Done(errors.New("ignored"))
	ferry.Batch[int]{Items: []int{1}}.Done(nil)
	ferry.NewBatch([]int{1}, nil).Done(nil)
}

func TestPermanent(t *testing.T) {
	base := errors.New("bad request")
	err := ferry.Permanent(base)
	wrapped := errors.Join(errors.New("ctx"), err)
	if !ferry.IsPermanent(wrapped) || !errors.Is(wrapped, base) {
		t.Fatal("permanent error not recognised through wrapping")
	}
	if ferry.IsPermanent(base) || ferry.Permanent(nil) != nil {
		t.Fatal("plain error recognised as permanent")
	}
	if !ferry.Settled(nil) || !ferry.Settled(err) || ferry.Settled(base) {
		t.Fatal("Settled wrong")
	}
}
