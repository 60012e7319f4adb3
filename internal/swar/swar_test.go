package swar

import (
	"encoding/binary"
	"math/rand"
	"testing"
)

// randomWords returns 200,000 words of eight bytes, each byte from special
// one time in three and otherwise in [lo, hi]: the class a helper looks
// for, mixed with its neighbours.
func randomWords(special string, lo, hi byte) [][8]byte {
	r := rand.New(rand.NewSource(1))
	out := make([][8]byte, 200000)
	for k := range out {
		for i := range out[k] {
			out[k][i] = special[r.Intn(len(special))]
			if r.Intn(3) > 0 {
				out[k][i] = lo + byte(r.Intn(int(hi-lo)+1))
			}
		}
	}
	return out
}

// check holds flag, on every word, to the index of the first byte a byte
// loop finds with match, and to flags in high bits only.
func check(t *testing.T, name string, words [][8]byte, flag func(uint64) uint64, match func(byte) bool) {
	t.Helper()
	for _, b := range words {
		want := 0
		for want < 8 && !match(b[want]) {
			want++
		}
		m := flag(binary.LittleEndian.Uint64(b[:]))
		if got := First(m); got != want || m&^Hi8 != 0 {
			t.Fatalf("%s(%q) = %#x: first at %d, want %d", name, b, m, got, want)
		}
	}
}

func TestNotPrint(t *testing.T) {
	words := randomWords("\x00\x01 !\"=]~\x7f\x80\xfe\xffaZ09", 0x21, 0x7e)
	check(t, "NotPrint", words, NotPrint, func(c byte) bool { return c < 0x21 || c > 0x7e })
}

func TestHasByte(t *testing.T) {
	for _, c := range []byte{0, '"', '=', ' ', 0x7f, 0x80, 0xff} {
		words := randomWords(string([]byte{c, c - 1, c + 1, 0, 0xff}), 0, 0xff)
		check(t, "HasByte", words, func(w uint64) uint64 { return HasByte(w, c) }, func(b byte) bool { return b == c })
	}
}

// DigitRun and Digits agree with a byte loop on words mixing digits with
// their neighbours, Digits also on runs of fewer than eight digits shifted
// up.
func TestDigitRunAndDigits(t *testing.T) {
	for _, b := range randomWords("0123456789/:Z+-.\x00\xff\xfa\x39\x3a\xb0\xb9", '0', '9') {
		w := binary.LittleEndian.Uint64(b[:])
		want := 0
		for want < 8 && b[want] >= '0' && b[want] <= '9' {
			want++
		}
		if got := DigitRun(w); got != want {
			t.Fatalf("DigitRun(%q) = %d, want %d", b, got, want)
		}
		if want == 0 {
			continue
		}
		v := 0
		for _, c := range b[:want] {
			v = v*10 + int(c-'0')
		}
		if got := Digits((w - 0x30*Lo8) << (8 * (8 - want))); got != v {
			t.Fatalf("Digits(%q[:%d]) = %d, want %d", b, want, got, v)
		}
	}
}

func TestLoad(t *testing.T) {
	s := "\x01\x02\x03\x04\x05\x06\x07\x08\x09"
	if got, want := Load(s, 1), uint64(0x0908070605040302); got != want {
		t.Fatalf("Load = %#x, want %#x", got, want)
	}
}
