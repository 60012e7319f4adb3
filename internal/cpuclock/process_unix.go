//go:build unix

package cpuclock

import (
	"syscall"
	"time"
)

// Process returns the user and system CPU time the whole process has used:
// every goroutine, the garbage collector and the runtime.
func Process() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return sinceStart()
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
