package gunzip

import (
	"encoding/binary"
	"errors"
	"io"
	"math/bits"
)

// ErrCorrupt is returned for a DEFLATE stream that breaks the format
// (RFC 1951): an invalid block type or code, a stored block whose length
// and its complement disagree, a distance reaching before the stream's
// first byte.
var ErrCorrupt = errors.New("gunzip: corrupt deflate stream")

// ErrTooLarge is returned when the decompressed data would pass the limit
// the caller gave.
var ErrTooLarge = errors.New("gunzip: decompressed data over the limit")

// A decode table entry packs, from the low bits up: the bits a lookup
// consumes (8 bits: the code's length plus its extra bits, or for a
// subtable pointer the primary table's bits), the code's own length
// (4 bits; for a pointer, the subtable's bits), four flags, and a 16-bit
// value: the literal byte, the base of a length or distance, or the index
// of a subtable.
const (
	fBad     = 1 << 12 // no code of the stream maps here, or the symbol is invalid
	fSub     = 1 << 13 // a pointer to a subtable
	fEnd     = 1 << 14 // end of block
	fLiteral = 1 << 15
)

// Primary table bits of the three codes. Codes longer than that continue
// in a subtable of (longest code - table bits) bits.
const (
	litTableBits  = 11
	distTableBits = 8
	lenTableBits  = 7 // code lengths are at most 7 bits long: no subtables

	// Upper bounds of the table sizes: the primary table, plus at most
	// one subtable per symbol whose code is longer than the table bits.
	litTableSize  = 1<<litTableBits + 288<<(15-litTableBits)
	distTableSize = 1<<distTableBits + 32<<(15-distTableBits)
)

// copySlack is the bytes a match copy may write past its end: it copies
// eight at a time.
const copySlack = 8

// Symbol information: value<<16 | flags | extra bits. The table builder
// adds the code length.
var (
	litInfo  [288]uint32
	distInfo [32]uint32
	lenInfo  [19]uint32
)

// The fixed codes of block type 1.
var (
	fixedLit  = new([litTableSize]uint32)
	fixedDist = new([distTableSize]uint32)
)

// lenOrder is the order of the code length code's lengths in a dynamic
// block's header.
var lenOrder = [19]uint8{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}

func init() {
	for i := range 256 {
		litInfo[i] = uint32(i)<<16 | fLiteral
	}
	litInfo[256] = fEnd
	lengthBase := [29]uint32{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
	lengthExtra := [29]uint32{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
	for i := range 29 {
		litInfo[257+i] = lengthBase[i]<<16 | lengthExtra[i]
	}
	litInfo[286], litInfo[287] = fBad, fBad
	for i := range uint32(30) {
		base, extra := i+1, uint32(0)
		if i >= 2 {
			extra = i/2 - 1
			base = (2+i&1)<<extra + 1
		}
		distInfo[i] = base<<16 | extra
	}
	distInfo[30], distInfo[31] = fBad, fBad
	for i := range 19 {
		lenInfo[i] = uint32(i) << 16 // the repeat codes' extra bits are read apart
	}

	var lengths [288 + 32]uint8
	for i := range 288 {
		switch {
		case i < 144:
			lengths[i] = 8
		case i < 256:
			lengths[i] = 9
		case i < 280:
			lengths[i] = 7
		default:
			lengths[i] = 8
		}
	}
	for i := range 32 {
		lengths[288+i] = 5
	}
	if !build(fixedLit[:], litTableBits, lengths[:288], litInfo[:]) ||
		!build(fixedDist[:], distTableBits, lengths[288:], distInfo[:]) {
		panic("gunzip: fixed codes")
	}
}

// build fills table, a primary table of 1<<tableBits entries followed by
// room for subtables, with the decoding of the canonical Huffman code that
// lengths give (a length per symbol, 0 for none); info gives each symbol's
// entry without its lengths. It reports false for a code that is
// over-subscribed or incomplete, as Go's compress/flate does: an empty
// code and one of a single 1-bit code are accepted, and decoding a bit
// pattern no code has is an error.
func build(table []uint32, tableBits uint, lengths []uint8, info []uint32) bool {
	var count [16]uint16
	for _, n := range lengths {
		count[n]++
	}
	count[0] = 0
	maxLen := uint(15)
	for maxLen > 0 && count[maxLen] == 0 {
		maxLen--
	}
	// The code's Kraft sum, in units of 2^-maxLen.
	code := 0
	for n := uint(1); n <= maxLen; n++ {
		code = code<<1 + int(count[n])
	}
	complete := code == 1<<maxLen
	if maxLen > 0 && !complete && !(code == 1 && maxLen == 1) {
		return false
	}
	// A complete code fills every primary entry, but the subtable
	// pointers are found by their flag, so none may be left from the
	// code built before.
	primary := table[:1<<tableBits]
	if !complete || maxLen > tableBits {
		for i := range primary {
			primary[i] = fBad
		}
	}
	if maxLen == 0 {
		return true
	}
	// The first code of each length, then every symbol's code in turn:
	// canonical order is by length, then by symbol.
	var next [16]uint32
	c := uint32(0)
	for n := uint(1); n <= maxLen; n++ {
		next[n] = c
		c = (c + uint32(count[n])) << 1
	}
	subBits := uint(0)
	if maxLen > tableBits {
		subBits = maxLen - tableBits
	}
	free := uint32(1) << tableBits // the next subtable's index
	for sym, n8 := range lengths {
		n := uint(n8)
		if n == 0 {
			continue
		}
		code := next[n]
		next[n]++
		// DEFLATE sends a code's bits from its most significant one, into
		// a stream read from the least significant bit up.
		rev := uint32(bits.Reverse16(uint16(code))) >> (16 - n)
		if n <= tableBits {
			e := info[sym]&^0xfff | uint32(n)<<8 | (uint32(n) + info[sym]&0xff)
			for i := rev; i < 1<<tableBits; i += 1 << n {
				primary[i] = e
			}
			continue
		}
		prefix := rev & (1<<tableBits - 1)
		if primary[prefix]&fSub == 0 {
			primary[prefix] = free<<16 | fSub | uint32(subBits)<<8 | uint32(tableBits)
			free += 1 << subBits
		}
		sub := table[primary[prefix]>>16:][:1<<subBits]
		m := n - tableBits
		e := info[sym]&^0xfff | uint32(m)<<8 | (uint32(m) + info[sym]&0xff)
		for i := rev >> tableBits; i < 1<<subBits; i += 1 << m {
			sub[i] = e
		}
	}
	return true
}

// decoder holds a DEFLATE stream's state between blocks: the input and the
// bit buffer over it, the output, and the tables of the current block.
type decoder struct {
	in    []byte
	pos   int    // the next byte of in to load; past len(in), zeros are loaded
	bb    uint64 // bits loaded and not consumed, the next one lowest
	nb    uint   // how many bits of bb count; those above are the bytes at pos, or zero
	out   []byte // the output, written up to its capacity
	n     int    // bytes of out written
	start int    // the stream's first byte in out
	limit int    // the most out may hold; 0 for no limit

	lit   [litTableSize]uint32
	dist  [distTableSize]uint32
	lens  [1 << lenTableBits]uint32
	codes [288 + 32]uint8
}

// refill loads bits until at least 56 count, zeros past the input's end;
// more than eight bytes past it, the input was cut short.
func (d *decoder) refill() error {
	if d.pos+8 <= len(d.in) {
		d.bb |= binary.LittleEndian.Uint64(d.in[d.pos:]) << (d.nb & 63)
		d.pos += int((63 - d.nb) >> 3)
		d.nb |= 56
		return nil
	}
	for d.nb <= 55 {
		if d.pos < len(d.in) {
			d.bb |= uint64(d.in[d.pos]) << (d.nb & 63)
		} else if d.pos >= len(d.in)+8 {
			return io.ErrUnexpectedEOF
		}
		d.pos++
		d.nb += 8
	}
	return nil
}

// take consumes n bits (n ≤ 32) and returns them. Shift counts are masked
// with 63 in this file where they are known to be below 64: the compiler
// then leaves out its code for larger counts.
func (d *decoder) take(n uint) (uint32, error) {
	if d.nb < n {
		if err := d.refill(); err != nil {
			return 0, err
		}
	}
	v := uint32(d.bb & (1<<(n&63) - 1))
	d.bb >>= n & 63
	d.nb -= n
	return v, nil
}

// inflate decodes the DEFLATE stream at the start of in, appending to out
// until it holds limit bytes at most (limit 0: no limit). It returns the
// output and how many bytes of in the stream took.
func (d *decoder) inflate(out, in []byte, limit int) ([]byte, int, error) {
	d.in, d.pos, d.bb, d.nb = in, 0, 0, 0
	d.out, d.n, d.start, d.limit = out[:cap(out)], len(out), len(out), limit
	defer func() { d.in = nil }()
	for {
		header, err := d.take(3)
		if err != nil {
			return d.out[:d.n], 0, err
		}
		switch header >> 1 {
		case 0:
			err = d.stored()
		case 1:
			err = d.huffman(fixedLit, fixedDist)
		case 2:
			if err = d.dynamic(); err == nil {
				err = d.huffman(&d.lit, &d.dist)
			}
		default:
			err = ErrCorrupt
		}
		if err != nil {
			return d.out[:d.n], 0, err
		}
		if header&1 != 0 {
			break
		}
	}
	// The stream ends at the byte holding its last bit.
	used := d.pos - int(d.nb/8)
	if used > len(in) {
		return d.out[:d.n], 0, io.ErrUnexpectedEOF
	}
	return d.out[:d.n], used, nil
}

// room makes out hold want more bytes, and copySlack beyond them, or
// fails if want more would pass the limit. It returns the end of what the
// decoder may write without asking again.
func (d *decoder) room(want int) (int, error) {
	if d.limit > 0 && d.n+want > d.limit {
		return 0, ErrTooLarge
	}
	if d.n+want+copySlack > len(d.out) {
		size := max(2*len(d.out), d.n+want+copySlack, 4096)
		if d.limit > 0 {
			size = min(size, d.limit+copySlack)
		}
		grown := make([]byte, size)
		copy(grown, d.out[:d.n])
		d.out = grown
	}
	end := len(d.out) - copySlack
	if d.limit > 0 {
		end = min(end, d.limit)
	}
	return end, nil
}

// stored copies a block of type 0.
func (d *decoder) stored() error {
	// Skip to the byte boundary; the bytes still in the bit buffer are
	// read again from in.
	d.nb -= d.nb & 7
	p := d.pos - int(d.nb/8)
	d.bb, d.nb = 0, 0
	if p+4 > len(d.in) {
		return io.ErrUnexpectedEOF
	}
	size := int(binary.LittleEndian.Uint16(d.in[p:]))
	if uint16(size) != ^binary.LittleEndian.Uint16(d.in[p+2:]) {
		return ErrCorrupt
	}
	p += 4
	if p+size > len(d.in) {
		return io.ErrUnexpectedEOF
	}
	if _, err := d.room(size); err != nil {
		return err
	}
	d.n += copy(d.out[d.n:], d.in[p:p+size])
	d.pos = p + size
	return nil
}

// dynamic reads the codes of a block of type 2 into d.lit and d.dist.
func (d *decoder) dynamic() error {
	h, err := d.take(14)
	if err != nil {
		return err
	}
	nlit := int(h&31) + 257
	ndist := int(h>>5&31) + 1
	nlen := int(h>>10) + 4
	if nlit > 286 || ndist > 30 {
		return ErrCorrupt
	}
	var lens [19]uint8
	for i := range nlen {
		v, err := d.take(3)
		if err != nil {
			return err
		}
		lens[lenOrder[i]] = uint8(v)
	}
	if !build(d.lens[:], lenTableBits, lens[:], lenInfo[:]) {
		return ErrCorrupt
	}
	codes := d.codes[:nlit+ndist]
	for i := 0; i < len(codes); {
		if d.nb < 16 {
			if err := d.refill(); err != nil {
				return err
			}
		}
		e := d.lens[d.bb&(1<<lenTableBits-1)]
		if e&fBad != 0 {
			return ErrCorrupt
		}
		d.bb >>= e & 63
		d.nb -= uint(e & 0xff)
		sym := e >> 16
		if sym < 16 {
			codes[i] = uint8(sym)
			i++
			continue
		}
		var rep int
		var fill uint8
		switch sym {
		case 16:
			if i == 0 {
				return ErrCorrupt
			}
			v, err := d.take(2)
			if err != nil {
				return err
			}
			rep, fill = 3+int(v), codes[i-1]
		case 17:
			v, err := d.take(3)
			if err != nil {
				return err
			}
			rep = 3 + int(v)
		default:
			v, err := d.take(7)
			if err != nil {
				return err
			}
			rep = 11 + int(v)
		}
		if i+rep > len(codes) {
			return ErrCorrupt
		}
		for range rep {
			codes[i] = fill
			i++
		}
	}
	if !build(d.lit[:], litTableBits, codes[:nlit], litInfo[:]) ||
		!build(d.dist[:], distTableBits, codes[nlit:], distInfo[:]) {
		return ErrCorrupt
	}
	return nil
}

// huffman decodes a block of type 1 or 2 with the tables lit and dist.
// It keeps the decoder's state in locals, and refills the bit buffer once
// a symbol: 56 bits hold the longest length with its distance (48 bits).
// Output up to end needs no check: it is in out, copySlack before its
// end, and within the limit. Entries consume fewer than 64 bits, so a
// shift by e&63 is a shift by the entry's bits.
func (d *decoder) huffman(lit *[litTableSize]uint32, dist *[distTableSize]uint32) (err error) {
	end, err := d.room(0)
	if err != nil {
		return err
	}
	in, pos, bb, nb := d.in, d.pos, d.bb, d.nb
	out, n := d.out, d.n
	for {
		if pos+8 <= len(in) {
			bb |= binary.LittleEndian.Uint64(in[pos:]) << (nb & 63)
			pos += int((63 - nb) >> 3)
			nb |= 56
		} else {
			d.pos, d.bb, d.nb = pos, bb, nb
			if err := d.refill(); err != nil {
				return d.save(pos, bb, nb, n, err)
			}
			pos, bb, nb = d.pos, d.bb, d.nb
		}
		e := lit[bb&(1<<litTableBits-1)]
		if e&fSub != 0 {
			bb >>= litTableBits
			nb -= litTableBits
			e = lit[e>>16+uint32(bb)&(1<<(e>>8&15)-1)]
		}
		if e&fLiteral != 0 {
			if n+2 > end {
				d.n = n
				if end, err = d.room(1); err != nil {
					return d.save(pos, bb, nb, n, err)
				}
				out = d.out
			}
			out[n] = byte(e >> 16)
			n++
			bb >>= e & 63
			nb -= uint(e & 0xff)
			// A second literal fits in the same refill, when its code
			// fits in the primary table.
			if e = lit[bb&(1<<litTableBits-1)]; e&fLiteral != 0 && n < end {
				out[n] = byte(e >> 16)
				n++
				bb >>= e & 63
				nb -= uint(e & 0xff)
			}
			continue
		}
		if e&(fEnd|fBad) != 0 {
			if e&fBad != 0 {
				return d.save(pos, bb, nb, n, ErrCorrupt)
			}
			bb >>= e & 63
			nb -= uint(e & 0xff)
			return d.save(pos, bb, nb, n, nil)
		}
		// The bits a length or distance takes, code and extra bits, are
		// at most 28: masking the shift count with 31 changes nothing but
		// spares the compiler's code for counts of 32 and more
		// (BenchmarkGunzip 1.2-1.5× on an Intel machine).
		length := int(e>>16) + int(uint32(bb)&(1<<(e&31)-1)>>(e>>8&15))
		bb >>= e & 63
		nb -= uint(e & 0xff)

		e = dist[bb&(1<<distTableBits-1)]
		if e&fSub != 0 {
			bb >>= distTableBits
			nb -= distTableBits
			e = dist[e>>16+uint32(bb)&(1<<(e>>8&15)-1)]
		}
		if e&fBad != 0 {
			return d.save(pos, bb, nb, n, ErrCorrupt)
		}
		distance := int(e>>16) + int(uint32(bb)&(1<<(e&31)-1)>>(e>>8&15))
		bb >>= e & 63
		nb -= uint(e & 0xff)
		if distance > n-d.start {
			return d.save(pos, bb, nb, n, ErrCorrupt)
		}
		if n+length > end {
			d.n = n
			if end, err = d.room(length); err != nil {
				return d.save(pos, bb, nb, n, err)
			}
			out = d.out
		}
		from := n - distance
		switch {
		case distance >= 8:
			// Eight bytes at a time, up to seven past the match: each word
			// read was written before, the source being eight or more
			// bytes behind.
			for i := 0; i < length; i += 8 {
				binary.LittleEndian.PutUint64(out[n+i:], binary.LittleEndian.Uint64(out[from+i:]))
			}
		case distance == 1:
			c := out[from]
			for i := n; i < n+length; i++ {
				out[i] = c
			}
		default:
			for i := range length {
				out[n+i] = out[from+i]
			}
		}
		n += length
	}
}

// save stores huffman's state, kept in locals while it decodes, and
// returns err.
func (d *decoder) save(pos int, bb uint64, nb uint, n int, err error) error {
	d.pos, d.bb, d.nb, d.n = pos, bb, nb, n
	return err
}
