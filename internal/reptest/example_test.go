package reptest_test

import (
	"fmt"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/internal/reptest"
)

func Example() {
	rep := &reptest.Reporter{}
	var r ferry.Reporter = rep // given to the component under test
	r.Dropped("line_too_long", 2)
	r.SetHealth(ferry.Degraded, fmt.Errorf("cannot read file"))
	h, err := rep.Health()
	fmt.Println(rep.Drops("line_too_long"), h, err)
	// Output: 2 degraded cannot read file
}
