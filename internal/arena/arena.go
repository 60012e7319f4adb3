// Package arena makes strings that share blocks of memory, so that the many
// short strings of a batch of log entries cost an allocation a block rather
// than one each.
//
// Bytes written to a block are never written again: a string cut from a
// block stays valid and unchanged for as long as it is reachable, and keeps
// the whole block reachable. An Arena therefore suits strings that are
// dropped at about the same time, such as the lines of one batch; a string
// that must outlive its neighbours by much is better copied on its own.
package arena

import "unsafe"

// The sizes of new blocks: a block is at least minBlock bytes (or the
// string it is made for, if longer), and the blocks of a run grow by
// doubling up to maxBlock.
const (
	minBlock = 512
	maxBlock = 256 << 10
)

// An Arena cuts strings from its current block and starts a new block when
// one does not fit. Its zero value is ready; it is not safe for concurrent
// use.
//
// Callers either copy bytes in with String, or build a string in place:
// Grow, then append to Buf (never reslice it shorter than it was after
// Grow), then Cut.
type Arena struct {
	// Buf is the current block; bytes before its length may be in strings
	// already.
	Buf    []byte
	next   int  // the size of the next block; 0 means minBlock
	used   int  // the bytes cut since Release
	hinted bool // next is sized from the run before, not by doubling
}

// Grow makes room for at least n more bytes in Buf and returns the offset
// at which they start. A new block starts when the current one lacks room:
// the strings cut before keep the old one.
func (a *Arena) Grow(n int) int {
	if cap(a.Buf)-len(a.Buf) >= n {
		return len(a.Buf)
	}
	size := max(a.next, minBlock)
	if a.hinted {
		// The run is longer than the last: what more it needs is likely
		// a small part of it.
		a.next, a.hinted = max(size/8, minBlock), false
	} else {
		a.next = min(2*size, maxBlock)
	}
	a.Buf = make([]byte, 0, max(n, size))
	return 0
}

// Cut returns the bytes of Buf from start, which Grow returned, as a
// string. Buf keeps them; the next bytes appended come after them.
func (a *Arena) Cut(start int) string {
	if len(a.Buf) == start {
		return ""
	}
	a.used += len(a.Buf) - start
	return unsafe.String(&a.Buf[start], len(a.Buf)-start)
}

// String returns a string with the bytes of b.
func (a *Arena) String(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	start := a.Grow(len(b))
	a.Buf = append(a.Buf, b...)
	return a.Cut(start)
}

// Release ends a run of strings, such as the lines of one batch: the arena
// lets go of its block, so that it keeps nothing alive (the strings cut
// from the block keep it as long as they live), and sizes the first block
// of the next run like the bytes cut in this one and an eighth more,
// within the bounds of the package. A run that outgrows it continues with
// blocks of an eighth of it, doubling.
func (a *Arena) Release() {
	a.Buf = nil
	if a.used > 0 {
		a.next, a.hinted = min(max(a.used+a.used/8, minBlock), maxBlock), true
	}
	a.used = 0
}
