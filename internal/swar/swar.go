// Package swar holds the eight-bytes-at-a-time helpers ("SIMD within a
// register") that Ferry's text scanners share. NotPrint and HasByte test
// all eight bytes of a little-endian word at once and flag the lowest byte
// that matches exactly. Bytes above the lowest flagged one may be flagged
// wrongly (a borrow runs upward), so a caller uses the lowest flag only, or
// checks each higher one itself. DigitRun and Digits read decimal digits,
// as the timestamp readers do.
package swar

import "math/bits"

// Lo8 has a one in every byte, and Hi8 the high bit of every byte.
const (
	Lo8 = 0x0101010101010101
	Hi8 = 0x8080808080808080
)

// NotPrint returns a word with the high bit set in the lowest byte of w
// that is not printable ASCII (33–126), and maybe in higher bytes; zero if
// every byte is.
func NotPrint(w uint64) uint64 {
	// Up to the lowest byte outside 33–126, the bytes of t are 0 to 0x5d,
	// which neither borrow nor carry with 0x22 added: that byte is the
	// first with its high bit set in t (it was below 0x21) or in t + 0x22
	// (it was 0x7f or more).
	t := w - 0x21*Lo8
	return (t + 0x22*Lo8 | t) & Hi8
}

// HasByte is like NotPrint for the bytes equal to c.
func HasByte(w uint64, c byte) uint64 {
	x := w ^ (Lo8 * uint64(c))
	return (x - Lo8) &^ x & Hi8
}

// First returns the index of the byte a flag word (of NotPrint, HasByte or
// their union) marks lowest; 8 when none is marked.
func First(m uint64) int { return bits.TrailingZeros64(m) / 8 }

// DigitRun returns how many of the bytes of w, from the lowest, are ASCII
// digits before the first that is not; 8 if all are.
func DigitRun(w uint64) int {
	// Up to the first byte that is not a digit, the bytes of t are 0 to
	// 9, which neither borrow nor carry with 0x76 added: that byte is the
	// first with its high bit set in t or in t + 0x76.
	t := w - 0x30*Lo8
	return First((t + 0x76*Lo8 | t) & Hi8)
}

// Digits returns the number that the eight digit values of d spell (0 to
// 9, one a byte, the most significant in the lowest byte): for the word of
// eight ASCII digits w, Digits(w - 0x30*Lo8). Fewer digits, shifted up to
// the high bytes with zeros below, spell the same number.
func Digits(d uint64) int {
	d = d * 2561 >> 8
	d = (d & 0x00ff00ff00ff00ff) * 6553601 >> 16
	return int((d & 0x0000ffff0000ffff) * 42949672960001 >> 32)
}

// Load returns the eight bytes of s from i as a little-endian word; s must
// hold them. The compiler turns it into one load.
func Load(s string, i int) uint64 {
	s = s[i : i+8]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}
