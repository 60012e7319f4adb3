// Package gunzip decompresses a gzip body held whole in memory into a
// byte slice. It is what a scrape does with every page, and it is faster
// than reading through compress/gzip's streaming Reader because it needs
// no window: a match copies from the output itself, the bit buffer takes
// eight input bytes at a load, and a lookup decodes a length with its
// extra bits.
//
// Append accepts what compress/gzip accepts (RFC 1952 members one after
// another, each a DEFLATE stream of RFC 1951 with its CRC-32 and size
// checked) and fails where it fails; the package's fuzz test holds the two
// to the same output.
package gunzip

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"sync"
)

// ErrHeader is returned for data that does not start as a gzip member.
var ErrHeader = errors.New("gunzip: invalid header")

// ErrChecksum is returned when a member's CRC-32 or size disagrees with
// what it decompressed to.
var ErrChecksum = errors.New("gunzip: invalid checksum")

// Header flags of RFC 1952.
const (
	flagHCRC    = 1 << 1
	flagExtra   = 1 << 2
	flagName    = 1 << 3
	flagComment = 1 << 4
)

// maxString bounds a header's name and comment, with their zero byte.
const maxString = 512

var decoders = sync.Pool{New: func() any { return new(decoder) }}

// Append decompresses the gzip members of src and appends their data to
// dst, returning the extended slice. With limit > 0 it fails with
// ErrTooLarge, without reading further, once the appended data would pass
// limit bytes. Cut-short input fails with io.ErrUnexpectedEOF; src with
// no member at all, or with bytes after the last that are not a member,
// with ErrHeader.
func Append(dst, src []byte, limit int) ([]byte, error) {
	if len(src) == 0 {
		return dst, ErrHeader
	}
	n, err := header(src)
	if err != nil {
		return dst, err
	}
	dst = reserve(dst, src, limit)
	if limit > 0 {
		limit += len(dst)
	}
	d := decoders.Get().(*decoder)
	defer decoders.Put(d)
	for {
		src = src[n:]
		start := len(dst)
		if dst, n, err = d.inflate(dst, src, limit); err != nil {
			return dst, err
		}
		src = src[n:]
		if len(src) < 8 {
			return dst, io.ErrUnexpectedEOF
		}
		if crc32.ChecksumIEEE(dst[start:]) != binary.LittleEndian.Uint32(src) ||
			uint32(len(dst)-start) != binary.LittleEndian.Uint32(src[4:]) {
			return dst, ErrChecksum
		}
		if src = src[8:]; len(src) == 0 {
			return dst, nil
		}
		if n, err = header(src); err != nil {
			return dst, err
		}
	}
}

// reserve gives dst room for the data of src unless it has some already.
// A single member's size, modulo 2^32, ends the input: a first guess,
// trusted only as far as the limit and DEFLATE's best ratio (about 1032
// to 1) allow.
func reserve(dst, src []byte, limit int) []byte {
	if len(src) < 4 || cap(dst)-len(dst) >= 4096 {
		return dst
	}
	hint := min(int(binary.LittleEndian.Uint32(src[len(src)-4:])), 1032*len(src))
	if limit > 0 {
		hint = min(hint, limit)
	}
	return append(dst, make([]byte, hint+copySlack)...)[:len(dst)]
}

// header returns the length of the gzip member header src starts with.
func header(src []byte) (int, error) {
	if len(src) < 10 {
		if len(src) >= 1 && src[0] != 0x1f || len(src) >= 2 && src[1] != 0x8b || len(src) >= 3 && src[2] != 8 {
			return 0, ErrHeader
		}
		return 0, io.ErrUnexpectedEOF
	}
	if src[0] != 0x1f || src[1] != 0x8b || src[2] != 8 {
		return 0, ErrHeader
	}
	flags := src[3]
	n := 10
	if flags&flagExtra != 0 {
		if len(src) < n+2 {
			return 0, io.ErrUnexpectedEOF
		}
		n += 2 + int(binary.LittleEndian.Uint16(src[n:]))
		if n > len(src) {
			return 0, io.ErrUnexpectedEOF
		}
	}
	for _, f := range [2]byte{flagName, flagComment} {
		if flags&f == 0 {
			continue
		}
		// A name or comment ends with a zero byte, within 512 bytes as
		// compress/gzip reads it.
		i := n
		for i < len(src) && i < n+maxString && src[i] != 0 {
			i++
		}
		switch {
		case i == n+maxString:
			return 0, ErrHeader
		case i == len(src):
			return 0, io.ErrUnexpectedEOF
		}
		n = i + 1
	}
	if flags&flagHCRC != 0 {
		if len(src) < n+2 {
			return 0, io.ErrUnexpectedEOF
		}
		if uint16(crc32.ChecksumIEEE(src[:n])) != binary.LittleEndian.Uint16(src[n:]) {
			return 0, ErrHeader
		}
		n += 2
	}
	return n, nil
}
