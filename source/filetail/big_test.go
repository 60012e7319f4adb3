package filetail

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferrydev/ferry/positions"
	"github.com/prometheus/prometheus/model/labels"
)

// TestBigFile reads a file of FERRY_BIG_FILE_MB megabytes (default 8; set
// 1024 for the 1 GiB run) in two runs: the first stops after delivering
// half the lines and failing the batches after them (a sink gone away),
// the second resumes from the positions file. Every line arrives exactly
// once, in order.
//
//	FERRY_BIG_FILE_MB=1024 go test -run TestBigFile -timeout 30m ./source/filetail
func TestBigFile(t *testing.T) {
	mb := 8
	if v := os.Getenv("FERRY_BIG_FILE_MB"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatal(err)
		}
		mb = n
	} else if testing.Short() {
		mb = 2
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "big.log")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	lines := 0
	var size int64
	pad := strings.Repeat("x", 90)
	for size < int64(mb)<<20 {
		n, _ := fmt.Fprintf(w, "%d %s\n", lines, pad)
		size += int64(n)
		lines++
	}
	w.Flush()
	f.Close()
	pf := filepath.Join(dir, "positions.json")

	run := func(stopAfter int) (first, last int) {
		pos, err := positions.Open(pf, positions.Options{})
		if err != nil {
			t.Fatal(err)
		}
		out, stop := startAlone(t, &Source{PositionsFile: pos, StartAt: StartBeginning, DisableWatch: true},
			[]labels.Labels{labels.FromStrings(PathLabel, path)}, 8)
		first, last = -1, -1
		delivered := 0
		deadline := time.After(20 * time.Minute)
	loop:
		for delivered < stopAfter {
			select {
			case b := <-out:
				for _, e := range b.Items {
					i := strings.IndexByte(e.Line, ' ')
					n, err := strconv.Atoi(e.Line[:i])
					if err != nil {
						t.Fatalf("line %q", e.Line)
					}
					if first < 0 {
						first = n
					} else if n != last+1 {
						t.Fatalf("line %d after %d", n, last)
					}
					last = n
				}
				delivered += len(b.Items)
				b.Done(nil)
			case <-deadline:
				break loop
			}
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		return first, last
	}
	f1, l1 := run(lines / 2)
	f2, l2 := run(lines - (l1 + 1))
	if f1 != 0 || f2 != l1+1 || l2 != lines-1 {
		t.Fatalf("run 1: %d..%d, run 2: %d..%d, %d lines", f1, l1, f2, l2, lines)
	}
}
