//go:build !linux

package cpuclock

import "time"

// ThreadUnit names what Thread measures, for a benchmark's metric unit.
const ThreadUnit = "s"

// Thread returns the wall-clock time since the package was loaded: this
// system has no per-thread CPU clock that cpuclock reads.
func Thread() time.Duration { return sinceStart() }
