package positions_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/positions"
)

func TestTrackerOutOfOrder(t *testing.T) {
	var commits []int
	tr := positions.NewTracker(0, false, func(p int) { commits = append(commits, p) })
	a1, a2, a3 := tr.Track(10), tr.Track(20), tr.Track(30)
	a3(nil)
	a2(nil)
	if _, ok := tr.Committed(); ok {
		t.Fatal("committed before the first batch was acknowledged")
	}
	a1(nil)
	if p, _ := tr.Committed(); p != 30 {
		t.Fatalf("committed %d, want 30", p)
	}
	if len(commits) != 1 || commits[0] != 30 || tr.Pending() != 0 {
		t.Fatalf("commits %v pending %d", commits, tr.Pending())
	}
}

func TestTrackerUnsettledStops(t *testing.T) {
	tr := positions.NewTracker(5, true, nil)
	a1, a2, a3 := tr.Track(10), tr.Track(20), tr.Track(30)
	a1(nil)
	a2(errors.New("shutdown"))
	a3(ferry.Permanent(errors.New("rejected"))) // permanent drops are settled
	if p, _ := tr.Committed(); p != 10 {
		t.Fatalf("committed %d, want 10: must not pass the unsettled batch", p)
	}
	if tr.Err() == nil {
		t.Fatal("Err should report the unsettled outcome")
	}
	tr.Reset()
	tr.Track(40)(nil)
	if p, _ := tr.Committed(); p != 40 || tr.Err() != nil {
		t.Fatalf("after Reset: committed %d err %v", p, tr.Err())
	}
}

func TestTrackerManyCompacts(t *testing.T) {
	tr := positions.NewTracker(0, false, nil)
	var acks []func(error)
	for i := 1; i <= 5000; i++ {
		acks = append(acks, tr.Track(i))
	}
	for i := len(acks) - 1; i >= 0; i-- {
		acks[i](nil)
	}
	if p, _ := tr.Committed(); p != 5000 {
		t.Fatalf("committed %d", p)
	}
}

func TestFileRoundTripAndCorruption(t *testing.T) {
	path := filepath.Join(t.TempDir(), "positions.json")
	f, err := positions.Open(path, positions.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f.Set("docker/abc", "1700000000123456789")
	f.Set("file//var/log/a.log", `{"offset":42}`)
	if err := f.Save(); err != nil {
		t.Fatal(err)
	}
	g, err := positions.Open(path, positions.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := g.Get("docker/abc"); v != "1700000000123456789" {
		t.Fatalf("got %q", v)
	}
	g.Delete("docker/abc")
	if len(g.Keys()) != 1 {
		t.Fatalf("keys %v", g.Keys())
	}
	// No temporary files are left behind.
	ents, _ := os.ReadDir(filepath.Dir(path))
	if len(ents) != 1 {
		t.Fatalf("directory holds %d files, want 1", len(ents))
	}

	os.WriteFile(path, []byte(`{"version":1,"positions":{"a":`), 0o600)
	if _, err := positions.Open(path, positions.Options{}); !errors.Is(err, positions.ErrCorrupt) {
		t.Fatalf("truncated file: err %v, want ErrCorrupt", err)
	}
	h, err := positions.Open(path, positions.Options{ResetCorrupt: true})
	if err != nil || len(h.Keys()) != 0 {
		t.Fatalf("ResetCorrupt: %v %v", err, h.Keys())
	}
}

func FuzzOpen(f *testing.F) {
	f.Add([]byte(`{"version":1,"positions":{"a":"1"}}`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "p.json")
		os.WriteFile(path, data, 0o600)
		positions.Open(path, positions.Options{})
	})
}

func TestMemory(t *testing.T) {
	m := positions.Memory()
	m.Set("a", "1")
	if v, ok := m.Get("a"); !ok || v != "1" {
		t.Fatalf("Get = %q, %v", v, ok)
	}
	if err := m.Save(); err != nil {
		t.Fatal(err)
	}
	if m.Path() != "" {
		t.Errorf("Path = %q", m.Path())
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := m.SaveEvery(ctx, time.Millisecond, nil); err != nil {
		t.Fatal(err)
	}
}

func TestWithPrefix(t *testing.T) {
	m := positions.Memory()
	m.Set("file:/a", "1")
	m.Set("file:/b", "2")
	m.Set("docker:c", "3")
	got := m.WithPrefix("file:")
	if len(got) != 2 || got["file:/a"] != "1" || got["file:/b"] != "2" {
		t.Fatalf("WithPrefix(file:) = %v", got)
	}
	got["file:/a"] = "changed"
	if v, _ := m.Get("file:/a"); v != "1" {
		t.Fatalf("WithPrefix returned the File's own map: Get = %q", v)
	}
	var none *positions.File
	if got := none.WithPrefix("file:"); got == nil || len(got) != 0 {
		t.Fatalf("nil File: %v", got)
	}
}
