package gunzip

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"errors"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	kgzip "github.com/klauspost/compress/gzip"
)

// page is a real node_exporter page, the data a scrape decompresses.
func page(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("../../scrape/testdata/node_exporter.txt")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// gz compresses data with the standard library's encoder at level.
func gz(t testing.TB, data []byte, level int) []byte {
	return compress(t, data, level, func(w io.Writer, level int) (io.WriteCloser, error) {
		return gzip.NewWriterLevel(w, level)
	})
}

// kgz compresses data with klauspost's encoder, whose blocks differ.
func kgz(t testing.TB, data []byte, level int) []byte {
	return compress(t, data, level, func(w io.Writer, level int) (io.WriteCloser, error) {
		return kgzip.NewWriterLevel(w, level)
	})
}

func compress(t testing.TB, data []byte, level int, writer func(io.Writer, int) (io.WriteCloser, error)) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := writer(&buf, level)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// inputs are data of the shapes DEFLATE codes differently: text, runs
// (distance 1), short periods (distances under 8), incompressible bytes
// (stored blocks), and pages longer than the 32 KiB window.
func inputs(t testing.TB) map[string][]byte {
	r := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 70_000)
	for i := range random {
		random[i] = byte(r.Uint32())
	}
	var periods bytes.Buffer
	for p := 2; p < 12; p++ {
		for i := range 400 {
			periods.WriteByte(byte('a' + i%p))
		}
		periods.Write(random[:p*7])
	}
	var skewed bytes.Buffer // long codes: a few bytes common, many rare
	for i := range 100_000 {
		if i%97 == 0 {
			skewed.WriteByte(byte(r.Uint32()))
		} else {
			skewed.WriteByte("ab"[r.IntN(2)])
		}
	}
	return map[string][]byte{
		"empty":   nil,
		"one":     {'x'},
		"page":    page(t),
		"run":     bytes.Repeat([]byte{0}, 70_000),
		"periods": periods.Bytes(),
		"random":  random,
		"skewed":  skewed.Bytes(),
		"words":   []byte(strings.Repeat("the quick brown fox jumps over the lazy dog ", 2000)),
	}
}

// Every input, at every level of both encoders, comes back as it went in,
// appended to what dst held.
func TestAppendRoundTrip(t *testing.T) {
	for name, data := range inputs(t) {
		for _, level := range []int{gzip.HuffmanOnly, gzip.NoCompression, gzip.BestSpeed, gzip.DefaultCompression} {
			for enc, z := range map[string][]byte{"std": gz(t, data, level), "klauspost": kgz(t, data, level)} {
				got, err := Append([]byte("prefix"), z, 0)
				if err != nil {
					t.Fatalf("%s level %d %s: %v", name, level, enc, err)
				}
				if !bytes.Equal(got, append([]byte("prefix"), data...)) {
					t.Fatalf("%s level %d %s: %d bytes differ from the %d given", name, level, enc, len(got)-6, len(data))
				}
			}
		}
	}
}

// Members one after another decompress to their data in turn; header
// fields are skipped, and a header CRC is checked.
func TestAppendMembers(t *testing.T) {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Header.Name = "name"
	w.Header.Comment = "comment"
	w.Header.Extra = []byte("extra")
	w.Write([]byte("first "))
	w.Close()
	one := bytes.Clone(buf.Bytes())
	w.Reset(&buf)
	w.Write([]byte("second"))
	w.Close()
	got, err := Append(nil, buf.Bytes(), 0)
	if err != nil || string(got) != "first second" {
		t.Fatalf("got %q, %v", got, err)
	}

	// The same first member with FHCRC: right, then wrong.
	hdr := len(one) - 8 // the trailer
	for hdr > 0 && !bytes.HasSuffix(one[:hdr], []byte("comment\x00")) {
		hdr--
	}
	withCRC := append(bytes.Clone(one[:hdr]), 0, 0)
	withCRC = append(withCRC, one[hdr:]...)
	withCRC[3] |= flagHCRC
	crc := crc32.ChecksumIEEE(withCRC[:hdr])
	withCRC[hdr], withCRC[hdr+1] = byte(crc), byte(crc>>8)
	if got, err := Append(nil, withCRC, 0); err != nil || string(got) != "first " {
		t.Fatalf("FHCRC: got %q, %v", got, err)
	}
	withCRC[hdr] ^= 1
	if _, err := Append(nil, withCRC, 0); !errors.Is(err, ErrHeader) {
		t.Fatalf("wrong FHCRC: %v, want ErrHeader", err)
	}
}

// Decompressed data over the limit fails with ErrTooLarge; data of the
// limit's size passes. The limit counts what is appended, not dst.
func TestAppendLimit(t *testing.T) {
	// Literals alone, of both parities of length: the decoder writes
	// literals in pairs when it has room for two.
	abc := bytes.Repeat([]byte("abcd"), 1000)
	for _, c := range []struct {
		data  []byte
		level int
	}{
		{page(t), gzip.NoCompression},
		{page(t), gzip.DefaultCompression},
		{page(t), gzip.HuffmanOnly},
		{abc, gzip.HuffmanOnly},
		{abc[1:], gzip.HuffmanOnly},
	} {
		data, level := c.data, c.level
		z := gz(t, data, level)
		if got, err := Append([]byte("p"), z, len(data)); err != nil || len(got) != len(data)+1 {
			t.Fatalf("level %d, limit = size: %d bytes, %v", level, len(got), err)
		}
		for _, limit := range []int{1, 100, len(data) - 2, len(data) - 1} {
			if _, err := Append([]byte("p"), z, limit); !errors.Is(err, ErrTooLarge) {
				t.Fatalf("level %d, limit %d of %d: %v, want ErrTooLarge", level, limit, len(data), err)
			}
		}
	}
	// The last block's last literals, one over the limit.
	var w bitWriter
	w.bits(1, 1)
	w.bits(1, 2)
	w.code(0x30+'a', 8)
	w.code(0x30+'b', 8)
	w.code(0, 7)
	raw := w.flush()
	if got, _, err := new(decoder).inflate(nil, raw, 1); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("2 literals, limit 1: %q, %v", got, err)
	}
	if got, _, err := new(decoder).inflate(nil, raw, 2); err != nil || string(got) != "ab" {
		t.Fatalf("2 literals, limit 2: %q, %v", got, err)
	}
	// A bomb stops at the limit, not at its size.
	bomb := gz(t, make([]byte, 8<<20), gzip.BestSpeed)
	if _, err := Append(nil, bomb, 1<<20); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("bomb: %v", err)
	}
}

// Input cut anywhere fails, and so does input changed anywhere, unless
// compress/gzip accepts the change too with the same output (a changed
// modification time, say).
func TestAppendDamaged(t *testing.T) {
	data := []byte(strings.Repeat("node_cpu_seconds_total{cpu=\"0\",mode=\"idle\"} 1234.5\n", 8))
	for _, z := range [][]byte{gz(t, data, gzip.DefaultCompression), gz(t, data, gzip.NoCompression), gz(t, data, gzip.HuffmanOnly)} {
		for n := range len(z) {
			if _, err := Append(nil, z[:n], 0); err == nil {
				t.Fatalf("cut at %d of %d: no error", n, len(z))
			}
		}
		for i := range z {
			for _, flip := range []byte{0x01, 0xff} {
				bad := bytes.Clone(z)
				bad[i] ^= flip
				same(t, bad)
			}
		}
		same(t, append(bytes.Clone(z), 0x1f))
		same(t, append(bytes.Clone(z), make([]byte, 12)...))
	}
}

// Streams written bit by bit reach the decoder's rarer paths: codes that
// DEFLATE reserves, a distance before the first byte, incomplete and
// degenerate codes, and a bad block type.
func TestAppendCrafted(t *testing.T) {
	for _, c := range []struct {
		name string
		ok   bool
		bits func(w *bitWriter)
	}{
		{"fixed literal and end", true, func(w *bitWriter) {
			w.bits(1, 1)
			w.bits(1, 2)
			w.code(0x30+'A', 8)
			w.code(0, 7) // 256
		}},
		{"fixed length 286", false, func(w *bitWriter) {
			w.bits(1, 1)
			w.bits(1, 2)
			w.code(0x30+'A', 8)
			w.code(0xc0+6, 8) // 280 + 6
		}},
		{"fixed distance 30", false, func(w *bitWriter) {
			w.bits(1, 1)
			w.bits(1, 2)
			w.code(0x30+'A', 8)
			w.code(1, 7) // 257: length 3
			w.code(30, 5)
		}},
		{"distance before the start", false, func(w *bitWriter) {
			w.bits(1, 1)
			w.bits(1, 2)
			w.code(0x30+'A', 8)
			w.code(1, 7)
			w.code(1, 5) // distance 2
		}},
		{"block type 3", false, func(w *bitWriter) {
			w.bits(1, 1)
			w.bits(3, 2)
		}},
		{"stored, length not complemented", false, func(w *bitWriter) {
			w.bits(1, 1)
			w.bits(0, 2)
			w.align()
			w.bytes(2, 0, 0xfe, 0xff, 'h', 'i')
		}},
		{"stored", true, func(w *bitWriter) {
			w.bits(1, 1)
			w.bits(0, 2)
			w.align()
			w.bytes(2, 0, 0xfd, 0xff, 'h', 'i')
		}},
		{"dynamic, one distance code of one bit", true, func(w *bitWriter) {
			dynamic(w, 1, 1)
		}},
		{"dynamic, one distance code of two bits", false, func(w *bitWriter) {
			dynamic(w, 1, 2)
		}},
		{"dynamic, no distance code", true, func(w *bitWriter) {
			dynamic(w, 0, 0)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var w bitWriter
			c.bits(&w)
			raw := w.flush()
			got, _, err := new(decoder).inflate(nil, raw, 0)
			want, werr := io.ReadAll(flate.NewReader(bytes.NewReader(raw)))
			if (err == nil) != c.ok || (werr == nil) != c.ok {
				t.Fatalf("error %v, compress/flate %v; want ok=%v", err, werr, c.ok)
			}
			if c.ok && !bytes.Equal(got, want) {
				t.Fatalf("got %q, compress/flate %q", got, want)
			}
		})
	}
}

// dynamic writes a final dynamic block holding "ab" and a match of
// length 3 at distance 1 — or, with no distance code, "ab" alone. Its
// literal code gives 'a', 'b', 256 and 257 two bits each; its distance
// code ndist codes of dlen bits.
func dynamic(w *bitWriter, ndist, dlen int) {
	w.bits(1, 1)
	w.bits(2, 2)
	w.bits(258-257, 5) // HLIT: 258 codes
	w.bits(max(ndist, 1)-1, 5)
	w.bits(19-4, 4) // HCLEN: all 19
	// Code length code: lengths 0, 1 and 2 (and 18 for runs of zeros),
	// each two bits.
	var clen [19]int
	clen[0], clen[2], clen[18] = 2, 2, 2
	if dlen == 1 {
		clen[1] = 2
	} else {
		clen[16] = 2 // unused, keeps the code complete
	}
	for _, s := range lenOrder {
		w.bits(clen[s], 3)
	}
	// Canonical codes of lengths 2: symbols 0, 1|16, 2, 18 in order.
	syms := []int{0, 1, 2, 18}
	if dlen != 1 {
		syms = []int{0, 2, 16, 18}
	}
	clcode := func(s int) {
		for i, x := range syms {
			if x == s {
				w.code(i, 2)
			}
		}
	}
	// Literal lengths: 97 zeros, 'a' 'b' = 2, 152 zeros, 256 257 = 2.
	clcode(18)
	w.bits(97-11, 7)
	clcode(2)
	clcode(2)
	clcode(18)
	w.bits(138-11, 7)
	clcode(18)
	w.bits(256-99-138-11, 7)
	clcode(2)
	clcode(2)
	// Distance lengths.
	dl := 0
	if ndist > 0 {
		dl = dlen
	}
	clcode(dl)
	// Data: 'a' 'b', then with a distance code a match of 3 at distance 1.
	w.code(0, 2)
	w.code(1, 2)
	if ndist > 0 {
		w.code(3, 2) // 257
		w.code(0, dlen)
	}
	w.code(2, 2) // 256
}

// bitWriter writes a DEFLATE stream: fields from the low bit up, Huffman
// codes from their high bit.
type bitWriter struct {
	out  []byte
	acc  uint64
	nacc uint
}

func (w *bitWriter) bits(v, n int) {
	w.acc |= uint64(v) << w.nacc
	w.nacc += uint(n)
	for w.nacc >= 8 {
		w.out = append(w.out, byte(w.acc))
		w.acc >>= 8
		w.nacc -= 8
	}
}

func (w *bitWriter) code(c, n int) {
	for i := n - 1; i >= 0; i-- {
		w.bits(c>>i&1, 1)
	}
}

func (w *bitWriter) align() {
	if w.nacc > 0 {
		w.bits(0, int(8-w.nacc))
	}
}

func (w *bitWriter) bytes(b ...byte) { w.out = append(w.out, b...) }

func (w *bitWriter) flush() []byte {
	w.align()
	return w.out
}

// same fails t unless Append and compress/gzip agree on z: both fail, or
// both give the same data.
func same(t testing.TB, z []byte) {
	t.Helper()
	got, err := Append(nil, z, 0)
	var want []byte
	r, werr := gzip.NewReader(bytes.NewReader(z))
	if werr == nil {
		want, werr = io.ReadAll(r)
	}
	if (err == nil) != (werr == nil) {
		t.Fatalf("%x: error %v, compress/gzip %v", z, err, werr)
	}
	if err == nil && !bytes.Equal(got, want) {
		t.Fatalf("%x: %d bytes, compress/gzip %d", z, len(got), len(want))
	}
}

// FuzzAppend holds Append to compress/gzip on any input.
func FuzzAppend(f *testing.F) {
	for _, data := range [][]byte{nil, []byte("a"), []byte(strings.Repeat("abcabcabd", 50)), page(f)[:3000]} {
		for _, level := range []int{gzip.HuffmanOnly, gzip.NoCompression, gzip.BestSpeed, gzip.DefaultCompression} {
			f.Add(gz(f, data, level))
			f.Add(kgz(f, data, level))
		}
	}
	f.Fuzz(func(t *testing.T, z []byte) {
		same(t, z)
	})
}

// FuzzInflate holds the DEFLATE decoder to compress/flate on any stream,
// where FuzzAppend's mutations mostly break the gzip framing.
func FuzzInflate(f *testing.F) {
	for _, data := range [][]byte{nil, []byte("a"), []byte(strings.Repeat("abcabcabd", 50)), page(f)[:3000]} {
		for _, level := range []int{flate.HuffmanOnly, flate.NoCompression, flate.BestSpeed, flate.DefaultCompression} {
			var buf bytes.Buffer
			w, _ := flate.NewWriter(&buf, level)
			w.Write(data)
			w.Close()
			f.Add(buf.Bytes())
		}
	}
	d := new(decoder)
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, _, err := d.inflate(nil, raw, 1<<20)
		want, werr := io.ReadAll(io.LimitReader(flate.NewReader(bytes.NewReader(raw)), 1<<20+1))
		if werr == nil && len(want) > 1<<20 {
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("%d bytes or more, error %v", len(want), err)
			}
			return
		}
		if (err == nil) != (werr == nil) {
			t.Fatalf("error %v, compress/flate %v", err, werr)
		}
		if err == nil && !bytes.Equal(got, want) {
			t.Fatalf("%d bytes, compress/flate %d", len(got), len(want))
		}
	})
}
