package syslog

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

type frame struct {
	msg       string
	truncated bool
}

func frames(t testing.TB, r io.Reader, max int) ([]frame, error) {
	t.Helper()
	f := newFramer(r, max)
	var out []frame
	for i := 0; i < 100000; i++ {
		msg, tr, err := f.next()
		if msg != nil {
			out = append(out, frame{string(msg), tr})
		}
		if err != nil {
			return out, err
		}
	}
	t.Fatal("framer does not end")
	return nil, nil
}

func TestFramerMixed(t *testing.T) {
	in := "<13>a newline\n" +
		"17 <13>octet counted" +
		"<13>crlf\r\n" +
		"\n\n" + // empty lines between frames
		"4 <1>x\n" + // octet counted followed by a newline trailer
		"2026-12-04T10:00:00Z h a: digits but no length\n" +
		"10 <13>has\nnl" + // a newline inside an octet-counted frame
		"<13>last without newline"
	for _, name := range []string{"whole", "onebyte", "half"} {
		var r io.Reader = strings.NewReader(in)
		switch name {
		case "onebyte":
			r = iotest.OneByteReader(r)
		case "half":
			r = iotest.HalfReader(r)
		}
		got, err := frames(t, r, 1024)
		if err != io.EOF {
			t.Fatalf("%s: err = %v", name, err)
		}
		want := []frame{{"<13>a newline", false}, {"<13>octet counted", false}, {"<13>crlf", false},
			{"<1>x", false}, {"2026-12-04T10:00:00Z h a: digits but no length", false},
			{"<13>has\nnl", false}, {"<13>last without newline", false}}
		if len(got) != len(want) {
			t.Fatalf("%s: got %+v, want %+v", name, got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("%s: frame %d = %+v, want %+v", name, i, got[i], want[i])
			}
		}
	}
}

func TestFramerTruncates(t *testing.T) {
	long := strings.Repeat("x", 100)
	in := "<13>" + long + "\n" + // newline frame over max
		"104 <13>" + long + // octet frame over max
		"<13>ok\n"
	got, err := frames(t, iotest.HalfReader(strings.NewReader(in)), 20)
	if err != io.EOF {
		t.Fatal(err)
	}
	want := []frame{{("<13>" + long)[:20], true}, {("<13>" + long)[:20], true}, {"<13>ok", false}}
	if len(got) != len(want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("frame %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestFramerBoundedBuffer(t *testing.T) {
	// 1 MiB without a newline, then a message: the buffer never grows past
	// max+32, or readBufMax for reads that fill it.
	in := io.MultiReader(bytes.NewReader(bytes.Repeat([]byte("y"), 1<<20)), strings.NewReader("\n<13>after\n"))
	f := newFramer(in, 4096)
	var got []string
	for {
		msg, _, err := f.next()
		if msg != nil {
			got = append(got, string(msg[:min(len(msg), 10)]))
		}
		if len(f.buf) > max(4096+32, readBufMax) {
			t.Fatalf("buffer grew to %d", len(f.buf))
		}
		if err != nil {
			break
		}
	}
	if len(got) != 2 || got[1] != "<13>after" {
		t.Fatalf("got %q", got)
	}
}

func TestFramerReadError(t *testing.T) {
	boom := errors.New("boom")
	r := io.MultiReader(strings.NewReader("<13>a\n<13>partial"), iotest.ErrReader(boom))
	got, err := frames(t, r, 100)
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	if len(got) != 1 || got[0].msg != "<13>a" {
		t.Fatalf("got %+v", got)
	}
}

func TestFramerGrowsWhenBusy(t *testing.T) {
	in := strings.Repeat("<13>a message of some forty bytes or so\n", 10000)
	for _, tc := range []struct {
		name string
		r    io.Reader
		want int // the buffer at the end
	}{
		// Every read fills the buffer: the sender is ahead.
		{"busy", strings.NewReader(in), readBufMax},
		// Reads of a few bytes, as from a sender that trickles.
		{"trickle", iotest.OneByteReader(strings.NewReader(in[:4000])), initialFrameBuf},
	} {
		f := newFramer(tc.r, 8192)
		n := 0
		for {
			msg, _, err := f.next()
			if msg != nil {
				if string(msg) != "<13>a message of some forty bytes or so" {
					t.Fatalf("%s: frame %d = %q", tc.name, n, msg)
				}
				n++
			}
			if err != nil {
				break
			}
		}
		if len(f.buf) != tc.want {
			t.Errorf("%s: buffer of %d bytes at the end, want %d", tc.name, len(f.buf), tc.want)
		}
		if want := len(in) / 40; tc.name == "busy" && n != want {
			t.Errorf("%s: %d frames, want %d", tc.name, n, want)
		}
	}
}
