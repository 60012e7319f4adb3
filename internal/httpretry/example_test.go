package httpretry_test

import (
	"fmt"
	"time"

	"github.com/ferrydev/ferry/internal/httpretry"
)

func Example() {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	fmt.Println(httpretry.ParseRetryAfter("120", now), httpretry.ParseRetryAfter("Fri, 04 Dec 2026 12:00:30 GMT", now))
	d := httpretry.Backoff(2, time.Second, time.Minute) // 4s with jitter: in [4s, 8s)
	fmt.Println(d >= 4*time.Second && d < 8*time.Second)
	// Output:
	// 2m0s 30s
	// true
}
