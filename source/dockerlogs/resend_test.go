package dockerlogs

import "testing"

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
