// Package poll waits in tests for a condition instead of sleeping for a
// guessed time.
package poll

import (
	"testing"
	"time"
)

// Timeout is how long Until waits: long, since a busy CI machine may be
// slow, and only a failing test waits it out.
const Timeout = 20 * time.Second

// Until calls cond every few milliseconds until it returns true, and fails
// t with what (formatted with args) if that takes longer than Timeout.
func Until(t testing.TB, cond func() bool, what string, args ...any) {
	t.Helper()
	if !Wait(Timeout, cond) {
		t.Fatalf("timed out after %v waiting for "+what, append([]any{Timeout}, args...)...)
	}
}

// Wait calls cond every few milliseconds until it returns true or timeout
// passed, and reports whether it returned true.
func Wait(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for wait := time.Millisecond; ; wait = min(2*wait, 20*time.Millisecond) {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(wait) // polling interval, not a guess at a duration
	}
}
