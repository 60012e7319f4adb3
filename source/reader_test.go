package source_test

import (
	"bufio"
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

// failAfter returns its text, then an error.
type failAfter struct{ text string }

func (f *failAfter) Read(p []byte) (int, error) {
	if f.text == "" {
		return 0, fmt.Errorf("disk on fire")
	}
	n := copy(p, f.text)
	f.text = f.text[n:]
	return n, nil
}

// TestReaderLinesBeforeError: the lines read before an error are delivered,
// and the error is returned after them.
func TestReaderLinesBeforeError(t *testing.T) {
	got, err := collect(t, &source.Reader{R: &failAfter{text: "a\nb\nunfinished"}})
	if err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("err %v", err)
	}
	if strings.Join(got, ",") != "a,b" {
		t.Errorf("lines %q", got)
	}
}

// TestReaderManyLines: lines that arrive in reads of every size, many to
// a read or split across reads, come out whole, in order, once each, and
// keep their text after later lines are read.
func TestReaderManyLines(t *testing.T) {
	var in strings.Builder
	for i := range 50_000 {
		fmt.Fprintf(&in, "line %d %s\n", i, strings.Repeat("x", i%300))
	}
	got, err := collect(t, &source.Reader{R: &oddReads{s: in.String()}, BatchSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 50_000 {
		t.Fatalf("%d lines", len(got))
	}
	for i, l := range got {
		if want := fmt.Sprintf("line %d %s", i, strings.Repeat("x", i%300)); l != want {
			t.Fatalf("line %d: %.40q", i, l)
		}
	}
}

// oddReads returns its text in reads of varying sizes.
type oddReads struct {
	s string
	n int
}

func (r *oddReads) Read(p []byte) (int, error) {
	if r.s == "" {
		return 0, io.EOF
	}
	r.n++
	k := copy(p[:min(len(p), 1+r.n*7919%70000)], r.s)
	r.s = r.s[k:]
	return k, nil
}

// BenchmarkReader reads lines of 100 bytes from memory through the Reader,
// batches acknowledged as they come, next to bufio.Scanner making a string
// of each line of the same input (the floor for any line reader) in the
// same run.
//
//	go test -run '^$' -bench BenchmarkReader ./source
func BenchmarkReader(b *testing.B) {
	const n = 200_000
	var in strings.Builder
	for i := range n {
		fmt.Fprintf(&in, "level=info ts=2026-12-08T01:00:00Z msg=\"request served\" id=%09d status=200 path=/api/v1/items\n", i)
	}
	text := in.String()
	b.Run("baseline=bufio.Scanner", func(b *testing.B) {
		b.ReportAllocs()
		var sink string
		for b.Loop() {
			sc := bufio.NewScanner(strings.NewReader(text))
			lines := 0
			for sc.Scan() {
				sink = sc.Text()
				lines++
			}
			if lines != n {
				b.Fatalf("%d lines", lines)
			}
		}
		_ = sink
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "lines/s")
	})
	b.Run("Reader", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			r := &source.Reader{R: strings.NewReader(text)}
			if err := r.Start(context.Background(), ferry.NopReporter()); err != nil {
				b.Fatal(err)
			}
			out := make(chan ferry.Batch[ferry.Entry], 4)
			done := make(chan error, 1)
			go func() { done <- r.Run(context.Background(), out); close(out) }()
			lines := 0
			for bt := range out {
				lines += len(bt.Items)
				bt.Done(nil)
			}
			if err := <-done; err != nil || lines != n {
				b.Fatalf("%d lines, %v", lines, err)
			}
		}
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "lines/s")
	})
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
