package source_test

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/source"
	"github.com/ferrydev/ferry/source/sourcetest"
)

// endless is a reader that never ends, so conformance can cancel it; the
// Reader's backpressure paces it.
type endless struct{}

func (endless) Read(p []byte) (int, error) {
	return copy(p, "a line\n"), nil
}

func TestReaderConformance(t *testing.T) {
	sourcetest.Run(t, sourcetest.Harness[ferry.Entry]{
		New:  func(t *testing.T) source.Source[ferry.Entry] { return &source.Reader{R: endless{}, BatchSize: 3} },
		Want: 10,
	})
}

func TestSliceConformance(t *testing.T) {
	sourcetest.Run(t, sourcetest.Harness[ferry.Entry]{
		New: func(t *testing.T) source.Source[ferry.Entry] {
			return &source.Slice[ferry.Entry]{Items: make([]ferry.Entry, 10), BatchSize: 4}
		},
		Want: 10,
	})
}

func collect(t *testing.T, r *source.Reader) ([]string, error) {
	out := make(chan ferry.Batch[ferry.Entry], 100)
	if err := r.Start(context.Background(), ferry.NopReporter()); err != nil {
		t.Fatal(err)
	}
	err := r.Run(context.Background(), out)
	close(out)
	var lines []string
	for b := range out {
		for _, e := range b.Items {
			lines = append(lines, e.Line)
		}
		b.Done(nil)
	}
	return lines, err
}

func TestReaderLines(t *testing.T) {
	long := strings.Repeat("x", 100_000)
	in := "one\r\ntwo\n\n" + long + "\nlast without newline"
	got, err := collect(t, &source.Reader{R: strings.NewReader(in), MaxLineSize: 70_000})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"one", "two", "", long[:70_000], "last without newline"}
	if len(got) != len(want) {
		t.Fatalf("got %d lines, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("line %d: got %.20q (len %d), want %.20q (len %d)", i, got[i], len(got[i]), want[i], len(want[i]))
		}
	}
	got, _ = collect(t, &source.Reader{R: strings.NewReader(in), MaxLineSize: 70_000, LongLines: source.DropLongLines})
	if len(got) != 4 {
		t.Fatalf("DropLongLines: got %d lines, want 4", len(got))
	}
}

type failing struct{ io.Reader }

func (failing) Read([]byte) (int, error) { return 0, fmt.Errorf("disk on fire") }

func TestReaderError(t *testing.T) {
	if _, err := collect(t, &source.Reader{R: failing{}}); err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("err %v", err)
	}
}

func ExampleReader() {
	r := &source.Reader{R: strings.NewReader("hello\nworld\n")}
	out := make(chan ferry.Batch[ferry.Entry], 1)
	r.Start(context.Background(), ferry.NopReporter()) // a pipeline calls Start itself
	r.Run(context.Background(), out)
	b := <-out
	for _, e := range b.Items {
		fmt.Println(e.Line)
	}
	b.Done(nil)
	// Output:
	// hello
	// world
}
