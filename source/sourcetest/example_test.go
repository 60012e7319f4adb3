package sourcetest_test

import (
	"testing"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/source"
	"github.com/ferrydev/ferry/source/sourcetest"
)

// A conformance test for a source, as a package's own test would write it.
func Example() {
	var t *testing.T // in a real test, the *testing.T of the test function
	if t == nil {
		return
	}
	sourcetest.Run(t, sourcetest.Harness[ferry.Entry]{
		New: func(t *testing.T) source.Source[ferry.Entry] {
			return &source.Slice[ferry.Entry]{Items: make([]ferry.Entry, 5)}
		},
		Want: 5,
	})
	// Output:
}
