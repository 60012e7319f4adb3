package poll

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

func TestWait(t *testing.T) {
	var n atomic.Int32
	if !Wait(time.Second, func() bool { return n.Add(1) >= 3 }) {
		t.Fatal("Wait gave up on a condition that became true")
	}
	if Wait(10*time.Millisecond, func() bool { return false }) {
		t.Fatal("Wait returned true for a condition never true")
	}
}

func TestUntil(t *testing.T) {
	var done atomic.Bool
	go done.Store(true)
	Until(t, done.Load, "the goroutine %d", 1)
}

func ExampleWait() {
	var done atomic.Bool
	go done.Store(true)
	fmt.Println(Wait(time.Second, done.Load))
	// Output: true
}
