package scrape

import (
	"math/rand/v2"
	"testing"
)

// The index agrees with a map through growth, keys that share their low
// bits, and rebuilds after entries are freed.
func TestSeriesIndex(t *testing.T) {
	var x seriesIndex
	var entries []cacheEntry
	want := map[uint64]int32{}
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 5000 {
		key := r.Uint64()
		if i%3 == 0 {
			key <<= 20 // same low bits as many others: long probe runs
		}
		if _, dup := want[key]; dup {
			continue
		}
		entries = append(entries, cacheEntry{key: key, flags: used})
		slot := int32(len(entries) - 1)
		x.add(entries, slot)
		want[key] = slot
		if x.n*4 > len(x.cells)*3 {
			t.Fatalf("%d cells in use of %d", x.n, len(x.cells))
		}
	}
	check := func() {
		t.Helper()
		for key, slot := range want {
			if got, ok := x.find(entries, key); !ok || got != slot {
				t.Fatalf("find(%x) = %d, %v; want %d", key, got, ok, slot)
			}
		}
		for range 1000 {
			if _, ok := x.find(entries, r.Uint64()); ok {
				t.Fatal("found a key never added")
			}
		}
	}
	check()
	// Free every other entry, rebuild smaller: the rest is still found.
	for key, slot := range want {
		if slot%2 == 0 {
			entries[slot] = cacheEntry{}
			delete(want, key)
		}
	}
	x.rebuild(entries, indexSize(len(want)))
	if x.n != len(want) || len(x.cells) >= 4*len(want) {
		t.Fatalf("rebuilt: %d in use, %d cells, %d entries", x.n, len(x.cells), len(want))
	}
	check()
}
