package ferry_test

import (
	"errors"
	"testing"

	"github.com/ferrydev/ferry"
)

// TestAckExtraDone pins down what Ack.Done's doc says about extra calls:
// the outcome is reported once and calls after the last owner's change
// nothing; an owner's extra call before that counts for another owner.
func TestAckExtraDone(t *testing.T) {
	var calls int
	var got error
	a := ferry.NewAck(func(err error) { calls++; got = err })
	a.Done(nil)
	a.Done(errors.New("late"))
	a.Done(nil)
	if calls != 1 || got != nil {
		t.Fatalf("fn called %d times, last with %v; want once with nil", calls, got)
	}

	calls, got = 0, nil
	a = ferry.NewAck(func(err error) { calls++; got = err })
	a.Retain(1)
	boom := errors.New("boom")
	a.Done(boom)
	a.Done(nil) // the same owner again: a bug, and it completes the Ack
	if calls != 1 || got != boom {
		t.Fatalf("fn called %d times with %v; want once with boom", calls, got)
	}
	a.Done(nil) // the real second owner: ignored
	if calls != 1 {
		t.Fatalf("fn called %d times, want 1", calls)
	}
}
