package dockerlogs

import "testing"

// A container that logs a few lines a second keeps a small history however
// long it runs, with the position a full ring would give; a burst grows the
// ring, and the next reading lets it go.
func TestHistoryStaysSmall(t *testing.T) {
	var h history
	h.reset(position{})
	const perSecond = 10
	for i := range 100 * perSecond {
		h.record(int64(1e12+i*1e9/perSecond), i%2)
	}
	if len(h.ring) > 2*perSecond+16 {
		t.Errorf("ring of %d lines for %d lines a second", len(h.ring), perSecond)
	}
	// The window holds the last second: 10 lines, and the one stamped
	// exactly a second before the newest.
	newest := int64(1e12 + (100*perSecond-1)*1e9/perSecond)
	if p := h.position(); p != (position{Since: newest - skewWindow, Skip: perSecond + 1, Newest: newest}) {
		t.Errorf("position %+v", p)
	}
	for i := range historySize {
		h.record(newest+int64(i), 0)
	}
	if len(h.ring) != historySize {
		t.Errorf("ring of %d lines after a burst", len(h.ring))
	}
	h.reset(h.position())
	if h.ring != nil {
		t.Errorf("ring of %d lines kept after a burst", cap(h.ring))
	}
}
