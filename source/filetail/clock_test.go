package filetail

import (
	"fmt"
	"path/filepath"
	"testing"
)

func TestPollClock(t *testing.T) {
	c := newPollClock()
	a, a2 := c.next(), c.next()
	if closed(a) {
		t.Fatal("next is closed before any tick")
	}
	c.advance()
	if !closed(a) || !closed(a2) {
		t.Fatal("a tick did not wake every waiter")
	}
	b := c.next()
	if closed(b) {
		t.Fatal("next after a tick is already closed: it must wait for the following tick")
	}
	c.advance()
	if !closed(b) {
		t.Fatal("the second tick did not wake its waiter")
	}
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// TestManyFilesPolled follows files that grow without notifications: every
// reader waits on the one clock of the Run, and each is woken at every
// tick, not only the first ones to wait.
func TestManyFilesPolled(t *testing.T) {
	dir := t.TempDir()
	s := fast()
	s.DisableWatch = true
	var paths []string
	for i := range 50 {
		p := filepath.Join(dir, fmt.Sprintf("f%d.log", i))
		appendLines(t, p, p, 0, 1)
		paths = append(paths, p)
	}
	h := start(t, s, paths...)
	defer h.stop()
	h.waitLines(len(paths))
	for round := 1; round <= 3; round++ {
		for _, p := range paths {
			appendLines(t, p, p, round, round+1)
		}
		h.waitLines(len(paths) * (round + 1))
	}
	got := map[string]int{}
	for _, l := range h.settle() {
		got[l]++
	}
	for _, p := range paths {
		for _, l := range want(p, 0, 4) {
			if got[l] != 1 {
				t.Errorf("line %q delivered %d times, want once", l, got[l])
			}
		}
	}
}
