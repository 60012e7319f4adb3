package inline

import (
	"context"
	"errors"
	"testing"

	"github.com/ferrydev/ferry"
)

// TestLookupMatchesTheChannel checks that a Consumer is found only for the
// channel it stands for, and that Send on a done context gives the batch
// up with the context's error without consuming it.
func TestLookupMatchesTheChannel(t *testing.T) {
	mine, other := make(chan ferry.Batch[int]), make(chan ferry.Batch[int])
	var got []int
	c := New(mine, func(b ferry.Batch[int]) { got = append(got, b.Items...); b.Done(nil) })
	ctx := With(context.Background(), c)
	if Lookup(ctx, other) != nil || Lookup(context.Background(), mine) != nil {
		t.Fatal("found a consumer for another channel, or in a context without one")
	}
	if Lookup[string](ctx, make(chan ferry.Batch[string])) != nil {
		t.Fatal("found a consumer of another type")
	}
	if err := Lookup(ctx, mine).Send(ctx, ferry.Batch[int]{Items: []int{1, 2}}); err != nil || len(got) != 2 {
		t.Fatalf("Send: %v, consumed %v", err, got)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	var outcome error
	err := Lookup(cctx, mine).Send(cctx, ferry.NewBatch([]int{3}, func(err error) { outcome = err }))
	if !errors.Is(err, context.Canceled) || !errors.Is(outcome, context.Canceled) || len(got) != 2 {
		t.Fatalf("Send after cancel: %v, outcome %v, consumed %v", err, outcome, got)
	}
}
