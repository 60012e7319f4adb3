package dockerlogs

import (
	"strconv"
	"strings"
)

// position is where a container's log was read or delivered up to, in a
// form that survives the daemon's stdout/stderr timestamp skew: reading
// again with since=Since, the first Skip lines of the stream are the ones
// already read. (The daemon timestamps the two streams separately, so in
// its file a line may follow a later-stamped one; "skip up to the last
// timestamp" would lose it.)
//
// Newest, the newest timestamp read, guards the skipping: a line stamped
// after it is new even within the first Skip lines (which happens only if
// the daemon rotated lines away meanwhile).
type position struct {
	Since  int64 // Unix nanoseconds; 0 means from the start of the log
	Skip   int
	Newest int64
}

// String is the form stored in a positions file: "since:skip:newest".
func (p position) String() string {
	return strconv.FormatInt(p.Since, 10) + ":" + strconv.Itoa(p.Skip) + ":" + strconv.FormatInt(p.Newest, 10)
}

func parsePosition(s string) (position, bool) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return position{}, false
	}
	var p position
	var err1, err2, err3 error
	p.Since, err1 = strconv.ParseInt(parts[0], 10, 64)
	p.Skip, err2 = strconv.Atoi(parts[1])
	p.Newest, err3 = strconv.ParseInt(parts[2], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || p.Since < 0 || p.Skip < 0 {
		return position{}, false
	}
	return p, true
}

// historySize is how many recent lines a reader remembers to compute its
// position, and skewWindow how far back from the newest timestamp the
// position's Since lies. At high rates the ring bounds the window instead.
const (
	historySize = 1024
	skewWindow  = int64(1e9)
)

// history records the lines of one reading of a container's log, from the
// position it started at, and computes the position after them.
//
// Only lines stamped within skewWindow of the newest can count in a
// position, so older ones leave the ring as newer ones come: it holds about
// a second of lines, and grows (up to historySize) only for a container
// that logs more than that. A quiet container's history is a few hundred
// bytes instead of the 9 KB of a full ring.
type history struct {
	start   position
	ring    []histLine // a ring of n lines from head, oldest first
	head, n int
	newest  int64 // newest timestamp recorded; valid when any is
	any     bool
	dropped int64 // newest timestamp of lines that left a full ring
}

type histLine struct {
	ts     int64 // timestamp of the line's last part
	stream uint8
}

// historyKeep is the ring capacity a history keeps from one reading to the
// next; a larger one, grown by a burst, is let go.
const historyKeep = 64

func (h *history) reset(start position) {
	h.start, h.head, h.n, h.any, h.dropped = start, 0, 0, false, -1
	if cap(h.ring) > historyKeep {
		h.ring = nil
	}
}

// record notes a line of a stream whose last part has timestamp ts.
func (h *history) record(ts int64, stream int) {
	if !h.any || ts > h.newest {
		h.newest, h.any = ts, true
	}
	// Lines too old to count in any position from now on.
	for h.n > 0 && h.ring[h.head].ts < h.newest-skewWindow {
		h.pop()
	}
	if h.n == len(h.ring) {
		if len(h.ring) < historySize {
			h.grow()
		} else {
			h.dropped = max(h.dropped, h.ring[h.head].ts)
			h.pop()
		}
	}
	h.ring[(h.head+h.n)%len(h.ring)] = histLine{ts, uint8(stream)}
	h.n++
}

func (h *history) pop() {
	h.head = (h.head + 1) % len(h.ring)
	h.n--
}

// grow doubles the ring, its lines in order from the start.
func (h *history) grow() {
	ring := make([]histLine, min(max(2*len(h.ring), 16), historySize))
	for i := range h.n {
		ring[i] = h.ring[(h.head+i)%len(h.ring)]
	}
	h.ring, h.head = ring, 0
}

// lines calls f with every line in the ring.
func (h *history) lines(f func(histLine)) {
	for i := range h.n {
		f(h.ring[(h.head+i)%len(h.ring)])
	}
}

// position returns the position after every recorded line.
func (h *history) position() position {
	if !h.any {
		return h.start
	}
	// Since: a window before the newest line, not before where this
	// reading started (lines before that were not seen), and not before a
	// line that left the ring (those could not be counted).
	since := max(h.newest-skewWindow, h.start.Since, h.dropped+1)
	skip := 0
	h.lines(func(l histLine) {
		if l.ts >= since {
			skip++
		}
	})
	return position{Since: since, Skip: skip, Newest: max(h.newest, h.start.Newest)}
}

// lineID tells a line of a reading apart from the others as well as the
// daemon's frames allow: the stream and the timestamp of its last part.
type lineID struct {
	ts     int64
	stream int
}

// seenFrom returns how many lines of the reading there are of each lineID
// stamped at or after since, which must be the Since of position() (the
// ring holds all such lines, since position() puts Since after any line
// that left it), plus those of left, the multiset the reading started with
// less the lines it skipped, stamped at or after since: they were
// delivered before and may still come. A reading that recorded nothing
// ends at its start, so left is returned as it is, nil if the reading
// started from a count.
func (h *history) seenFrom(since int64, left map[lineID]int) map[lineID]int {
	if !h.any {
		return left
	}
	m := make(map[lineID]int, h.n)
	h.lines(func(l histLine) {
		if l.ts >= since {
			m[lineID{l.ts, int(l.stream)}]++
		}
	})
	for id, k := range left {
		if id.ts >= since && k > 0 {
			m[id] += k
		}
	}
	return m
}
