package syslogmsg

import (
	"syscall"
	"time"
	"unsafe"
)

// clock returns the CPU time the calling OS thread has used, from the
// kernel's nanosecond thread clock (CLOCK_THREAD_CPUTIME_ID): on a busy
// shared machine, wall-clock rates depend on what else runs, the thread's
// own CPU time much less. getrusage is no substitute: it splits the time
// into user and system by sampled ticks, which moves short intervals by
// tens of percent. Callers lock their goroutine to its thread.
func clock() time.Duration {
	const clockThreadCPUTimeID = 3
	var ts syscall.Timespec
	if _, _, e := syscall.RawSyscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTimeID, uintptr(unsafe.Pointer(&ts)), 0); e != 0 {
		return 0
	}
	return time.Duration(ts.Nano())
}

const clockUnit = "cpu-s"
