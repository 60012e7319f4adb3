package retry_test

import (
	"fmt"
	"time"

	"github.com/ferrydev/ferry/internal/retry"
)

func ExampleBackoff() {
	b := retry.Backoff{Min: 100 * time.Millisecond, Max: time.Second}
	for range 5 {
		fmt.Println(b.Next())
	}
	// Output:
	// 100ms
	// 200ms
	// 400ms
	// 800ms
	// 1s
}
