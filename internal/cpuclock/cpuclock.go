// Package cpuclock reads the CPU time that benchmarks report their rates
// per: on a busy shared machine a rate per CPU second moves much less than
// one per wall-clock second, and where a run spreads over several cores it
// is the rate's true cost.
package cpuclock

import "time"

var start = time.Now()

// sinceStart is the fallback where the system has no such clock: the
// wall-clock time since the package was loaded.
func sinceStart() time.Duration { return time.Since(start) }
