package syslog

import (
	"bytes"
	"io"
)

// framer splits a syslog byte stream (TCP, TLS) into messages, detecting the
// framing of each message on its own (RFC 6587): a frame that starts with
// digits followed by a space is octet-counted ("LEN SP MSG"), any other is
// ended by a newline (non-transparent framing). It holds at most max+32
// bytes, or readBufMax if more: longer messages are cut at max and the
// rest is skipped.
type framer struct {
	r     io.Reader
	buf   []byte
	start int
	end   int
	max   int

	discard  int  // bytes of an oversized octet-counted frame still to skip
	skipLine bool // skipping the rest of an oversized line
	busy     bool // the last read filled the buffer

	// beforeRead, if set, is called before every read from r: the reader is
	// about to wait, so whatever was gathered should go on.
	beforeRead func()
}

// initialFrameBuf is the buffer a connection starts with; it grows up to
// the maximum message length only when messages need it, and up to
// readBufMax only when reads fill it, so that idle connections cost
// little.
const initialFrameBuf = 2048

// readBufMax bounds the growth of a busy connection's buffer (one whose
// reads fill it), as opposed to that for a long message (up to the
// maximum message length).
const readBufMax = 64 << 10

func newFramer(r io.Reader, max int) *framer {
	n := initialFrameBuf
	if n > max+32 {
		n = max + 32
	}
	return &framer{r: r, buf: make([]byte, n), max: max}
}

// next returns the next message, valid until the following call, and
// whether it was cut at the maximum length. At the end of the stream a
// final message without a newline is returned before the error; the error
// is io.EOF for a clean end.
func (f *framer) next() (msg []byte, truncated bool, err error) {
	for {
		data := f.buf[f.start:f.end]
		switch {
		case f.discard > 0:
			n := min(f.discard, len(data))
			f.discard -= n
			f.start += n
			if f.discard > 0 {
				if err := f.fill(); err != nil {
					return nil, false, err
				}
			}
			continue
		case f.skipLine:
			if i := bytes.IndexByte(data, '\n'); i >= 0 {
				f.start += i + 1
				f.skipLine = false
			} else {
				f.start = f.end
				if err := f.fill(); err != nil {
					return nil, false, err
				}
			}
			continue
		}
		// Separators between frames: some senders end octet-counted
		// frames with a newline too.
		i := 0
		for i < len(data) && (data[i] == '\n' || data[i] == '\r' || data[i] == 0) {
			i++
		}
		f.start += i
		data = data[i:]
		if len(data) == 0 {
			if err := f.fill(); err != nil {
				return nil, false, err
			}
			continue
		}
		if data[0] >= '1' && data[0] <= '9' {
			n, hl, state := octetHeader(data)
			if state == headerIncomplete {
				if err := f.fill(); err != nil {
					return f.flushRest(err)
				}
				continue
			}
			if state == headerOK {
				take := min(n, f.max)
				if len(data) < hl+take {
					if err := f.fill(); err != nil {
						return f.flushRest(err)
					}
					continue
				}
				msg = data[hl : hl+take]
				f.start += hl + take
				f.discard = n - take
				return msg, n > take, nil
			}
			// Not a length: a newline-framed message that starts with a
			// digit (one without PRI).
		}
		if i := bytes.IndexByte(data, '\n'); i >= 0 && i <= f.max {
			f.start += i + 1
			return trimCR(data[:i]), false, nil
		}
		if len(data) >= f.max {
			f.start += f.max
			f.skipLine = true
			return data[:f.max], true, nil
		}
		if err := f.fill(); err != nil {
			return f.flushRest(err)
		}
	}
}

// flushRest returns what is left in the buffer as a last message when the
// stream ended, and err after it.
func (f *framer) flushRest(err error) ([]byte, bool, error) {
	data := f.buf[f.start:f.end]
	f.start = f.end
	if len(data) == 0 || err != io.EOF {
		return nil, false, err
	}
	if len(data) > f.max {
		return data[:f.max], true, nil
	}
	// Returned now; the next call finds the buffer empty and reads EOF
	// again.
	return trimCR(data), false, nil
}

func trimCR(b []byte) []byte {
	if len(b) > 0 && b[len(b)-1] == '\r' {
		return b[:len(b)-1]
	}
	return b
}

const (
	headerOK = iota
	headerIncomplete
	headerNot
)

// octetHeader parses "LEN SP" at the start of b (b[0] is 1–9).
func octetHeader(b []byte) (n, hl, state int) {
	for i, c := range b {
		switch {
		case c >= '0' && c <= '9':
			if i >= 9 {
				return 0, 0, headerNot
			}
			n = n*10 + int(c-'0')
		case c == ' ':
			return n, i + 1, headerOK
		default:
			return 0, 0, headerNot
		}
	}
	return 0, 0, headerIncomplete
}

// fill reads more data, compacting or growing the buffer first. It returns
// io.EOF or the read error when nothing more can come.
func (f *framer) fill() error {
	if f.start == f.end {
		f.start, f.end = 0, 0
	}
	switch {
	case f.busy && len(f.buf) < readBufMax:
		// The last read filled the buffer: the sender is ahead. Reading
		// more at a time makes fewer reads, and larger batches, since a
		// connection's batch goes on before each read.
		f.resize(min(2*len(f.buf), readBufMax))
	case f.end < len(f.buf):
	case f.start > 0:
		f.end = copy(f.buf, f.buf[f.start:f.end])
		f.start = 0
	default:
		n := min(2*len(f.buf), f.max+32)
		if n <= len(f.buf) {
			// Cannot happen: a full buffer always holds a frame (next
			// cuts lines at max and octet frames need at most max+11
			// bytes).
			n = len(f.buf) + 1024
		}
		f.resize(n)
	}
	if f.beforeRead != nil {
		f.beforeRead()
	}
	free := len(f.buf) - f.end
	for {
		n, err := f.r.Read(f.buf[f.end:])
		f.end += n
		if n > 0 {
			f.busy = n == free
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// resize moves the unread data to the start of a new buffer of n bytes.
func (f *framer) resize(n int) {
	nb := make([]byte, n)
	f.end = copy(nb, f.buf[f.start:f.end])
	f.start = 0
	f.buf = nb
}
