package journal

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
)

// Field is one field of a journal entry. Name and Value point into the
// Decoder's buffer and are valid until its next call to Next.
type Field struct {
	Name  []byte
	Value []byte
}

// Record is one journal entry as the export format carries it: its fields
// in order, including the "__" ones (__CURSOR, __REALTIME_TIMESTAMP,
// __MONOTONIC_TIMESTAMP) that journalctl adds.
type Record struct {
	Fields []Field
}

// Get returns the value of the first field called name, or nil.
func (r *Record) Get(name string) []byte {
	for _, f := range r.Fields {
		if string(f.Name) == name {
			return f.Value
		}
	}
	return nil
}

// DefaultMaxFieldSize bounds a field value in Decoder (journald itself
// stores fields of up to 64 MiB but limits entries to far less by
// default).
const DefaultMaxFieldSize = 16 << 20

// ErrFormat is wrapped by the errors Decoder returns for input that is not
// in the export format.
var ErrFormat = errors.New("journal: not journal export format")

// Decoder reads the Journal Export Format
// (https://systemd.io/JOURNAL_EXPORT_FORMATS/): entries of fields
// separated by an empty line, each field either "NAME=value\n" (text) or
// "NAME\n" followed by the value's length as a little-endian uint64, the
// value, and "\n" (binary). It reuses one buffer for every entry.
type Decoder struct {
	r *bufio.Reader
	// MaxFieldSize bounds a value (default DefaultMaxFieldSize); a larger
	// one is an error, since the stream cannot be trusted past it.
	MaxFieldSize int

	buf    []byte
	spans  [][4]int
	record Record
	lb     [8]byte // a binary field's length, read here to spare an allocation
}

// NewDecoder returns a Decoder reading r.
func NewDecoder(r io.Reader) *Decoder {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 64<<10)
	}
	return &Decoder{r: br}
}

// Next returns the next entry, valid until the following call. At the end
// of the stream it returns io.EOF, or io.ErrUnexpectedEOF if the stream
// ended inside an entry.
func (d *Decoder) Next() (*Record, error) {
	max := d.MaxFieldSize
	if max <= 0 {
		max = DefaultMaxFieldSize
	}
	d.buf = d.buf[:0]
	d.spans = d.spans[:0]
	for {
		line, err := d.readLine()
		if err != nil {
			if err == io.EOF && len(d.spans) > 0 {
				// The last entry of a stream may lack its empty line.
				return d.finish(), nil
			}
			if err == io.EOF && len(line) > 0 {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if len(line) == 0 {
			if len(d.spans) == 0 {
				continue // stray empty lines between entries
			}
			return d.finish(), nil
		}
		if i := bytes.IndexByte(line, '='); i >= 0 {
			if i == 0 {
				return nil, fmt.Errorf("%w: field without a name", ErrFormat)
			}
			if len(line)-i-1 > max {
				return nil, fmt.Errorf("%w: field %.64q longer than %d bytes", ErrFormat, line[:i], max)
			}
			start := len(d.buf)
			d.buf = append(d.buf, line...)
			d.spans = append(d.spans, [4]int{start, start + i, start + i + 1, len(d.buf)})
			continue
		}
		// A binary field: the name, then the length and the data.
		start := len(d.buf)
		d.buf = append(d.buf, line...)
		nameEnd := len(d.buf)
		if _, err := io.ReadFull(d.r, d.lb[:]); err != nil {
			return nil, unexpected(err)
		}
		n := binary.LittleEndian.Uint64(d.lb[:])
		if n > uint64(max) {
			return nil, fmt.Errorf("%w: binary field %.64q of %d bytes, more than %d", ErrFormat, line, n, max)
		}
		vstart := len(d.buf)
		d.buf = slices.Grow(d.buf, int(n))[:vstart+int(n)]
		if _, err := io.ReadFull(d.r, d.buf[vstart:]); err != nil {
			return nil, unexpected(err)
		}
		if c, err := d.r.ReadByte(); err != nil {
			return nil, unexpected(err)
		} else if c != '\n' {
			return nil, fmt.Errorf("%w: binary field %.64q not followed by a newline", ErrFormat, d.buf[start:nameEnd])
		}
		d.spans = append(d.spans, [4]int{start, nameEnd, vstart, len(d.buf)})
	}
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// readLine returns the next line without its "\n". The slice is valid
// until the next read.
func (d *Decoder) readLine() ([]byte, error) {
	line, err := d.r.ReadSlice('\n')
	if err == nil {
		return line[:len(line)-1], nil
	}
	if err != bufio.ErrBufferFull {
		return line, err
	}
	// A line longer than the reader's buffer: gather it.
	long := append([]byte(nil), line...)
	for {
		line, err = d.r.ReadSlice('\n')
		long = append(long, line...)
		if len(long) > d.maxLine() {
			return nil, fmt.Errorf("%w: line longer than %d bytes", ErrFormat, d.maxLine())
		}
		if err == nil {
			return long[:len(long)-1], nil
		}
		if err != bufio.ErrBufferFull {
			return long, err
		}
	}
}

func (d *Decoder) maxLine() int {
	if d.MaxFieldSize > 0 {
		return d.MaxFieldSize + 1024
	}
	return DefaultMaxFieldSize + 1024
}

func (d *Decoder) finish() *Record {
	fs := d.record.Fields[:0]
	for _, s := range d.spans {
		fs = append(fs, Field{Name: d.buf[s[0]:s[1]], Value: d.buf[s[2]:s[3]]})
	}
	d.record.Fields = fs
	return &d.record
}

// Buffered reports how many bytes the decoder has read ahead.
func (d *Decoder) Buffered() int { return d.r.Buffered() }
