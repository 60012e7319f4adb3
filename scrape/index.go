package scrape

// seriesIndex finds a series' slot in a loop's entries by the hash of the
// series' bytes in the page. It is an open-addressing table of slot numbers
// (plus one; 0 marks an empty cell) with linear probing, the key kept in the
// entry itself: 4 bytes a cell, at most three quarters full, where a Go map
// from hash to slot takes some 30 bytes a series. Cells are only added;
// evicting series rebuilds the table.
type seriesIndex struct {
	cells []int32
	n     int // cells in use
}

// find returns the slot of the entry with key.
func (x *seriesIndex) find(entries []cacheEntry, key uint64) (int32, bool) {
	if len(x.cells) == 0 {
		return 0, false
	}
	mask := uint64(len(x.cells) - 1)
	for i := key & mask; ; i = (i + 1) & mask {
		c := x.cells[i]
		if c == 0 {
			return 0, false
		}
		if entries[c-1].key == key {
			return c - 1, true
		}
	}
}

// add indexes entries[slot], which find does not know yet.
func (x *seriesIndex) add(entries []cacheEntry, slot int32) {
	if (x.n+1)*4 > len(x.cells)*3 {
		x.rebuild(entries, max(16, 2*len(x.cells))) // takes slot in
		return
	}
	x.put(entries[slot].key, slot)
	x.n++
}

// rebuild indexes every entry in use, in a table of size cells (a power of
// two, enough for them).
func (x *seriesIndex) rebuild(entries []cacheEntry, size int) {
	if len(x.cells) == size {
		clear(x.cells)
	} else {
		x.cells = make([]int32, size)
	}
	x.n = 0
	for i := range entries {
		if entries[i].has(used) {
			x.put(entries[i].key, int32(i))
			x.n++
		}
	}
}

func (x *seriesIndex) put(key uint64, slot int32) {
	mask := uint64(len(x.cells) - 1)
	i := key & mask
	for x.cells[i] != 0 {
		i = (i + 1) & mask
	}
	x.cells[i] = slot + 1
}

// indexSize is the table size for n entries: the smallest power of two
// that keeps it at most half full (so that it grows only after as many
// more), at least 16.
func indexSize(n int) int {
	size := 16
	for size < 2*n {
		size *= 2
	}
	return size
}
