package syslogmsg

import (
	"syscall"
	"time"
)

// clock returns the CPU time the calling OS thread has used: on a busy
// shared machine, wall-clock rates depend on what else runs, the thread's
// own CPU time much less. Callers lock their goroutine to its thread.
func clock() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

const clockUnit = "cpu-s"
