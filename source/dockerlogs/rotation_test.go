package dockerlogs

import (
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/ferrydev/ferry/positions"
)

// shortLines returns lines l<from>, ... stamped 1ns apart, on stdout.
func shortLines(from, n int) []fakeLine {
	var ls []fakeLine
	for i := from; i < from+n; i++ {
		ls = append(ls, fakeLine{ts: 1e18 + int64(i), stream: 1, text: fmt.Sprintf("l%d", i)})
	}
	return ls
}

// TestRereadRecoversSkippedLines: following a running container, the
// daemon leaves lines out (Docker 20.10 skipping a rotated file); once the
// container stopped, its log is read again from the position after that
// reading, and now has them. They arrive, once each, and nothing read
// before comes again.
func TestRereadRecoversSkippedLines(t *testing.T) {
	f := &fakeEngine{lines: shortLines(0, 8), runOpens: 1}
	f.lines[6].stream = 2 // a stderr line among them
	f.omit = map[string]bool{"l2": true, "l5": true}
	got := runFake(t, &Source{Client: f, RefreshInterval: 50 * time.Millisecond}, 8)
	if g := strings.Join(got, ","); g != "l0,l1,l3,l4,l6,l7,l2,l5" {
		t.Fatalf("got %s", g)
	}
	if len(f.opens) != 2 {
		t.Fatalf("%d readings, want 2", len(f.opens))
	}
	since := int64(1e18 + 7 - 1e9)
	if want := fmt.Sprintf("%d.%09d", since/1e9, since%1e9); f.opens[1] != want {
		t.Errorf("read again since %q, want %q", f.opens[1], want)
	}
}

// TestRereadSkippedLineSharingTimestamp: the line left out has the
// timestamp of one that was read, on the other stream (the daemon stamps
// the two streams separately): the streams tell them apart.
func TestRereadSkippedLineSharingTimestamp(t *testing.T) {
	f := &fakeEngine{lines: shortLines(0, 5), runOpens: 1}
	f.lines[2].ts, f.lines[2].stream = f.lines[3].ts, 2
	f.omit = map[string]bool{"l2": true}
	got := runFake(t, &Source{Client: f, RefreshInterval: 50 * time.Millisecond}, 5)
	if g := strings.Join(got, ","); g != "l0,l1,l3,l4,l2" {
		t.Fatalf("got %s", g)
	}
}

// TestResumeByCountThenRereadByTimestamps: a new Source resumes from the
// positions file, skipping by count what the last one delivered; the
// daemon then leaves a line out of the running container's log, and the
// reading after the container stopped recovers it.
func TestResumeByCountThenRereadByTimestamps(t *testing.T) {
	pf, err := positions.Open(t.TempDir()+"/p.json", positions.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeEngine{lines: shortLines(0, 3)}
	if got := runFake(t, &Source{Client: f, PositionsFile: pf}, 3); strings.Join(got, ",") != "l0,l1,l2" {
		t.Fatalf("first run %v", got)
	}
	f.lines = append(f.lines, shortLines(3, 4)...)
	f.lines[3].ts = f.lines[2].ts // stamped like the last line delivered
	f.runOpens = len(f.opens) + 1
	f.omit = map[string]bool{"l4": true}
	got := runFake(t, &Source{Client: f, PositionsFile: pf, RefreshInterval: 50 * time.Millisecond}, 4)
	if g := strings.Join(got, ","); g != "l3,l5,l6,l4" {
		t.Fatalf("resumed: %s", g)
	}
}

// TestHistorySeenFrom: the lines a reading skips when it starts from the
// position of the last one.
func TestHistorySeenFrom(t *testing.T) {
	var h history
	h.reset(position{})
	h.record(10e9, 0)
	h.record(10e9-5, 1)
	h.record(10e9, 0)
	h.record(8e9, 0) // before the window
	h.record(10e9+1, 1)
	p := h.position()
	want := map[lineID]int{{10e9, 0}: 2, {10e9 - 5, 1}: 1, {10e9 + 1, 1}: 1}
	if got := h.seenFrom(p.Since, nil); !maps.Equal(got, want) {
		t.Errorf("seen %v, want %v", got, want)
	}
	// Lines delivered before and not read again are kept, if in the
	// window.
	left := map[lineID]int{{10e9 + 1, 1}: 0, {9e9 + 5, 0}: 1, {1e9, 0}: 1}
	want[lineID{9e9 + 5, 0}] = 1
	if got := h.seenFrom(p.Since, left); !maps.Equal(got, want) {
		t.Errorf("with those left %v, want %v", got, want)
	}
	// A reading that read nothing ends where it started.
	h.reset(p)
	if got := h.seenFrom(h.position().Since, left); !maps.Equal(got, left) {
		t.Errorf("empty reading %v", got)
	}
	if got := h.seenFrom(h.position().Since, nil); got != nil {
		t.Errorf("empty reading from a count %v", got)
	}
	// More lines than the ring holds: those in it.
	h.reset(position{})
	for i := range 3 * historySize {
		h.record(int64(1e12+i), 0)
	}
	if got := h.seenFrom(h.position().Since, nil); len(got) != historySize {
		t.Errorf("ring: %d lines seen", len(got))
	}
}
