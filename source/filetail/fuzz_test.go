package filetail

import "testing"

func FuzzParsePos(f *testing.F) {
	f.Add("123 2049 77 1024 deadbeef")
	f.Add("42")
	f.Fuzz(func(t *testing.T, s string) {
		p, ok := parsePos(s)
		if !ok {
			return
		}
		q, ok := parsePos(p.String())
		if !ok || q != p {
			t.Fatalf("%q: round trip %v -> %v", s, p, q)
		}
	})
}

func FuzzIndex16(f *testing.F) {
	f.Add([]byte("a\x00\n\x00"), false)
	f.Add([]byte("\x00a\x00\n"), true)
	f.Fuzz(func(t *testing.T, data []byte, big bool) {
		i := index16(data, big)
		if i < 0 {
			return
		}
		if i%2 != 0 || i+1 >= len(data) {
			t.Fatalf("index %d in %d bytes", i, len(data))
		}
		r := &reader{bigEndian: big}
		_ = r.decode16(data)
	})
}
