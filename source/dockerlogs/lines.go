package dockerlogs

import (
	"hash/maphash"

	"github.com/ferrydev/ferry/source"
)

var tailSeed = maphash.MakeSeed()

type lineKind int

const (
	lineNone      lineKind = iota // no complete line yet
	lineOK                        // a complete line
	lineTruncated                 // a complete line, cut to the maximum size
	lineDropped                   // a line over the maximum size, dropped by policy
)

// assembler joins the partial messages of each stream into lines of at
// most max bytes.
type assembler struct {
	max    int
	policy source.LongLinePolicy
	tty    bool
	parts  [2]partial
	end    int64 // timestamp of the last part of the line add returned
}

type partial struct {
	buf    []byte
	ts     int64
	last   int64
	done   int64 // timestamp of the last complete line
	replay int64 // while not 0, messages stamped up to this are resent
	// multi tells that the last complete line came in parts, and tail is
	// the hash of its last part; suspect, that the line being assembled
	// is stamped like it, and may be its tail sent again.
	multi, suspect bool
	tail           uint64
	active         bool
	over           bool
}

func (a *assembler) reset(tty bool) {
	a.tty = tty
	for i := range a.parts {
		a.parts[i].active, a.parts[i].done, a.parts[i].replay, a.parts[i].multi = false, 0, 0, false
		a.parts[i].buf = a.parts[i].buf[:0]
	}
}

// add takes the next message of a stream. When it completes a line, add
// returns the line's timestamp (that of its first part) and content, which
// is valid until the next call.
func (a *assembler) add(m *message) (int64, []byte, lineKind) {
	p := &a.parts[m.stream&1]
	a.end = m.ts
	// When a json-file log rotates while it is followed, the engine (seen
	// with Docker 20.10) may go back and send again messages it already
	// sent. The daemon stamps the lines of one stream in order, and every
	// part of a line with the time of its first part, so a message stamped
	// before the line being assembled, or before the last complete line,
	// shows such a replay: the line it cut into is dropped (the engine
	// sends it again) and every message stamped up to the last complete
	// line is skipped. A replay may also start within the last complete
	// line, stamped like it: parts stamped so that end like that line
	// did are its tail again, and are dropped too. (Lines stamped alike on
	// a coarse clock are kept unless they also end alike.)
	if m.ts != 0 {
		switch {
		case p.replay != 0 && m.ts <= p.replay:
			return 0, nil, lineNone
		case p.active && m.ts < p.ts || !p.active && m.ts < p.done:
			p.active, p.buf, p.replay = false, p.buf[:0], p.done
			return 0, nil, lineNone
		}
		p.replay = 0
	}
	if !p.active && !m.partial {
		p.done, p.multi = max(p.done, m.ts), false
		line := a.trimCR(m.content)
		if len(line) > a.max {
			if a.policy == source.DropLongLines {
				return m.ts, nil, lineDropped
			}
			return m.ts, line[:a.max], lineTruncated
		}
		return m.ts, line, lineOK
	}
	if !p.active {
		p.active, p.ts, p.last, p.over, p.buf = true, m.ts, m.ts, false, p.buf[:0]
		p.suspect = p.multi && m.ts != 0 && m.ts == p.done
	}
	if m.ts != 0 {
		p.last = m.ts
	}
	a.end = p.last
	if room := a.max + 1 - len(p.buf); len(m.content) > room {
		// Keep one byte over the maximum to tell a line of exactly max
		// bytes plus a carriage return from a longer one.
		p.buf = append(p.buf, m.content[:max(room, 0)]...)
		p.over = true
	} else {
		p.buf = append(p.buf, m.content...)
	}
	if m.partial {
		return 0, nil, lineNone
	}
	p.active = false
	h := maphash.Bytes(tailSeed, m.content)
	if p.suspect && h == p.tail {
		return 0, nil, lineNone
	}
	p.done, p.multi, p.tail = max(p.done, p.last), true, h
	line := a.trimCR(p.buf)
	if p.over || len(line) > a.max {
		if a.policy == source.DropLongLines {
			return p.ts, nil, lineDropped
		}
		return p.ts, line[:min(len(line), a.max)], lineTruncated
	}
	return p.ts, line, lineOK
}

// flush completes the lines left unfinished at the end of a stream.
func (a *assembler) flush(emit func(stream int, ts int64, line []byte, kind lineKind)) {
	for i := range a.parts {
		p := &a.parts[i]
		if !p.active {
			continue
		}
		ts, line, kind := a.add(&message{stream: i})
		emit(i, ts, line, kind)
	}
}

// trimCR removes the carriage return a terminal puts before each newline.
func (a *assembler) trimCR(b []byte) []byte {
	if a.tty && len(b) > 0 && b[len(b)-1] == '\r' {
		return b[:len(b)-1]
	}
	return b
}
