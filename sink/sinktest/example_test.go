package sinktest_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/sink/sinktest"
)

// The fake sink records what it accepts, and can be told to fail.
func ExampleSink() {
	fake := &sinktest.Sink[ferry.Entry]{}
	fake.FailNext(1, errors.New("503 from Loki"))
	send := func(line string) {
		fake.Send(context.Background(), ferry.NewBatch([]ferry.Entry{{Line: line}}, func(err error) {
			fmt.Printf("%s: %v\n", line, err)
		}))
	}
	send("first")
	send("second")
	fmt.Println(len(fake.Items()), "recorded")
	// Output:
	// first: 503 from Loki
	// second: <nil>
	// 1 recorded
}
