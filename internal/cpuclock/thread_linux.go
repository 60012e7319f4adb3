package cpuclock

import (
	"syscall"
	"time"
	"unsafe"
)

// ThreadUnit names what Thread measures, for a benchmark's metric unit.
const ThreadUnit = "cpu-s"

// Thread returns the CPU time the calling OS thread has used, from the
// kernel's nanosecond thread clock (CLOCK_THREAD_CPUTIME_ID). Callers lock
// their goroutine to its thread (runtime.LockOSThread). getrusage is no
// substitute for short intervals: it splits the time into user and system
// by sampled ticks, which moves them by tens of percent.
func Thread() time.Duration {
	const clockThreadCPUTimeID = 3
	var ts syscall.Timespec
	if _, _, e := syscall.RawSyscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTimeID, uintptr(unsafe.Pointer(&ts)), 0); e != 0 {
		return sinceStart()
	}
	return time.Duration(ts.Nano())
}
