package ferry_test

import (
	"fmt"

	"github.com/ferrydev/ferry"
)

// A batch fanned out to two sinks is acknowledged once, after both.
func ExampleAck() {
	b := ferry.NewBatch([]string{"line"}, func(err error) { fmt.Println("delivered:", err) })
	b.Ack.Retain(1) // a second owner
	b.Done(nil)     // the first sink
	fmt.Println("one sink done")
	b.Done(nil) // the second sink
	// Output:
	// one sink done
	// delivered: <nil>
}
