package dockerlogs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/ferrydev/ferry/internal/rfc3339"
)

// Stream numbers of the multiplexed log stream, and the indexes of the
// per-stream state of a reader.
const (
	streamStdout = 0
	streamStderr = 1
)

// dockerPartialSize is the size at which the daemon splits a log line into
// partial messages (its copier's buffer size).
const dockerPartialSize = 16 * 1024

// ErrInvalidHeader is the error a container's reader stops with when a frame
// of the engine's multiplexed log stream has a stream byte that is not stdin,
// stdout, stderr or a system error. The source shows it as its health's
// error (degraded) and reads the log again from the last settled position.
var ErrInvalidHeader = errors.New("dockerlogs: invalid multiplexed stream header")

// message is one log message as the daemon sent it: a line, or a part of a
// line when partial is set. content aliases the decoder's buffer and is valid
// until the next call.
type message struct {
	stream  int
	ts      int64 // Unix nanoseconds; 0 when the message had no timestamp
	content []byte
	partial bool
}

// decoder reads the log stream of one container, multiplexed (8-byte frame
// headers) or raw (TTY), and splits it into messages, parsing the timestamp
// prefix of each. It does not allocate once its buffer is grown.
//
// Its buffer starts at decoderStartSize and doubles, up to max, only when
// a frame or line does not fit: every followed container holds a decoder,
// and most log short lines.
type decoder struct {
	r   io.Reader
	tty bool
	buf []byte
	max int // the size buf may grow to
	rd  int // start of unread data in buf
	wr  int // end of data in buf
	err error
	m   message // the message decoded by next

	// multiplexed: the frame being read
	left    int // payload bytes of the frame not yet consumed
	stream  int
	atStart bool // the next byte starts a message (a timestamp prefix)
	ts      int64

	clock rfc3339.Clock // the timestamps of the messages
}

// decoderStartSize is the size a decoder's buffer starts at.
const decoderStartSize = 4 << 10

// newDecoder returns a decoder whose buffer may grow to maxSize, at least
// twice the daemon's partial size (so that a part and the timestamp of the
// next always fit).
func newDecoder(r io.Reader, tty bool, maxSize int) *decoder {
	maxSize = max(maxSize, 2*dockerPartialSize)
	return &decoder{r: r, tty: tty, buf: make([]byte, min(decoderStartSize, maxSize)), max: maxSize, atStart: true}
}

// full reports whether the buffer holds unread data only and cannot grow:
// nothing more can be read before some is consumed.
func (d *decoder) full() bool {
	return d.rd == 0 && d.wr == len(d.buf) && len(d.buf) >= d.max
}

// reset starts d on another stream; a buffer that grew for the last one
// starts small again.
func (d *decoder) reset(r io.Reader, tty bool) {
	if len(d.buf) > decoderStartSize {
		d.buf = make([]byte, decoderStartSize)
	}
	d.r, d.tty, d.rd, d.wr, d.err, d.left, d.atStart, d.ts = r, tty, 0, 0, nil, 0, true, 0
}

// fill reads more data, first moving unread data to the front when the
// buffer's end is reached. It returns the error of the read, if any, once no
// data came with it.
func (d *decoder) fill() error {
	if d.err != nil {
		return d.err
	}
	if d.rd > 0 && d.wr == len(d.buf) || d.rd == d.wr {
		n := copy(d.buf, d.buf[d.rd:d.wr])
		d.rd, d.wr = 0, n
	}
	if d.wr == len(d.buf) {
		if len(d.buf) >= d.max {
			return nil // full; the caller consumes first
		}
		buf := make([]byte, min(2*len(d.buf), d.max))
		copy(buf, d.buf[:d.wr])
		d.buf = buf
	}
	for i := 0; i < 100; i++ {
		n, err := d.r.Read(d.buf[d.wr:])
		d.wr += n
		if err != nil {
			d.err = err
			if n > 0 {
				return nil
			}
			return err
		}
		if n > 0 {
			return nil
		}
	}
	d.err = io.ErrNoProgress
	return d.err
}

// next decodes the next message. At the end of the stream it returns io.EOF;
// a stream that ends inside a frame header or payload gives
// io.ErrUnexpectedEOF, and the incomplete frame is not delivered.
//
// The message is left in d.m, valid until the next call: returning it
// would copy it twice per line, a third of the decoder's time.
func (d *decoder) next() error {
	if d.tty {
		return d.nextRaw()
	}
	return d.nextMux()
}

func (d *decoder) nextMux() error {
	for d.left == 0 {
		for d.wr-d.rd < 8 {
			if err := d.fill(); err != nil {
				if err == io.EOF && d.wr > d.rd {
					err = io.ErrUnexpectedEOF
				}
				return err
			}
		}
		h := d.buf[d.rd : d.rd+8]
		size := int(binary.BigEndian.Uint32(h[4:8]))
		switch h[0] {
		case 0, 1:
			d.stream = streamStdout
		case 2:
			d.stream = streamStderr
		case 3:
			d.rd += 8
			return d.systemError(size)
		default:
			return ErrInvalidHeader
		}
		d.rd += 8
		d.left = size
		d.atStart = true
	}
	// Have as much of the frame as fits.
	for d.wr-d.rd < d.left && !d.full() {
		if err := d.fill(); err != nil {
			// A cut frame is not delivered: its message may be incomplete,
			// and the reader will ask for it again.
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	avail := min(d.wr-d.rd, d.left)
	chunk := d.buf[d.rd : d.rd+avail]
	m := &d.m
	m.stream, m.ts, m.partial = d.stream, d.ts, false
	off := 0
	if d.atStart {
		ts, rest := d.parseTS(chunk)
		off = len(chunk) - len(rest)
		m.ts, d.ts = ts, ts
	}
	body := chunk[off:]
	if i := bytes.IndexByte(body, '\n'); i >= 0 {
		m.content = body[:i]
		used := off + i + 1
		d.rd += used
		d.left -= used
		d.atStart = true
		return nil
	}
	// A frame that ends without a newline is a partial message: the next
	// frame starts with its own timestamp. A frame cut by the buffer goes
	// on without one.
	m.content = body
	m.partial = true
	d.rd += avail
	d.left -= avail
	d.atStart = d.left == 0
	return nil
}

func (d *decoder) systemError(size int) error {
	n := min(size, 4096)
	for d.wr-d.rd < n {
		if err := d.fill(); err != nil {
			return fmt.Errorf("dockerlogs: daemon error frame: %w", err)
		}
		if d.full() {
			n = min(n, d.wr-d.rd)
		}
	}
	msg := string(d.buf[d.rd : d.rd+n])
	d.rd += n
	return fmt.Errorf("dockerlogs: daemon error: %s", msg)
}

// nextRaw splits a TTY stream: "TS content\n", where a line longer than
// the daemon's partial size comes as parts of exactly that size, each with a
// timestamp and without a newline.
func (d *decoder) nextRaw() error {
	for {
		avail := d.buf[d.rd:d.wr]
		if len(avail) > 0 {
			var ts int64
			content := avail
			tsLen := 0
			if d.atStart {
				// The prefix must be complete to parse it.
				sp := bytes.IndexByte(avail[:min(len(avail), maxTSLen+1)], ' ')
				if sp < 0 && len(avail) <= maxTSLen && d.err == nil {
					if err := d.fill(); err != nil && d.wr == d.rd {
						return err
					}
					continue
				}
				ts, content = d.parseTS(avail)
				tsLen = len(avail) - len(content)
			} else {
				ts = d.ts
			}
			limit := min(len(content), dockerPartialSize+1)
			if i := bytes.IndexByte(content[:limit], '\n'); i >= 0 {
				d.rd += tsLen + i + 1
				d.atStart, d.ts = true, ts
				d.m = message{stream: streamStdout, ts: ts, content: content[:i]}
				return nil
			}
			if len(content) >= dockerPartialSize {
				// A part. The next part starts with a timestamp, unless this
				// stream does not follow the daemon's rules: look at enough
				// of what follows to tell.
				c := content[:dockerPartialSize]
				rest := content[dockerPartialSize:]
				if len(rest) <= maxTSLen && d.err == nil && !d.full() {
					d.fill() // an error is kept in d.err and ends this
					continue
				}
				d.rd += tsLen + dockerPartialSize
				d.ts = ts
				d.atStart = len(rest) == 0 || d.looksLikeTS(rest)
				d.m = message{stream: streamStdout, ts: ts, content: c, partial: true}
				return nil
			}
			if d.full() {
				// Cannot happen with the buffer at least twice the part size,
				// but never spin: deliver what there is.
				d.rd += tsLen + len(content)
				d.atStart, d.ts = false, ts
				d.m = message{stream: streamStdout, ts: ts, content: content, partial: true}
				return nil
			}
		}
		if err := d.fill(); err != nil {
			if err == io.EOF && d.wr > d.rd {
				// The stream ended within a line: deliver it as complete.
				avail := d.buf[d.rd:d.wr]
				ts, content := d.ts, avail
				if d.atStart {
					ts, content = d.parseTS(avail)
				}
				d.rd = d.wr
				d.atStart = true
				d.m = message{stream: streamStdout, ts: ts, content: content}
				return nil
			}
			return err
		}
	}
}

// maxTSLen bounds the timestamp prefix: RFC 3339 with nanoseconds and a
// numeric zone is 35 bytes. daemonTSLen is the length of the daemon's own,
// "2006-01-02T15:04:05.000000000Z".
const (
	maxTSLen    = 40
	daemonTSLen = 30
)

// parseTS splits the timestamp prefix off b. Without one, it returns 0 and
// b unchanged.
func (d *decoder) parseTS(b []byte) (int64, []byte) {
	if len(b) > daemonTSLen && b[daemonTSLen] == ' ' { // the daemon's, most likely
		if ts, ok := d.timestamp(b[:daemonTSLen]); ok {
			return ts, b[daemonTSLen+1:]
		}
	}
	sp := bytes.IndexByte(b[:min(len(b), maxTSLen+1)], ' ')
	if sp < 0 {
		return 0, b
	}
	ts, ok := d.timestamp(b[:sp])
	if !ok {
		return 0, b
	}
	return ts, b[sp+1:]
}

// looksLikeTS reports whether b, the rest of a frame after a line ended,
// starts with a timestamp, that is, with the next message.
func (d *decoder) looksLikeTS(b []byte) bool {
	sp := bytes.IndexByte(b[:min(len(b), maxTSLen+1)], ' ')
	if sp < 0 {
		// Possibly cut by the buffer end: judge by the date part.
		return len(b) >= 11 && b[4] == '-' && b[7] == '-' && b[10] == 'T'
	}
	_, ok := d.timestamp(b[:sp])
	return ok
}

// timestamp parses b, an RFC 3339 timestamp as the daemon writes them
// ("2006-01-02T15:04:05.000000000Z") or any other, into Unix nanoseconds.
// What does not start like a date is refused without time.Parse, whose
// errors allocate.
func (d *decoder) timestamp(b []byte) (int64, bool) {
	if len(b) < 20 || b[4] != '-' {
		return 0, false
	}
	t, err := d.clock.ParseBytes(b)
	if err != nil {
		return 0, false
	}
	return t.UnixNano(), true
}
