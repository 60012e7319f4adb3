package scrape

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
)

// commentSet remembers the HELP and TYPE lines readComment accepted, so
// that skimText reads a comment line seen before at the cost of a hash:
// checking a line as textparse would (its name, the UTF-8 of its help text)
// was a quarter of the skim of a steady node_exporter page, whose comment
// lines outnumber its samples.
//
// One set serves every target of a Scraper: targets of one job run the
// same exporter and write the same comments. It is an open-addressing
// table of 64-bit cells that scrapes read and fill at once without a lock
// (atomic loads, compare-and-swap). A cell holds the line's hash (keySeed,
// as the series cache) with its kind in the two low bits, which no hash
// bit is needed for: a line is known by 62 bits of hash, placed by the
// bits above the kind's, and since no cell holds kind 0 (badComment), 0
// marks an empty cell. A line is looked for in the commentProbes cells
// from its place, and only kept where that finds it.
//
// The table starts small, so that a page's lookups stay in the CPU's
// caches, and doubles, up to maxCommentCells, when half full; the copy
// goes to a new table that replaces the old one, so readers never wait.
// A line that finds no room, or arrives while the table is copied, is
// simply not remembered and is read again the next time.
type commentSet struct {
	table atomic.Pointer[commentTable]
	grow  sync.Mutex // held while a table is copied into a larger one
}

type commentTable struct {
	cells []atomic.Uint64 // a power of two of them
	n     atomic.Int32    // cells in use
}

const (
	minCommentCells = 1 << 10 // 8 KiB; a node_exporter page's 566 comments double it once
	maxCommentCells = 1 << 16 // 512 KiB
	commentProbes   = 8
)

// kind returns readComment's kind of line, from the set when it holds the
// line, otherwise by reading it (and remembering it if it is a HELP or
// TYPE line).
func (c *commentSet) kind(line []byte) int {
	h := maphash.Bytes(keySeed, line) &^ 3
	t := c.table.Load()
	if t != nil {
		mask := uint64(len(t.cells) - 1)
		for i := range uint64(commentProbes) {
			v := t.cells[(h>>2+i)&mask].Load()
			if v == 0 {
				break
			}
			if v&^3 == h {
				return int(v & 3)
			}
		}
	}
	kind, _, _ := readComment(line)
	if kind == helpLine || kind == typeLine {
		c.remember(t, h|uint64(kind))
	}
	return kind
}

// remember adds cell value v to t, the table kind looked in, or to the
// larger table that replaces it.
func (c *commentSet) remember(t *commentTable, v uint64) {
	if t == nil || int(t.n.Load()+1)*2 > len(t.cells) && len(t.cells) < maxCommentCells {
		t = c.larger(t)
	}
	mask := uint64(len(t.cells) - 1)
	for i := range uint64(commentProbes) {
		cell := &t.cells[(v>>2+i)&mask]
		if cell.CompareAndSwap(0, v) {
			t.n.Add(1)
			return
		}
		if cell.Load()&^3 == v&^3 {
			return // another scrape remembered it meanwhile
		}
	}
}

// larger returns the table that replaces t: a new one twice its size
// holding its cells, or the one another scrape made meanwhile.
func (c *commentSet) larger(t *commentTable) *commentTable {
	c.grow.Lock()
	defer c.grow.Unlock()
	if cur := c.table.Load(); cur != t {
		return cur
	}
	size := minCommentCells
	if t != nil {
		size = 2 * len(t.cells)
	}
	nt := &commentTable{cells: make([]atomic.Uint64, size)}
	if t != nil {
		mask := uint64(size - 1)
		for i := range t.cells {
			v := t.cells[i].Load()
			if v == 0 {
				continue
			}
			for j := range uint64(commentProbes) {
				if cell := &nt.cells[(v>>2+j)&mask]; cell.Load() == 0 {
					cell.Store(v)
					nt.n.Add(1)
					break
				}
			}
		}
	}
	c.table.Store(nt)
	return nt
}
