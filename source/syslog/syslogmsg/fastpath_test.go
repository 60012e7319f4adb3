package syslogmsg

import "testing"

// TestFractionPastLen checks that digits after the end of a timestamp
// (still within the slice's capacity) are not read as its fraction.
func TestFractionPastLen(t *testing.T) {
	buf := []byte("2026-12-04T10:11:12.12345678")
	for n := len("2026-12-04T10:11:12.1"); n <= len(buf); n++ {
		var p Parser
		ts, k, ok := p.parseRFC3339Prefix(buf[:n], false)
		if !ok || k != n {
			t.Fatalf("%q: ok %v, length %d", buf[:n], ok, k)
		}
		want := 0
		for _, c := range buf[20:n] {
			want = want*10 + int(c-'0')
		}
		for d := n - 20; d < 9; d++ {
			want *= 10
		}
		if ts.Nanosecond() != want {
			t.Fatalf("%q: nanoseconds %d, want %d", buf[:n], ts.Nanosecond(), want)
		}
	}
}

// TestSDCache parses, one after another with one Parser, messages whose
// structured data has the structure of the message before, or differs
// from it in a byte, a name's length, where the SD ends or what follows
// it, and checks each against the reference.
func TestSDCache(t *testing.T) {
	const head = "<165>1 2026-12-04T10:11:12Z h a p m "
	sds := []string{
		`[exampleSDID@32473 iut="3" eventSource="Application"]`,
		`[exampleSDID@32473 iut="3" eventSource="Application"]`,
		`[exampleSDID@3247 iut="3" eventSourc="Application"]`,
		`[exampleSDID@324733 iut="3" eventSourcee="Application"]`,
		`[exampleSDID@32473x iut="3" eventSource="Application"]`,
		`[exampleSDID@32473 iu]t="3"]`,
		`[exampleSDID@32473 iut ="3"]`,
		`[exampleSDID@32473 iut="3" eventSource` + "\x01" + `="Application"]`,
		`[abcdefghijklmnopqrstuvwxyz012345 abcdefghijklmnopqrstuvwxyz012345="1"]`,
		`[abcdefghijklmnopqrstuvwxyz0123456 abcdefghijklmnopqrstuvwxyz012345="1"]`,
		`[abcdefghijklmnopqrstuvwxyz012345 abcdefghijklmnopqrstuvwxyz0123456="1"]`,
		`[abcdefghijklmnopqrstuvwxyz012345 abcdefghijklmnopqrstuvwxyz012345="1"]`,
		`[a b="1" c="2" d="3" e="4" f="5" g="6" h="7" i="8" j="9"][a b="1"]`,
		`[a b="1" c="2" d="3" e="4" f="5" g="6" h="7" i="8" j="9"][a b="1"]`,
		`[a b="1" c="2" d="3" e="4" f="5" g="6" h="7" i="8" j="9"][a bb="1"]`,
		`[exampleSDID@32473 iut="3" eventSource="Application"]`,
		`[exampleSDID@32473 iut="3" eventSource]`,
		`[exampleSDID@32473 iut="3" eventSource="Application"]`,
		`[exampleSDID@32473 iut="3" eventSource="Application"][x]`,
		`[exampleSDID@32473 iut="3" eventSource="Application"]`,
		`[exampleSDID@32473 iut="3" eventSource="Application"][x y="z"]`,
		`[exampleSDID@32473 iut="3" eventSource="Application"]`,
		`[exampleSDID@32473 iut="a\"b\\" eventSource="\\\"]"]`,
		`[exampleSDID@32473 iut="a\"b\\" eventSource="\\\"]"]`,
		`[exampleSDID@32473 iut="a\"b\\" eventSource="\\"]"]`,
		`[a123456789012 b="1"]`,
		`[a123456789012 b="1"]`,
		`[a1234567890123 b="1"]`,
		`[a1234567890123 b="1"]`,
		`[a12345678901234567890123456 b="1"]`,
		`[a12345678901234567890123456 b="1"]`,
		`[a b="1" c="2" d="3" e="4" f="5" g="6" h="7" i="8" j="9" k="10"]`,
		`[a b="1" c="2" d="3" e="4" f="5" g="6" h="7" i="8" j="9" k="10"]`,
		`[a b="1" c="2" d="3" e="4" f="5" g="6" h="7" i="8" j="9" k="10" l="11"]`,
		`[a b="1" c="2" d="3" e="4" f="5" g="6" h="7" i="8" j="9" k="10"][l]`,
		`[a b="1"][c][d][e][f][g][h][i][j][k][l][m][n][o][p][q][r][s][t][u]`,
		`[a b="1"][c][d][e][f][g][h][i][j][k][l][m][n][o][p][q][r][s][t][u]`,
	}
	p, r := &Parser{}, &refParser{}
	for _, sd := range sds {
		for _, tail := range []string{" a message long enough for the word compares", "", "x", "[", " "} {
			in := []byte(head + sd + tail)
			var m, rm Message
			err, rerr := p.Parse(in, &m), r.Parse(in, &rm)
			if err != rerr {
				t.Fatalf("Parse(%q) error = %v, reference %v", in, err, rerr)
			}
			if d := diffMessages(&m, &rm); d != "" {
				t.Fatalf("Parse(%q): %s", in, d)
			}
		}
	}
}
