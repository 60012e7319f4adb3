package arena

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
	"unsafe"
)

// TestStringsStayUnchanged cuts many strings of random lengths, by both
// ways of writing, across many blocks and releases, and checks every one
// at the end against its own copy: a block written again, or a string cut
// wrongly, fails it.
func TestStringsStayUnchanged(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var a Arena
	var got []string
	var want [][]byte
	for i := range 20000 {
		n := rng.IntN(300)
		if i%997 == 0 {
			n = 100_000 // larger than any block
		}
		b := make([]byte, n)
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		switch rng.IntN(3) {
		case 0:
			got = append(got, a.String(b))
		case 1:
			start := a.Grow(n)
			a.Buf = append(a.Buf, b...)
			got = append(got, a.Cut(start))
		default:
			// Built in two appends, the second one past the room asked
			// for: the append may move Buf, never the bytes cut before.
			start := a.Grow(n / 2)
			a.Buf = append(a.Buf, b[:n/2]...)
			a.Buf = append(a.Buf, b[n/2:]...)
			got = append(got, a.Cut(start))
		}
		want = append(want, b)
		if rng.IntN(500) == 0 {
			a.Release()
		}
	}
	for i := range got {
		if !bytes.Equal([]byte(got[i]), want[i]) {
			t.Fatalf("string %d changed: %d bytes, want %d", i, len(got[i]), len(want[i]))
		}
	}
}

// TestBlocks checks how blocks are sized: they double from the smallest
// up to the largest, a long string gets a block of its own size, and
// Release drops the block and sizes the next one from its hint.
func TestBlocks(t *testing.T) {
	var a Arena
	var caps []int
	for range 8000 {
		before := unsafe.SliceData(a.Buf)
		a.String(make([]byte, 100))
		if unsafe.SliceData(a.Buf) != before {
			caps = append(caps, cap(a.Buf))
		}
	}
	want := []int{512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072, 262144, 262144}
	if fmt.Sprint(caps[:len(want)]) != fmt.Sprint(want) {
		t.Errorf("block sizes %v, want %v first", caps, want)
	}
	long := a.String(make([]byte, 300_000))
	if cap(a.Buf) != 300_000 || len(long) != 300_000 {
		t.Errorf("a long string's block is %d bytes", cap(a.Buf))
	}
	a.Release()
	if a.Buf != nil {
		t.Error("Release kept the block")
	}
	a.String(make([]byte, 1000))
	a.String(make([]byte, 2000))
	a.Release()
	a.String(make([]byte, 3000))
	if cap(a.Buf) != 3375 {
		t.Errorf("after a run of 3000 bytes the next block is %d bytes, want 3375", cap(a.Buf))
	}
	a.String(make([]byte, 1000)) // the run outgrows its block; the next is an eighth of it, or the string
	if cap(a.Buf) != 1000 {
		t.Errorf("a run longer than the last continues with a block of %d bytes", cap(a.Buf))
	}
	a.Release()
	a.Release() // a run of nothing keeps the size
	a.String([]byte("x"))
	if cap(a.Buf) != 4500 {
		t.Errorf("after a run of 4000 bytes and an empty one the next block is %d bytes, want 4500", cap(a.Buf))
	}
	a.Release()
	a.String([]byte("x"))
	if cap(a.Buf) != minBlock {
		t.Errorf("after a run of 1 byte the next block is %d bytes, want %d", cap(a.Buf), minBlock)
	}
	for range 3000 {
		a.String(make([]byte, 100))
	}
	a.Release()
	a.String([]byte("x"))
	if cap(a.Buf) != maxBlock {
		t.Errorf("after a run of 300,000 bytes the next block is %d bytes, want %d", cap(a.Buf), maxBlock)
	}
	if a.String(nil) != "" || a.Cut(len(a.Buf)) != "" {
		t.Error("an empty string is not empty")
	}
}

// TestOneAllocationABlock: strings that share a block cost nothing each.
func TestOneAllocationABlock(t *testing.T) {
	var a Arena
	line := bytes.Repeat([]byte("x"), 100)
	allocs := testing.AllocsPerRun(100, func() {
		for range 2600 { // 260,000 bytes: one block of 256 KiB
			a.String(line)
		}
		a.Release()
	})
	if allocs > 1 {
		t.Errorf("%.1f allocations for 600 strings in one block", allocs)
	}
}

// Strings cut one after the other lie next to each other in one block.
func ExampleArena() {
	var a Arena
	x := a.String([]byte("level=info"))
	y := a.String([]byte("level=warn"))
	adjacent := unsafe.StringData(y) == (*byte)(unsafe.Add(unsafe.Pointer(unsafe.StringData(x)), len(x)))
	fmt.Println(x, y, adjacent)
	// Output: level=info level=warn true
}
