package buffer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"sync"
	"time"
	"unsafe"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/internal/labelsenc"
	"github.com/prometheus/prometheus/model/labels"
)

// Codec turns items of type T into bytes for the disk and back.
//
// Append appends the encoding of *item to dst and returns the extended
// slice. prev is the item appended just before it in the same record, or
// nil for the first one; a codec may encode item relative to it (labels
// shared with the previous item, a timestamp as a delta). Append must not
// keep item or dst.
//
// Decode sets *item from src, the exact bytes one Append produced; prev is
// the item decoded just before it from the same record (nil for the first),
// already set by Decode. src is never modified nor reused by the buffer, so
// *item may alias it (strings made from src without a copy); it lives as
// long as the items that use it. Decode must return an error, not panic,
// for any src, however malformed: a record's checksum catches disk
// corruption, but not a codec bug or a change of format.
//
// A Codec may be used from several goroutines at once.
type Codec[T any] interface {
	Append(dst []byte, item, prev *T) []byte
	Decode(src []byte, item, prev *T) error
}

// ErrCorrupt is returned (wrapped) for bytes that do not decode.
var ErrCorrupt = errors.New("buffer: corrupt data")

// flags of an encoded item.
const (
	flagTime      = 1 << iota // a timestamp follows
	flagSameLabel             // the labels are the previous item's
	flagMetadata              // metadata follows the line
)

// EntryCodec is the Codec of ferry.Entry: labels (or a reference to the
// previous entry's), the timestamp in nanoseconds as a delta to the
// previous entry's, the line and the structured metadata. Decoded lines and
// metadata alias the record's bytes, so decoding allocates nothing per
// entry with Prometheus's default labels implementation.
//
// Stream labels are different: sinks keep them (a Loki sink caches one
// entry per stream), and labels aliasing a record would keep the whole
// record in memory. NewEntryCodec returns a codec that decodes labels into
// copies held in a bounded cache, shared by the entries of a stream; the
// zero EntryCodec aliases them.
type EntryCodec struct {
	cache *labelCache
}

// NewEntryCodec returns an EntryCodec whose decoded labels are copies from
// a cache of at most 4096 label sets (emptied when full).
func NewEntryCodec() EntryCodec { return EntryCodec{cache: newLabelCache(4096)} }

var _ Codec[ferry.Entry] = EntryCodec{}

// Append implements Codec.
func (EntryCodec) Append(dst []byte, e, prev *ferry.Entry) []byte {
	var f byte
	if !e.Timestamp.IsZero() {
		f |= flagTime
	}
	if prev != nil && sameLabels(e.Labels, prev.Labels) {
		f |= flagSameLabel
	}
	if !e.Metadata.IsEmpty() {
		f |= flagMetadata
	}
	dst = append(dst, f)
	if f&flagSameLabel == 0 {
		dst = appendLabels(dst, e.Labels)
	}
	if f&flagTime != 0 {
		ts := e.Timestamp.UnixNano()
		if prev != nil && !prev.Timestamp.IsZero() {
			ts -= prev.Timestamp.UnixNano()
		}
		dst = binary.AppendVarint(dst, ts)
	}
	dst = binary.AppendUvarint(dst, uint64(len(e.Line)))
	dst = append(dst, e.Line...)
	if f&flagMetadata != 0 {
		dst = appendLabels(dst, e.Metadata)
	}
	return dst
}

// Decode implements Codec.
func (c EntryCodec) Decode(src []byte, e, prev *ferry.Entry) error {
	if len(src) == 0 {
		return errCorrupt("empty entry")
	}
	f, i := src[0], 1
	if f&^(flagTime|flagSameLabel|flagMetadata) != 0 {
		return errCorrupt("unknown entry flags")
	}
	var err error
	if f&flagSameLabel != 0 {
		if prev == nil {
			return errCorrupt("label reference without a previous entry")
		}
		e.Labels = prev.Labels
	} else if e.Labels, i, err = c.cache.readLabels(src, i); err != nil {
		return err
	}
	e.Timestamp = time.Time{}
	if f&flagTime != 0 {
		ts, n := binary.Varint(src[i:])
		if n <= 0 {
			return errCorrupt("bad timestamp")
		}
		i += n
		if prev != nil && !prev.Timestamp.IsZero() {
			ts += prev.Timestamp.UnixNano()
		}
		e.Timestamp = time.Unix(0, ts)
	}
	var line []byte
	if line, i, err = readBytes(src, i); err != nil {
		return err
	}
	e.Line = str(line)
	e.Metadata = labels.EmptyLabels()
	if f&flagMetadata != 0 {
		if e.Metadata, i, err = readLabels(src, i); err != nil {
			return err
		}
	}
	if i != len(src) {
		return errCorrupt("trailing bytes after entry")
	}
	return nil
}

// SampleCodec is the Codec of ferry.Sample: labels (or a reference to the
// previous sample's), the timestamp in milliseconds as a delta to the
// previous sample's, and the value's 8 bytes. The zero SampleCodec decodes
// labels aliasing the record's bytes; NewSampleCodec's copies them into a
// bounded cache, as NewEntryCodec does.
type SampleCodec struct {
	cache *labelCache
}

// NewSampleCodec returns a SampleCodec whose decoded labels are copies from
// a cache of at most 65536 label sets (emptied when full).
func NewSampleCodec() SampleCodec { return SampleCodec{cache: newLabelCache(1 << 16)} }

var _ Codec[ferry.Sample] = SampleCodec{}

// Append implements Codec.
func (SampleCodec) Append(dst []byte, s, prev *ferry.Sample) []byte {
	var f byte = flagTime
	if prev != nil && sameLabels(s.Labels, prev.Labels) {
		f |= flagSameLabel
	}
	dst = append(dst, f)
	if f&flagSameLabel == 0 {
		dst = appendLabels(dst, s.Labels)
	}
	t := s.T
	if prev != nil {
		t -= prev.T
	}
	dst = binary.AppendVarint(dst, t)
	return binary.LittleEndian.AppendUint64(dst, math.Float64bits(s.V))
}

// Decode implements Codec.
func (c SampleCodec) Decode(src []byte, s, prev *ferry.Sample) error {
	if len(src) == 0 {
		return errCorrupt("empty sample")
	}
	f, i := src[0], 1
	if f&^(flagTime|flagSameLabel) != 0 || f&flagTime == 0 {
		return errCorrupt("unknown sample flags")
	}
	var err error
	if f&flagSameLabel != 0 {
		if prev == nil {
			return errCorrupt("label reference without a previous sample")
		}
		s.Labels = prev.Labels
	} else if s.Labels, i, err = c.cache.readLabels(src, i); err != nil {
		return err
	}
	t, n := binary.Varint(src[i:])
	if n <= 0 {
		return errCorrupt("bad timestamp")
	}
	i += n
	if prev != nil {
		t += prev.T
	}
	s.T = t
	if len(src)-i != 8 {
		return errCorrupt("bad value")
	}
	s.V = math.Float64frombits(binary.LittleEndian.Uint64(src[i:]))
	return nil
}

func errCorrupt(what string) error { return &corruptError{what} }

type corruptError struct{ what string }

func (e *corruptError) Error() string { return "buffer: corrupt data: " + e.what }
func (e *corruptError) Unwrap() error { return ErrCorrupt }

// sameLabels is a cheap equality test: the same encoding, which with
// stringlabels is often the very same string.
func sameLabels(a, b labels.Labels) bool {
	ra, ok := labelsenc.Raw(a)
	if !ok {
		return labels.Equal(a, b)
	}
	rb, _ := labelsenc.Raw(b)
	return ra == rb
}

// appendLabels appends ls as a length and its labelsenc encoding.
func appendLabels(dst []byte, ls labels.Labels) []byte {
	if raw, ok := labelsenc.Raw(ls); ok {
		dst = binary.AppendUvarint(dst, uint64(len(raw)))
		return append(dst, raw...)
	}
	start := len(dst)
	dst = labelsenc.Append(dst, ls)
	n := len(dst) - start
	var tmp [binary.MaxVarintLen64]byte
	k := binary.PutUvarint(tmp[:], uint64(n))
	dst = append(dst, tmp[:k]...)
	copy(dst[start+k:], dst[start:start+n])
	copy(dst[start:], tmp[:k])
	return dst
}

// readBytes reads a length-prefixed byte string at src[i:].
func readBytes(src []byte, i int) ([]byte, int, error) {
	n, k := binary.Uvarint(src[i:])
	if k <= 0 || n > uint64(len(src)-i-k) {
		return nil, 0, errCorrupt("bad length")
	}
	i += k
	return src[i : i+int(n) : i+int(n)], i + int(n), nil
}

// readLabels reads labels written by appendLabels, checking the encoding
// so that a malformed one never reaches the labels package.
func readLabels(src []byte, i int) (labels.Labels, int, error) {
	b, next, err := readBytes(src, i)
	if err != nil {
		return labels.EmptyLabels(), 0, err
	}
	if err := checkLabels(b); err != nil {
		return labels.EmptyLabels(), 0, err
	}
	return labelsenc.View(b), next, nil
}

// labelCache holds copies of decoded label sets, so that labels a sink
// keeps do not pin the record they were decoded from. A nil *labelCache
// aliases instead.
type labelCache struct {
	mu  sync.Mutex
	max int
	m   map[string]labels.Labels
}

func newLabelCache(max int) *labelCache {
	return &labelCache{max: max, m: make(map[string]labels.Labels)}
}

// readLabels is readLabels through the cache.
func (c *labelCache) readLabels(src []byte, i int) (labels.Labels, int, error) {
	if c == nil {
		return readLabels(src, i)
	}
	b, next, err := readBytes(src, i)
	if err != nil {
		return labels.EmptyLabels(), 0, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if ls, ok := c.m[string(b)]; ok {
		return ls, next, nil
	}
	if err := checkLabels(b); err != nil {
		return labels.EmptyLabels(), 0, err
	}
	if len(c.m) >= c.max {
		clear(c.m)
	}
	own := bytes.Clone(b)
	ls := labelsenc.View(own)
	c.m[str(own)] = ls
	return ls, next, nil
}

// checkLabels verifies that b is a well-formed labelsenc encoding with
// names in strictly increasing order, as labels.Labels requires.
func checkLabels(b []byte) error {
	var prev []byte
	for i, k := 0, 0; i < len(b); k++ {
		name, j, ok := readSize(b, i)
		if !ok {
			return errCorrupt("bad label encoding")
		}
		if k > 0 && string(name) <= string(prev) {
			return errCorrupt("labels out of order")
		}
		prev = name
		_, i, ok = readSize(b, j)
		if !ok {
			return errCorrupt("bad label encoding")
		}
	}
	return nil
}

// readSize reads one labelsenc length-prefixed string at b[i:].
func readSize(b []byte, i int) ([]byte, int, bool) {
	if i >= len(b) {
		return nil, 0, false
	}
	n := int(b[i])
	i++
	if n == 255 {
		if len(b)-i < 3 {
			return nil, 0, false
		}
		n = int(b[i]) | int(b[i+1])<<8 | int(b[i+2])<<16
		i += 3
	}
	if n > len(b)-i {
		return nil, 0, false
	}
	return b[i : i+n], i + n, true
}

// str is b as a string without a copy; b must never change.
func str(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}
