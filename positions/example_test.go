package positions_test

import (
	"fmt"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/positions"
)

// A source tracks the offset after each batch it emits; acknowledgements
// arrive in any order, and the committed offset only covers delivered data.
func ExampleTracker() {
	tr := positions.NewTracker[int64](0, true, func(off int64) { fmt.Println("commit", off) })
	b1 := ferry.NewBatch([]string{"a", "b"}, tr.Track(4))
	b2 := ferry.NewBatch([]string{"c"}, tr.Track(6))
	b2.Done(nil) // delivered first, but b1 is still out
	b1.Done(nil)
	// Output:
	// commit 6
}
