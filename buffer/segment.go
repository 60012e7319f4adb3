package buffer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Disk layout. A buffer directory holds segment files named by a
// hexadecimal sequence number ("0000000000000001.seg") and one read marker
// ("ack"). A segment starts with a header:
//
//	magic "FRYB" | version uint16 | reserved uint16      (8 bytes)
//
// followed by records:
//
//	length uint32 | crc uint32 | items uint32 | time int64 | payload
//
// length is the payload's, crc the CRC-32C (Castagnoli) of everything after
// it (items, time and payload), time the Unix nanoseconds of the write.
// The payload is items times (size uint32 | the codec's encoding). Every
// integer is little-endian.
const (
	segMagic      = "FRYB"
	segVersion    = 1
	segHeaderSize = 8
	recHeaderSize = 20
	segSuffix     = ".seg"
	markerName    = "ack"
	markerSize    = 24 // magic "FRYA" | segment uint64 | offset uint64 | crc uint32
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func segName(dir string, id uint64) string {
	return filepath.Join(dir, fmt.Sprintf("%016x%s", id, segSuffix))
}

func segHeader() []byte {
	h := make([]byte, segHeaderSize)
	copy(h, segMagic)
	binary.LittleEndian.PutUint16(h[4:], segVersion)
	return h
}

// errVersion is a segment written in a format this build does not read.
var errVersion = errors.New("buffer: segment version")

func checkSegHeader(h []byte) error {
	if len(h) < segHeaderSize || string(h[:4]) != segMagic {
		return errCorrupt("not a segment file")
	}
	if v := binary.LittleEndian.Uint16(h[4:]); v != segVersion {
		return fmt.Errorf("%w %d, this build reads %d", errVersion, v, segVersion)
	}
	return nil
}

// listSegments returns the ids of the segment files in dir, in order.
func listSegments(dir string) ([]uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var ids []uint64
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), segSuffix)
		if !ok || len(name) != 16 {
			continue
		}
		id, err := strconv.ParseUint(name, 16, 64)
		if err != nil {
			continue
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, nil
}

// recHeader is a decoded record header.
type recHeader struct {
	length uint32
	crc    uint32
	items  uint32
	time   int64
}

func putRecHeader(b []byte, h recHeader) {
	binary.LittleEndian.PutUint32(b[0:], h.length)
	binary.LittleEndian.PutUint32(b[4:], h.crc)
	binary.LittleEndian.PutUint32(b[8:], h.items)
	binary.LittleEndian.PutUint64(b[12:], uint64(h.time))
}

func readRecHeader(b []byte) recHeader {
	return recHeader{
		length: binary.LittleEndian.Uint32(b[0:]),
		crc:    binary.LittleEndian.Uint32(b[4:]),
		items:  binary.LittleEndian.Uint32(b[8:]),
		time:   int64(binary.LittleEndian.Uint64(b[12:])),
	}
}

// sealRecord fills in the header of the record rec (header included),
// whose payload holds items items, written at time now.
func sealRecord(rec []byte, items int, now int64) {
	binary.LittleEndian.PutUint32(rec[8:], uint32(items))
	binary.LittleEndian.PutUint64(rec[12:], uint64(now))
	binary.LittleEndian.PutUint32(rec[0:], uint32(len(rec)-recHeaderSize))
	binary.LittleEndian.PutUint32(rec[4:], crc32.Checksum(rec[8:], castagnoli))
}

// errTorn is a record that ends past the readable end: a torn write, or a
// record not yet durable.
var errTorn = errors.New("buffer: record cut short")

// segReader reads the records of one segment file through a bounded
// read-ahead buffer: memory does not depend on the size of the segment,
// only on the largest record.
type segReader struct {
	f         io.ReaderAt
	maxRecord int
	buf       []byte // read-ahead: file bytes [bufOff, bufOff+len(buf))
	bufOff    int64
}

const readAhead = 256 << 10

func newSegReader(f io.ReaderAt, maxRecord int) *segReader {
	return &segReader{f: f, maxRecord: maxRecord}
}

// fill makes [off, off+n) available in r.buf, reading at most up to limit.
func (r *segReader) fill(off int64, n int, limit int64) error {
	if off >= r.bufOff && off+int64(n) <= r.bufOff+int64(len(r.buf)) {
		return nil
	}
	if off+int64(n) > limit {
		return errTorn
	}
	want := max(n, readAhead)
	if int64(want) > limit-off {
		want = int(limit - off)
	}
	if cap(r.buf) < want {
		r.buf = make([]byte, want, max(want, readAhead))
	}
	r.buf = r.buf[:want]
	k, err := r.f.ReadAt(r.buf, off)
	r.buf, r.bufOff = r.buf[:k], off
	if k < n {
		if err == nil || err == io.EOF {
			return errTorn
		}
		return err
	}
	return nil
}

// next reads the record at off, not reading past limit. It returns the
// header, the payload and the offset after the record. The payload is a
// new slice the caller owns, unless borrow is set: then it is valid until
// the next call. A record that does not fit before limit is errTorn; a bad
// length or checksum is ErrCorrupt.
func (r *segReader) next(off, limit int64, borrow bool) (recHeader, []byte, int64, error) {
	if err := r.fill(off, recHeaderSize, limit); err != nil {
		return recHeader{}, nil, off, err
	}
	i := int(off - r.bufOff)
	h := readRecHeader(r.buf[i:])
	if !plausible(h, r.maxRecord) {
		return h, nil, off, errCorrupt("bad record length")
	}
	n := recHeaderSize + int(h.length)
	end := off + int64(n)
	if end > limit {
		return h, nil, off, errTorn
	}
	var payload []byte
	own := false
	if avail := len(r.buf) - i; avail >= n {
		payload = r.buf[i+recHeaderSize : i+n]
	} else {
		// Larger than what is buffered: read it straight into its own
		// slice, copying nothing.
		payload = make([]byte, h.length)
		k := copy(payload, r.buf[i+recHeaderSize:])
		if m, err := r.f.ReadAt(payload[k:], off+int64(recHeaderSize+k)); m < len(payload)-k {
			if err == nil || err == io.EOF {
				err = errTorn
			}
			return h, nil, off, err
		}
		r.reset()
		own = true
	}
	var hb [12]byte
	binary.LittleEndian.PutUint32(hb[0:], h.items)
	binary.LittleEndian.PutUint64(hb[4:], uint64(h.time))
	if crc32.Update(crc32.Checksum(hb[:], castagnoli), castagnoli, payload) != h.crc {
		return h, nil, off, errCorrupt("checksum mismatch")
	}
	if !borrow && !own {
		payload = append([]byte(nil), payload...)
	}
	return h, payload, end, nil
}

// plausible reports whether a record header can be a record's: a length
// below the largest record, and room in it for the items' sizes.
func plausible(h recHeader, maxRecord int) bool {
	return int64(h.length) <= int64(maxRecord) && uint64(h.length) >= 4*uint64(h.items)
}

// errDamaged says that no valid record follows damaged bytes before the
// limit of a sealed segment.
var errDamaged = errCorrupt("no valid record after damaged bytes")

// nextValid reads the record at off like next, or, when the bytes there do
// not hold a valid record, the first valid one after them: skipped is then
// the number of damaged bytes passed over, from off. A valid record has a
// plausible header and a matching CRC-32C. Log lines never look like a
// header (their bytes make lengths far above any record's), so the search
// checksums few candidates. sealed says that nothing will be written past limit: there
// a record cut short by limit is damage, and no valid record before limit
// is errDamaged (with skipped the bytes to limit); in a segment still
// written to, it is errTorn with skipped the damaged bytes so far, and the
// caller comes back later (errTorn with skipped 0 is a record not yet
// written in full). Other errors are the file's.
func (r *segReader) nextValid(off, limit int64, sealed, borrow bool) (h recHeader, payload []byte, start, end int64, skipped int64, err error) {
	h, payload, end, err = r.next(off, limit, borrow)
	if err == nil {
		return h, payload, off, end, 0, nil
	}
	if !isDamage(err) || (errors.Is(err, errTorn) && !sealed) {
		return h, nil, off, off, 0, err
	}
	// The damaged record's length may be damaged too: look for the
	// first valid record after off, not where that length points.
	for at := off + 1; at+recHeaderSize <= limit; at++ {
		if err := r.fill(at, recHeaderSize, limit); err != nil {
			if !isDamage(err) {
				return h, nil, off, off, 0, err
			}
			break
		}
		i := int(at - r.bufOff)
		c := readRecHeader(r.buf[i:])
		if !plausible(c, r.maxRecord) || at+recHeaderSize+int64(c.length) > limit {
			continue
		}
		h2, p2, end2, err2 := r.next(at, limit, borrow)
		if err2 == nil {
			return h2, p2, at, end2, at - off, nil
		}
		if !isDamage(err2) {
			return h, nil, off, off, 0, err2
		}
	}
	if !sealed {
		return h, nil, off, off, limit - off, errTorn
	}
	return h, nil, off, off, limit - off, errDamaged
}

// isDamage tells damaged or cut-short bytes from a failure to read them.
func isDamage(err error) bool { return errors.Is(err, ErrCorrupt) || errors.Is(err, errTorn) }

// reset forgets the read-ahead (after the file changed under it).
func (r *segReader) reset() { r.buf, r.bufOff = r.buf[:0], 0 }

// forEachItem calls fn with the encoding of each item of a payload.
func forEachItem(payload []byte, items uint32, fn func(i int, b []byte) error) error {
	p := payload
	for i := 0; i < int(items); i++ {
		if len(p) < 4 {
			return errCorrupt("item count larger than payload")
		}
		n := binary.LittleEndian.Uint32(p)
		if uint64(n) > uint64(len(p)-4) {
			return errCorrupt("item length past payload")
		}
		if err := fn(i, p[4:4+n:4+n]); err != nil {
			return err
		}
		p = p[4+n:]
	}
	if len(p) != 0 {
		return errCorrupt("trailing bytes after items")
	}
	return nil
}

// marker is the persisted read position: everything before offset in
// segment seg was acknowledged by the inner sink.
type marker struct {
	seg uint64
	off int64
}

func encodeMarker(m marker) []byte {
	b := make([]byte, markerSize)
	copy(b, "FRYA")
	binary.LittleEndian.PutUint64(b[4:], m.seg)
	binary.LittleEndian.PutUint64(b[12:], uint64(m.off))
	binary.LittleEndian.PutUint32(b[20:], crc32.Checksum(b[:20], castagnoli))
	return b
}

func decodeMarker(b []byte) (marker, error) {
	if len(b) != markerSize || string(b[:4]) != "FRYA" || crc32.Checksum(b[:20], castagnoli) != binary.LittleEndian.Uint32(b[20:]) {
		return marker{}, errCorrupt("read marker")
	}
	m := marker{seg: binary.LittleEndian.Uint64(b[4:]), off: int64(binary.LittleEndian.Uint64(b[12:]))}
	if m.off < 0 {
		return marker{}, errCorrupt("read marker offset")
	}
	return m, nil
}

// writeMarker replaces dir's marker atomically: a temporary file, fsync,
// rename, fsync of the directory.
func writeMarker(dir string, m marker) error {
	tmp := filepath.Join(dir, markerName+".tmp")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err = f.Write(encodeMarker(m)); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, markerName))
	}
	if err == nil {
		err = syncDir(dir)
	}
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
