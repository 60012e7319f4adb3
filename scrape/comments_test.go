package scrape

import (
	"fmt"
	"sync"
	"testing"
)

// commentKinds are comment lines of every kind readComment tells apart.
var commentKinds = []struct {
	line string
	kind int
}{
	{"# HELP node_cpu_seconds_total Seconds the CPUs spent in each mode.", helpLine},
	{"# TYPE node_cpu_seconds_total counter", typeLine},
	{"# TYPE a untyped", typeLine},
	{"# HELP a x\\ny", helpLine},
	{"#\tHELP\ta b", helpLine},  // blanks may be tabs
	{"# HELP a\tb", badComment}, // but the text follows one space
	{"# TYPE a countr", badComment},
	{"# HELP a \xff", badComment},
	{"# HELP 1a b", badComment},
	{"# just a comment", comment},
	{"#TYPE a gauge", comment},
}

// The set answers as readComment does, the first time (a miss) and every
// time after (a hit, for HELP and TYPE lines), and never remembers a line
// textparse would refuse.
func TestCommentSetKinds(t *testing.T) {
	c := new(commentSet)
	for round := range 3 {
		for _, k := range commentKinds {
			if got := c.kind([]byte(k.line)); got != k.kind {
				t.Errorf("round %d: kind(%q) = %d, want %d", round, k.line, got, k.kind)
			}
		}
	}
	held := 0
	tab := c.table.Load()
	for i := range tab.cells {
		if v := tab.cells[i].Load(); v != 0 {
			held++
			if k := int(v & 3); k != helpLine && k != typeLine {
				t.Errorf("cell %d holds kind %d", i, k)
			}
		}
	}
	if held != 5 {
		t.Errorf("%d lines remembered, want the 5 HELP and TYPE lines", held)
	}
}

// The set grows to its largest table and, with no room left, still answers
// right: lines it cannot remember are read each time.
func TestCommentSetFull(t *testing.T) {
	c := new(commentSet)
	n := maxCommentCells
	for round := range 2 {
		for i := range n {
			line := fmt.Sprintf("# TYPE m%d gauge", i)
			want := typeLine
			if i%2 == 0 {
				line = fmt.Sprintf("# HELP m%d help %d", i, i)
				want = helpLine
			}
			if got := c.kind([]byte(line)); got != want {
				t.Fatalf("round %d: kind(%q) = %d, want %d", round, line, got, want)
			}
		}
		tab := c.table.Load()
		if len(tab.cells) != maxCommentCells || int(tab.n.Load()) < maxCommentCells/2 {
			t.Fatalf("round %d: %d of %d cells in use, want at least half of %d", round, tab.n.Load(), len(tab.cells), maxCommentCells)
		}
	}
	for _, k := range commentKinds {
		if got := c.kind([]byte(k.line)); got != k.kind {
			t.Errorf("full set: kind(%q) = %d, want %d", k.line, got, k.kind)
		}
	}
}

// Scrapes read and fill one set at once (go test -race checks the cells
// are only touched atomically).
func TestCommentSetConcurrent(t *testing.T) {
	c := new(commentSet)
	var wg sync.WaitGroup
	errs := make(chan string, 4)
	for g := range 4 {
		wg.Go(func() {
			for i := range 2000 {
				k := commentKinds[(i+g)%len(commentKinds)]
				if got := c.kind([]byte(k.line)); got != k.kind {
					errs <- fmt.Sprintf("kind(%q) = %d, want %d", k.line, got, k.kind)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// FuzzCommentSet: for any line, the set gives readComment's kind, on the
// first look and on the next.
func FuzzCommentSet(f *testing.F) {
	for _, k := range commentKinds {
		f.Add(k.line)
	}
	c := new(commentSet)
	f.Fuzz(func(t *testing.T, line string) {
		want, _, _ := readComment([]byte(line))
		for range 2 {
			if got := c.kind([]byte(line)); got != want {
				t.Fatalf("kind(%q) = %d, readComment says %d", line, got, want)
			}
		}
	})
}

// Growing keeps what the set remembered: every line of a page larger than
// the first table is still held once it has grown.
func TestCommentSetGrows(t *testing.T) {
	c := new(commentSet)
	const lines = 1500
	for i := range lines {
		c.kind(fmt.Appendf(nil, "# HELP m%d help", i))
	}
	tab := c.table.Load()
	if len(tab.cells) < 4*minCommentCells || int(tab.n.Load()) < lines*95/100 {
		t.Errorf("%d lines in %d cells, want about %d in %d or more", tab.n.Load(), len(tab.cells), lines, 4*minCommentCells)
	}
}
