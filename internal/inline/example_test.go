package inline_test

import (
	"context"
	"fmt"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/internal/inline"
)

// A batch sent through the context's Consumer is consumed on the sender's
// goroutine: it has been printed when Send returns.
func Example() {
	ch := make(chan ferry.Batch[string], 1)
	c := inline.New(ch, func(b ferry.Batch[string]) { fmt.Println("consumed", b.Items) })
	ctx := inline.With(context.Background(), c)
	if err := inline.Lookup(ctx, ch).Send(ctx, ferry.Batch[string]{Items: []string{"a", "b"}}); err == nil {
		fmt.Println("sent; the channel holds", len(ch))
	}
	// Output:
	// consumed [a b]
	// sent; the channel holds 0
}
