package syslog

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

// chunkReader returns its data in chunks of the given sizes, cycling.
type chunkReader struct {
	data  []byte
	sizes []byte
	i     int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := 1
	if len(r.sizes) > 0 {
		n = int(r.sizes[r.i%len(r.sizes)]) + 1
		r.i++
	}
	n = min(n, len(p), len(r.data))
	copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

// FuzzFramer checks that framing never panics, never returns more than the
// maximum, ends, and gives the same frames however the stream is chunked.
func FuzzFramer(f *testing.F) {
	f.Add([]byte("<13>a\n17 <13>octet counted<13>b\r\n\n4 <1>x\n9 <13>has\nnl<13>tail"), []byte{0, 3, 7}, uint16(64))
	f.Add([]byte("99999999999 x\n1\n12 abc"), []byte{1}, uint16(8))
	f.Add([]byte(strings.Repeat("z", 300)+"\n5 hello"), []byte{200}, uint16(16))
	f.Fuzz(func(t *testing.T, data, sizes []byte, max uint16) {
		m := int(max%4096) + 1
		whole := collectFrames(t, bytes.NewReader(data), m)
		chunked := collectFrames(t, &chunkReader{data: data, sizes: sizes}, m)
		if len(whole) != len(chunked) {
			t.Fatalf("%d frames whole, %d chunked", len(whole), len(chunked))
		}
		for i := range whole {
			if whole[i] != chunked[i] {
				t.Fatalf("frame %d: %q whole, %q chunked", i, whole[i], chunked[i])
			}
		}
	})
}

func collectFrames(t *testing.T, r io.Reader, max int) []string {
	fr := newFramer(r, max)
	var out []string
	for i := 0; ; i++ {
		if i > 1<<20 {
			t.Fatal("framer does not end")
		}
		msg, _, err := fr.next()
		if len(msg) > max {
			t.Fatalf("frame of %d bytes, max %d", len(msg), max)
		}
		if len(fr.buf) > max+32 && len(fr.buf) > initialFrameBuf && len(fr.buf) > readBufMax {
			t.Fatalf("buffer of %d bytes, max %d", len(fr.buf), max)
		}
		if msg != nil {
			out = append(out, string(msg))
		}
		if err != nil {
			return out
		}
	}
}
