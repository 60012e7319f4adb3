//go:build !linux

package syslogmsg

import "time"

var start = time.Now()

// clock returns the wall-clock time since the tests started (there is no
// per-thread CPU clock here).
func clock() time.Duration { return time.Since(start) }

const clockUnit = "s"
