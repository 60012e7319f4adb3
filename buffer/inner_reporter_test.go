package buffer

import (
	"testing"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/internal/reptest"
)

// What the inner sink gave up on after its retries is sent again by the
// buffer, so it is a retry on the buffer's component, not a drop; the
// inner sink's real drops (a receiver's permanent refusal) pass through.
func TestInnerReporterRetriesExhaustedIsNotADrop(t *testing.T) {
	rep := &reptest.Reporter{}
	d := &Disk[ferry.Entry]{}
	ir := &innerReporter{Reporter: rep, outer: d}
	ir.Dropped(ferry.ReasonRetriesExhausted, 10)
	ir.Dropped("http_400", 3)
	if got := rep.AllDrops(); len(got) != 1 || got["http_400"] != 3 {
		t.Errorf("drops = %v, want only http_400: 3", got)
	}
	if rep.Retries() != 1 {
		t.Errorf("retries = %d, want 1", rep.Retries())
	}
}
