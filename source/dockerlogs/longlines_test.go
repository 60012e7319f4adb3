package dockerlogs

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/positions"
)

// longLines returns n lines of size bytes, a multiple of the daemon's part
// size (so each ends with an empty part, as the fault suite's do), stamped
// 1ns apart (all parts of a line alike).
func longLines(from, n, size int) []fakeLine {
	var ls []fakeLine
	for i := from; i < from+n; i++ {
		text := fmt.Sprintf("l%d ", i)
		ls = append(ls, fakeLine{ts: 1e18 + int64(i), stream: 1, text: text + strings.Repeat("x", size-len(text))})
	}
	return ls
}

func prefixes(lines []string) string {
	var p []string
	for _, l := range lines {
		p = append(p, strings.Fields(l)[0])
	}
	return strings.Join(p, ",")
}

// TestLongLinesFailedBatchAndResume: lines far over MaxLineSize, one per
// batch, with a failed batch (read again from the last settled position),
// then a resume by a new Source: each line arrives once, cut, and a new line
// after the resume is the only one read.
func TestLongLinesFailedBatchAndResume(t *testing.T) {
	const size = 10 * dockerPartialSize
	f := &fakeEngine{lines: longLines(0, 4, size)}
	pf, err := positions.Open(t.TempDir()+"/p.json", positions.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := &Source{Client: f, PositionsFile: pf, MaxLineSize: 20 << 10, BatchSize: 1}
	out := make(chan ferry.Batch[ferry.Entry])
	cancel, done := runOnC1(s, out)
	// Lines after a failed batch may come twice (at least once); each
	// must come, cut, and nothing else.
	seen := map[string]bool{}
	for batches := 0; len(seen) < 4; batches++ {
		select {
		case b := <-out:
			if batches == 1 || batches == 2 {
				b.Done(errors.New("sink unavailable"))
				continue
			}
			for _, e := range b.Items {
				if len(e.Line) != 20<<10 {
					t.Fatalf("line of %d bytes", len(e.Line))
				}
				seen[prefixes([]string{e.Line})] = true
			}
			b.Done(nil)
		case <-time.After(10 * time.Second):
			t.Fatalf("got %v", seen)
		}
	}
	for quiet := false; !quiet; {
		select {
		case b := <-out:
			for _, e := range b.Items {
				if !seen[prefixes([]string{e.Line})] {
					t.Fatalf("unexpected line %.10q", e.Line)
				}
			}
			b.Done(nil)
		case <-time.After(300 * time.Millisecond):
			quiet = true
		}
	}
	cancel()
	<-done
	s.Close(context.Background())
	if !seen["l0"] || !seen["l1"] || !seen["l2"] || !seen["l3"] {
		t.Fatalf("first run: %v", seen)
	}
	f.lines = append(f.lines, longLines(4, 1, size)...)
	if p := prefixes(runFake(t, &Source{Client: f, PositionsFile: pf, MaxLineSize: 20 << 10}, 1)); p != "l4" {
		t.Fatalf("resumed: %s", p)
	}
}

// TestReadErrorInLongLine: the log stream of a stopped container breaks
// within a long line; the reader reads again from where it was, and gets
// that line and the rest, once each.
func TestReadErrorInLongLine(t *testing.T) {
	const size = 10 * dockerPartialSize
	f := &fakeEngine{lines: longLines(0, 4, size)}
	f.cut = 2*size + 5*dockerPartialSize // in the middle of l2
	got := runFake(t, &Source{Client: f, MaxLineSize: 20 << 10, RefreshInterval: 50 * time.Millisecond}, 4)
	if p := prefixes(got); p != "l0,l1,l2,l3" {
		t.Fatalf("got %s", p)
	}
}
