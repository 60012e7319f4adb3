package cpuclock

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// spin keeps the CPU busy for about d of wall time.
func spin(d time.Duration) int {
	n := 0
	for t0 := time.Now(); time.Since(t0) < d; {
		n++
	}
	return n
}

// TestClocksCountWork checks that both clocks advance by about the CPU
// time a busy loop takes, and that the thread clock does not count a
// sleep, which takes no CPU.
func TestClocksCountWork(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	p0, t0 := Process(), Thread()
	spin(50 * time.Millisecond)
	p1, t1 := Process(), Thread()
	if d := t1 - t0; d < 10*time.Millisecond || d > 2*time.Second {
		t.Errorf("Thread advanced %v over a 50 ms busy loop", d)
	}
	if d := p1 - p0; d < 10*time.Millisecond {
		t.Errorf("Process advanced %v over a 50 ms busy loop", d)
	}
	if ThreadUnit != "cpu-s" {
		return // a wall clock here
	}
	s0 := Thread()
	time.Sleep(50 * time.Millisecond)
	if d := Thread() - s0; d > 25*time.Millisecond {
		t.Errorf("Thread advanced %v over a 50 ms sleep", d)
	}
}

func ExampleThread() {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	t0 := Thread()
	spin(20 * time.Millisecond)
	fmt.Println("the loop used CPU time:", Thread()-t0 > 0, "measured in", ThreadUnit)
	// Output: the loop used CPU time: true measured in cpu-s
}
