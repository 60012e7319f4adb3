//go:build !unix

package cpuclock

import "time"

// Process returns the wall-clock time since the package was loaded: this
// system has no process CPU clock that cpuclock reads.
func Process() time.Duration { return sinceStart() }
