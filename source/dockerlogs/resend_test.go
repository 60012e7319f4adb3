package dockerlogs

import (
	"fmt"
	"strings"
	"testing"
)

// TestAssemblerSkipsResentMessages replays what Docker 20.10 sends when a
// followed json-file log rotates in the middle of long lines: messages
// already sent come again. Each line must come out once and whole, and
// lines that merely share a timestamp must all be kept.
func TestAssemblerSkipsResentMessages(t *testing.T) {
	part := func(ts int64, s string) message { return message{ts: ts, content: []byte(s), partial: true} }
	end := func(ts int64, s string) message { return message{ts: ts, content: []byte(s)} }
	msgs := []message{
		part(10, "a"), part(10, "b"), end(10, "c"), // line 1 in parts
		part(20, "d"),               // line 2 begins...
		part(10, "b"), end(10, "c"), // ...the engine goes back into line 1
		part(20, "d"), end(20, "e"), // and sends line 2 again
		end(30, "f"), end(30, "g"), // two whole lines stamped alike (coarse clock)
		part(40, "h"), end(40, "i"), // a long line stamped like the next one
		part(40, "j"), end(40, "k"),
		end(25, "old"), end(30, "f"), end(40, "i"), // a replay between lines
		end(50, "l"),
		part(60, "m"), part(60, "n"), end(60, "o"), // a long line...
		part(60, "n"), end(60, "o"), // ...whose tail comes again
		part(60, "p"), end(60, "q"), // a long line stamped alike, ending differently
		end(70, "r"),
	}
	a := assembler{max: 1 << 10}
	a.reset(false)
	var got []string
	for i := range msgs {
		if _, line, kind := a.add(&msgs[i]); kind == lineOK {
			got = append(got, string(line))
		}
	}
	want := []string{"abc", "de", "f", "g", "hi", "jk", "l", "mno", "pq", "r"}
	if len(got) != len(want) {
		t.Fatalf("lines %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("lines %q, want %q", got, want)
		}
	}

	// Stdout and stderr are stamped separately: an older stderr line after
	// a stdout line is new.
	a.reset(false)
	o, e := end(50, "out"), message{stream: streamStderr, ts: 45, content: []byte("err")}
	a.add(&o)
	if _, line, kind := a.add(&e); kind != lineOK || string(line) != "err" {
		t.Fatalf("stderr line after a later stdout line: %q, kind %v", line, kind)
	}
}

// TestAssemblerLongLinesResent: lines over the maximum, each in many parts
// stamped like its first and ending with an empty part (the daemon's way
// with a line of a multiple of 16 KiB, so every line ends alike), through
// the resends of a rotation: into the last line while the next is being
// assembled, of the last line's tail before the next begins, and within
// the line being assembled. Each line comes out once, cut.
func TestAssemblerLongLinesResent(t *testing.T) {
	part := func(ts int64, s string) message { return message{ts: ts, content: []byte(s), partial: true} }
	end := func(ts int64) message { return message{ts: ts} }
	long := func(ts int64, from, to int) []message {
		var ms []message
		for i := from; i < to; i++ {
			ms = append(ms, part(ts, string(rune('a'+i))))
		}
		return ms
	}
	var msgs []message
	add := func(ms ...message) { msgs = append(msgs, ms...) }
	add(long(10, 0, 6)...)
	add(end(10))
	add(long(20, 0, 3)...) // line 2 begins...
	add(long(10, 4, 6)...) // ...the engine goes back into line 1
	add(end(10))
	add(long(20, 0, 6)...) // and sends line 2 again
	add(end(20))
	add(long(20, 3, 6)...) // line 2's tail again, before line 3 begins
	add(end(20))
	add(long(30, 0, 4)...)
	add(long(30, 2, 6)...) // a resend within line 3: the line is kept (cut)
	add(end(30))
	add(long(40, 0, 6)...) // line 4 ends like all the others
	add(end(40))
	a := assembler{max: 3}
	a.reset(false)
	var got []string
	for i := range msgs {
		ts, line, kind := a.add(&msgs[i])
		switch kind {
		case lineNone:
		case lineTruncated:
			got = append(got, fmt.Sprintf("%d:%s", ts, line))
		default:
			t.Fatalf("message %d: line %q kind %v", i, line, kind)
		}
	}
	if want := "10:abc 20:abc 30:abc 40:abc"; strings.Join(got, " ") != want {
		t.Fatalf("lines %v, want %s", got, want)
	}
}
