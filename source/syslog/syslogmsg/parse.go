package syslogmsg

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/ferrydev/ferry/internal/civil"
	"github.com/ferrydev/ferry/internal/swar"
)

// Format is the syslog format a message was recognised as.
type Format uint8

const (
	// Unparsed: the message was not recognised (see Message.Err).
	Unparsed Format = iota
	// RFC5424 is the IETF syslog protocol: "<PRI>1 TIMESTAMP HOST APP
	// PROCID MSGID SD MSG".
	RFC5424
	// RFC3164 is BSD syslog and its vendor variants: "<PRI>Mmm dd
	// hh:mm:ss HOST TAG[PID]: MSG".
	RFC3164
)

func (f Format) String() string {
	switch f {
	case RFC5424:
		return "rfc5424"
	case RFC3164:
		return "rfc3164"
	}
	return "unparsed"
}

// Errors of Parse. They are constants, so that a malformed message costs
// no allocation; the text is what the __syslog_parse_error label carries.
var (
	ErrEmpty        = errors.New("empty message")
	ErrPriority     = errors.New("invalid PRI")
	ErrNoPriority   = errors.New("no PRI and no timestamp")
	ErrHeader       = errors.New("invalid RFC 5424 header")
	ErrTimestamp    = errors.New("invalid RFC 5424 timestamp")
	ErrFieldTooLong = errors.New("RFC 5424 header field too long")
	ErrSD           = errors.New("invalid RFC 5424 structured data")
)

// Message is one parsed syslog message. Its byte slices point into the
// buffer given to Parse and are valid as long as that buffer is; absent
// fields (RFC 5424's "-", or a part RFC 3164 did not have) are nil.
type Message struct {
	Format Format
	// Priority is facility*8 + severity, 0 to 191, or -1 when the message
	// had no PRI (a vendor variant of RFC 3164).
	Priority int
	// Timestamp is the time the message carries; zero when it has none.
	Timestamp time.Time
	Hostname  []byte
	AppName   []byte
	ProcID    []byte
	MsgID     []byte
	// StructuredData is the raw SD part of an RFC 5424 message, such as
	// `[exampleSDID@32473 iut="3"]`; see EachSDParam.
	StructuredData []byte
	// Msg is the free-form message, without a leading UTF-8 byte order
	// mark.
	Msg []byte
}

// Facility returns the facility code (0–23), or -1 without a PRI.
func (m *Message) Facility() int {
	if m.Priority < 0 {
		return -1
	}
	return m.Priority / 8
}

// Severity returns the severity code (0–7), or -1 without a PRI.
func (m *Message) Severity() int {
	if m.Priority < 0 {
		return -1
	}
	return m.Priority % 8
}

// Parser parses syslog messages. Its zero value is ready to use: RFC 3164
// timestamps, which carry neither year nor zone, are taken in UTC and in
// the year that puts them closest to now.
type Parser struct {
	// Location of RFC 3164 timestamps without a zone (default UTC).
	Location *time.Location
	// Now returns the current time, for the year of RFC 3164 timestamps
	// (default time.Now, read at most once a second of parsing).
	Now func() time.Time

	// The reference time for the year of RFC 3164 timestamps, refreshed
	// every nowEvery messages: reading the clock per message would cost
	// more than parsing it.
	now     time.Time
	nowLeft int

	// Caches, valid for as long as consecutive messages share what they
	// key on (they nearly always do):
	//   - the first 16 bytes of an RFC 3339 timestamp ("YYYY-MM-DDTHH:MM")
	//     and the Unix time of that minute;
	//   - the structure of the last RFC 5424 structured data (sdCache);
	//   - a civil date and its days since 1970-01-01;
	//   - the reference time and location of the last RFC 3164 year
	//     guess, with the year and the latest time a message may have;
	//   - the "Mmm dd hh:mm:" of an RFC 3164 timestamp and its fields.
	tsKey0, tsKey1 uint64
	sd             sdCache
	tsBase         int64
	dayKey         int
	days           int64
	yearRef        time.Time
	yearLoc        *time.Location
	year           int
	yearLimit      time.Time
	limitSec       int64 // yearLimit in Unix seconds
	limitNsec      int   // and nanoseconds
	// The first 13 bytes of an RFC 3164 timestamp ("Mmm dd hh:mm:"), as
	// two overlapping words, and its fields; and when bsdBased, the Unix
	// time of that minute in UTC in the guessed year bsdYear.
	bsdKey0, bsdKey1                     uint64
	bsdMonth, bsdDay, bsdHour, bsdMinute int
	bsdBased                             bool
	bsdYear                              int
	bsdBase                              int64
}

const nowEvery = 1024

// reference returns the reference time, and whether it may differ from
// the one it returned last.
func (p *Parser) reference() (time.Time, bool) {
	if p.Now != nil {
		return p.Now(), true
	}
	changed := false
	if p.nowLeft <= 0 {
		p.now, p.nowLeft, changed = time.Now(), nowEvery, true
	}
	p.nowLeft--
	return p.now, changed
}

// Parse parses one message, without its framing, into m, recognising RFC
// 5424 ("<PRI>1 ...") and otherwise RFC 3164 with the common variants:
// no hostname, an RFC 3339 timestamp instead of the BSD one, Cisco IOS's
// sequence numbers, "*"/"." time-sync markers, milliseconds, year and zone,
// and "%FACILITY-SEVERITY-MNEMONIC:" tags, and a missing PRI when a
// timestamp follows. It does not allocate. On error m holds what was
// parsed so far with Format Unparsed.
func (p *Parser) Parse(b []byte, m *Message) error {
	// The other fields are cleared below, except for RFC 5424, which
	// sets them all.
	m.Format, m.Priority = Unparsed, -1
	// Trailing newlines, carriage returns and NULs, all at most '\r'.
	for len(b) > 0 {
		if c := b[len(b)-1]; c > '\r' || c != '\n' && c != '\r' && c != 0 {
			break
		}
		b = b[:len(b)-1]
	}
	if len(b) == 0 {
		m.clear()
		return ErrEmpty
	}
	if b[0] != '<' {
		m.clear()
		return p.parse3164(b, m)
	}
	// PRI: 1 to 3 digits, each a byte below 10 once '0' is taken off,
	// then '>'.
	var v uint
	i := 1
	if len(b) >= 5 {
		d1, d2, d3 := uint(b[1])-'0', uint(b[2])-'0', uint(b[3])-'0'
		if d1 > 9 {
			m.clear()
			return ErrPriority
		}
		v, i = d1, 2
		if d2 <= 9 {
			v, i = v*10+d2, 3
			if d3 <= 9 {
				v, i = v*10+d3, 4
			}
		}
	} else {
		for ; i < len(b) && i < 4 && b[i]-'0' <= 9; i++ {
			v = v*10 + uint(b[i]-'0')
		}
		if i == 1 {
			m.clear()
			return ErrPriority
		}
	}
	if i >= len(b) || b[i] != '>' || v > 191 {
		m.clear()
		return ErrPriority
	}
	// RFC 5424 forbids leading zeros, but RFC 3164 senders emit "<00>"
	// rarely; they are accepted.
	m.Priority = int(v)
	if rest := b[i+1:]; len(rest) >= 2 && rest[0] == '1' && rest[1] == ' ' {
		return p.parse5424(rest[2:], m)
	}
	m.clear()
	return p.parse3164(b[i+1:], m)
}

// clear sets the timestamp and the byte slices of m to their zero values:
// field by field, which is cheaper than copying a whole zero Message.
func (m *Message) clear() {
	m.Timestamp = time.Time{}
	m.Hostname, m.AppName, m.ProcID, m.MsgID, m.StructuredData, m.Msg = nil, nil, nil, nil, nil, nil
}

// field cuts the next space-terminated header field off b.
func field(b []byte) (f, rest []byte, ok bool) {
	if i := indexByte(b, ' '); i >= 0 {
		return b[:i], b[i+1:], true
	}
	return b, nil, false
}

// class[c] holds the character classes of byte c, for table lookups in
// place of comparisons.
var class [256]uint8

const (
	clPrint  = 1 << iota // PRINTUSASCII, 33–126
	clSDName             // PRINTUSASCII but '=', ']' and '"' (RFC 5424 SD-NAME)
	clDigit              // '0'–'9'
	clTagEnd             // ':', '[' or ' ': where an RFC 3164 TAG ends
)

func init() {
	for c := 33; c <= 126; c++ {
		class[c] |= clPrint
		if c != '=' && c != ']' && c != '"' {
			class[c] |= clSDName
		}
	}
	for c := '0'; c <= '9'; c++ {
		class[c] |= clDigit
	}
	class[':'] |= clTagEnd
	class['['] |= clTagEnd
	class[' '] |= clTagEnd
}

// sdNameLen returns the length of the run of SD-NAME characters at the
// start of b. Names are short: a plain table lookup a byte measured
// faster than unrolled lookups or eight-byte tricks.
func sdNameLen(b []byte) int {
	i := 0
	for i < len(b) && class[b[i]]&clSDName != 0 {
		i++
	}
	return i
}

// indexByte returns the index of the first c in b, or -1, eight bytes at
// a time: for the short runs of a syslog header (SD values, host names)
// this beats the call to bytes.IndexByte.
func indexByte(b []byte, c byte) int {
	i := 0
	for ; i+8 <= len(b); i += 8 {
		if m := swar.HasByte(binary.LittleEndian.Uint64(b[i:i+8]), c); m != 0 {
			return i + swar.First(m)
		}
	}
	for ; i < len(b); i++ {
		if b[i] == c {
			return i
		}
	}
	return -1
}

// headerEnds finds the ends (the spaces) of the five space-terminated
// PRINTUSASCII fields that start b: TIMESTAMP HOSTNAME APP-NAME PROCID
// MSGID of RFC 5424. It returns how many it found: fewer than five when
// field k is empty, holds another byte, or has no space after it. It
// scans eight bytes at a time: a byte swar.NotPrint flags other than a space
// is checked in the table, since the flag may be wrong above a true one.
func headerEnds(b []byte, ends *[5]int) int {
	return headerEndsFrom(b, 0, 0, ends)
}

// headerEndsFrom is headerEnds with the first k ends already found, the
// next field starting at b[i].
func headerEndsFrom(b []byte, i, k int, ends *[5]int) int {
	start := i
	for ; i+8 <= len(b); i += 8 {
		s := b[i : i+8]
		for m := swar.NotPrint(binary.LittleEndian.Uint64(s)); m != 0; m &= m - 1 {
			t := swar.First(m)
			j := i + t
			if c := s[t]; c != ' ' {
				if class[c]&clPrint != 0 {
					continue
				}
				return k
			}
			if j == start {
				return k
			}
			ends[k], k, start = j, k+1, j+1
			if k == len(ends) {
				return k
			}
		}
	}
	for ; i < len(b); i++ {
		c := b[i]
		if class[c]&clPrint != 0 {
			continue
		}
		if c != ' ' || i == start {
			return k
		}
		ends[k], k, start = i, k+1, i+1
		if k == len(ends) {
			return k
		}
	}
	return k
}

// nilValue returns b[i:j], or nil for RFC 5424's NILVALUE "-".
func nilValue(b []byte, i, j int) []byte {
	if j == i+1 && b[i] == '-' {
		return nil
	}
	return b[i:j:j]
}

// parse5424 parses what follows "<PRI>1 ", and sets every field of m
// but Format and Priority, on error too. It works on offsets into b and
// cuts the fields out only once the header is known to be valid.
func (p *Parser) parse5424(b []byte, m *Message) error {
	var ends [5]int
	var k int
	if t, n, ok := p.parseRFC3339Prefix(b, true); ok && n < len(b) && b[n] == ' ' {
		// The common case, with one scan less: a valid timestamp is all
		// PRINTUSASCII, so this space ends the first field.
		m.Timestamp = t
		ends[0] = n
		k = headerEndsFrom(b, n+1, 1, &ends)
	} else {
		m.clear()
		k = headerEnds(b, &ends)
		if k == 0 {
			return ErrHeader
		}
		if tsEnd := ends[0]; !(tsEnd == 1 && b[0] == '-') {
			t, ok := p.parseRFC3339(b[:tsEnd])
			if !ok {
				return ErrTimestamp
			}
			m.Timestamp = t
		}
	}
	m.StructuredData, m.Msg = nil, nil
	// "... MSGID SD": without a space after MSGID there is no SD and the
	// message is malformed.
	if k < len(ends) {
		m.Hostname, m.AppName, m.ProcID, m.MsgID = nil, nil, nil, nil
		return ErrHeader
	}
	h0, h1 := ends[0]+1, ends[1]
	a0, a1 := h1+1, ends[2]
	p0, p1 := a1+1, ends[3]
	m0, m1 := p1+1, ends[4]
	if h1-h0 > 255 || a1-a0 > 48 || p1-p0 > 128 || m1-m0 > 32 {
		m.Hostname, m.AppName, m.ProcID, m.MsgID = nil, nil, nil, nil
		return ErrFieldTooLong
	}
	m.Hostname, m.AppName, m.ProcID, m.MsgID = nilValue(b, h0, h1), nilValue(b, a0, a1), nilValue(b, p0, p1), nilValue(b, m0, m1)
	rest := b[m1+1:]
	switch {
	case len(rest) == 0:
		return ErrHeader
	case rest[0] == '-':
		rest = rest[1:]
	case rest[0] == '[':
		n, ok := p.sd.sdLen(rest)
		if !ok {
			return ErrSD
		}
		m.StructuredData, rest = rest[:n:n], rest[n:]
	default:
		return ErrSD
	}
	if len(rest) > 0 {
		if rest[0] != ' ' {
			return ErrSD
		}
		rest = rest[1:]
	}
	if len(rest) >= 3 && rest[0] == 0xEF && rest[1] == 0xBB && rest[2] == 0xBF {
		rest = rest[3:]
	}
	m.Msg = rest
	m.Format = RFC5424
	return nil
}

// sdSlots is how many structure segments of a message's structured
// data an sdCache keeps, and sdSegMax the most bytes it compares for one.
const (
	sdSlots  = 8
	sdSegMax = 32
)

// sdCache holds the structure of the structured data last parsed: the
// text around its PARAM-VALUEs, cut into segments that each run from the
// start of the SD, or the '"' closing a value, to the '"' opening the
// next value or the ']' ending the SD. The segments hold brackets,
// SD-IDs, PARAM-NAMEs and separators; those of
//
//	[exampleSDID@32473 iut="3" eventSource="Application"]
//
// are `[exampleSDID@32473 iut="`, ` eventSource="` and `]`. The SD-IDs
// and PARAM-NAMEs of a stream repeat from message to message while the
// values change: comparing a segment as four masked words costs much
// less than checking its bytes one by one. Every segment it holds parsed
// as valid where it stood, and parses the same wherever its bytes recur
// at the same position in an SD.
//
// Segment k is kept as its bytes w[k], zero-padded, the mask m[k] of
// those that count, its length n[k] (0 for none), and whether it ends
// the SD. The segment that ends the SD is kept with the space after it,
// which shows that the SD does not go on with '['.
type sdCache struct {
	w, m [sdSlots][4]uint64
	n    [sdSlots]uint8
	end  [sdSlots]bool
}

// sdLen returns the length of the SD-ELEMENTs at the start of b (which
// starts with '['), or false when they are malformed.
func (c *sdCache) sdLen(b []byte) (int, bool) {
	i := 0
	for k := range sdSlots {
		// Segment k, from the cache if its bytes are there.
		var n int
		var end bool
		if i+sdSegMax <= len(b) {
			// The last two words only for a segment (with its space)
			// longer than 16 bytes: their mask is zero otherwise.
			t, w, m := b[i:i+sdSegMax], &c.w[k], &c.m[k]
			x := (binary.LittleEndian.Uint64(t)^w[0])&m[0] | (binary.LittleEndian.Uint64(t[8:])^w[1])&m[1]
			if m[2] != 0 {
				x |= (binary.LittleEndian.Uint64(t[16:])^w[2])&m[2] | (binary.LittleEndian.Uint64(t[24:])^w[3])&m[3]
			}
			if x == 0 {
				n, end = int(c.n[k]), c.end[k]
			}
		}
		if n == 0 {
			var ok bool
			if n, end, ok = c.segment(b[i:], k); !ok {
				return 0, false
			}
		}
		i += n
		if end {
			return i, true
		}
		// The PARAM-VALUE (see sdValueEnd), mostly without a backslash.
		q := quoteIndex(b, i)
		if q < 0 {
			return 0, false
		}
		if i = q + 1; b[q-1] == '\\' {
			if i = sdValueEnd(b, q); i < 0 {
				return 0, false
			}
		}
	}
	// More segments than the cache holds: the rest without it.
	for {
		n, end, ok := sdSegment(b[i:], false)
		if !ok {
			return 0, false
		}
		i += n
		if end {
			return i, true
		}
		if i = sdValueEnd(b, i); i < 0 {
			return 0, false
		}
	}
}

// segment parses segment k at the start of b with sdSegment, and keeps
// it as segment k of the cache, or none when the segment, with the space
// after it if it ends the SD, is longer than sdSegMax, or when no space
// follows the end of the SD.
func (c *sdCache) segment(b []byte, k int) (n int, end, ok bool) {
	if n, end, ok = sdSegment(b, k == 0); !ok {
		return
	}
	l := n
	if end {
		l++ // with the space after it
	}
	if l > sdSegMax || end && (n >= len(b) || b[n] != ' ') {
		c.w[k], c.m[k], c.n[k] = [4]uint64{}, [4]uint64{}, 0
		return
	}
	var buf, mask [sdSegMax]byte
	copy(buf[:], b[:l])
	for j := range l {
		mask[j] = 0xff
	}
	for j := range c.w[k] {
		c.w[k][j] = binary.LittleEndian.Uint64(buf[8*j:])
		c.m[k][j] = binary.LittleEndian.Uint64(mask[8*j:])
	}
	c.n[k], c.end[k] = uint8(n), end
	return
}

// sdValueEnd returns the index after the '"' that ends the PARAM-VALUE
// starting at b[i], or -1: the first '"' not escaped, that is not after
// an odd run of backslashes.
func sdValueEnd(b []byte, i int) int {
	for {
		q := quoteIndex(b, i)
		if q < 0 {
			return -1
		}
		i = q + 1
		if b[q-1] != '\\' {
			return i
		}
		// The run of backslashes cannot reach back past the value's
		// opening '"'.
		bs := 1
		for b[q-1-bs] == '\\' {
			bs++
		}
		if bs%2 == 0 {
			return i
		}
	}
}

// quoteIndex returns the index of the first '"' at or after b[i], or -1,
// eight bytes at a time.
func quoteIndex(b []byte, i int) int {
	for ; i+8 <= len(b); i += 8 {
		if m := swar.HasByte(binary.LittleEndian.Uint64(b[i:i+8]), '"'); m != 0 {
			return i + swar.First(m)
		}
	}
	for ; i < len(b); i++ {
		if b[i] == '"' {
			return i
		}
	}
	return -1
}

// sdSegment parses the structure segment (see sdCache) at the start of b:
// the first of the SD when first, else what follows the '"' closing a
// value. It returns its length and whether it ends the SD.
func sdSegment(b []byte, first bool) (n int, end, ok bool) {
	i, open := 0, first // open: an SD-ELEMENT starts at b[i]
	for {
		if open {
			// '[' and the SD-ID.
			if i >= len(b) || b[i] != '[' {
				return 0, false, false
			}
			i++
			l := sdNameLen(b[i:])
			if l == 0 || l > 32 || i+l >= len(b) || b[i+l] != ' ' && b[i+l] != ']' {
				return 0, false, false
			}
			i += l
		}
		// After an SD-ID or a PARAM-VALUE: a parameter up to its value,
		// or the element's end.
		if i >= len(b) {
			return 0, false, false
		}
		switch b[i] {
		case ']':
			i++
			if i < len(b) && b[i] == '[' {
				open = true
				continue
			}
			return i, true, true
		case ' ':
			i++
			l := sdNameLen(b[i:])
			if l == 0 || l > 32 || i+l+1 >= len(b) || b[i+l] != '=' || b[i+l+1] != '"' {
				return 0, false, false
			}
			return i + l + 2, false, true
		}
		return 0, false, false
	}
}

// EachSDParam calls fn for every PARAM-NAME="PARAM-VALUE" of the
// structured data sd (as Message.StructuredData holds it). value is raw:
// the escapes \" \\ \] are still in it; see UnescapeSDValue. An SD-ELEMENT
// without parameters is reported once with nil name and value.
func EachSDParam(sd []byte, fn func(id, name, value []byte)) {
	i := 0
	for i < len(sd) && sd[i] == '[' {
		i++
		start := i
		for i < len(sd) && sd[i] != ' ' && sd[i] != ']' {
			i++
		}
		id := sd[start:i]
		params := 0
		for i < len(sd) && sd[i] == ' ' {
			i++
			start = i
			for i < len(sd) && sd[i] != '=' {
				i++
			}
			name := sd[start:i]
			i += 2 // ="
			start = i
			for i < len(sd) && sd[i] != '"' {
				if sd[i] == '\\' {
					i++
				}
				i++
			}
			if i > len(sd) {
				i = len(sd)
			}
			fn(id, name, sd[start:i])
			params++
			i++ // closing quote
		}
		if params == 0 {
			fn(id, nil, nil)
		}
		i++ // ]
	}
}

// UnescapeSDValue appends v to dst with the escapes \" \\ and \] of RFC
// 5424 section 6.3.3 resolved; other backslashes are kept.
func UnescapeSDValue(dst, v []byte) []byte {
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' && i+1 < len(v) && (v[i+1] == '"' || v[i+1] == '\\' || v[i+1] == ']') {
			i++
		}
		dst = append(dst, v[i])
	}
	return dst
}

// digits2 parses the two decimal digits at b[i:i+2] (which must exist).
func digits2(b []byte, i int) (int, bool) {
	d0, d1 := b[i]-'0', b[i+1]-'0'
	return int(d0)*10 + int(d1), d0 < 10 && d1 < 10
}

// digits4 parses the four decimal digits at b[i:i+4] (which must exist).
func digits4(b []byte, i int) (int, bool) {
	d0, d1, d2, d3 := b[i]-'0', b[i+1]-'0', b[i+2]-'0', b[i+3]-'0'
	return int(d0)*1000 + int(d1)*100 + int(d2)*10 + int(d3), d0 < 10 && d1 < 10 && d2 < 10 && d3 < 10
}

// parseRFC3339 parses an RFC 3339 timestamp as RFC 5424 restricts it
// (fractions up to 9 digits here, to accept nanosecond senders), with a
// zone of "Z" or ±hh:mm.
func (p *Parser) parseRFC3339(b []byte) (time.Time, bool) {
	t, n, ok := p.parseRFC3339Prefix(b, true)
	if !ok || n != len(b) {
		return time.Time{}, false
	}
	return t, true
}

// parseRFC3339Prefix parses an RFC 3339 timestamp at the start of b and
// returns its length. Without needZone a missing zone means UTC.
func (p *Parser) parseRFC3339Prefix(b []byte, needZone bool) (time.Time, int, bool) {
	if len(b) < 19 || b[16] != ':' {
		return time.Time{}, 0, false
	}
	// "YYYY-MM-DDTHH:MM" is most often that of the previous message.
	if k0, k1 := binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint64(b[8:]); k0 != p.tsKey0 || k1 != p.tsKey1 || k0 == 0 {
		if !p.setMinute(b, k0, k1) {
			return time.Time{}, 0, false
		}
	}
	sec, ok := digits2(b, 17)
	if !ok || sec > 60 {
		return time.Time{}, 0, false
	}
	i := 19
	nsec := 0
	if i < len(b) && b[i] == '.' {
		i++
		start := i
		// Up to seven digits at once, from a word that may reach past
		// len(b) (within cap(b): a timestamp is mostly a field cut off
		// its message) but counts none of the bytes there.
		if i+8 <= cap(b) {
			w := binary.LittleEndian.Uint64(b[i : i+8])
			if n := min(swar.DigitRun(w), len(b)-i); n < 8 {
				if n == 0 {
					return time.Time{}, 0, false
				}
				nsec = swar.Digits((w-0x30*swar.Lo8)<<(8*(8-n))) * pow10[9-n]
				i += n
				goto zone
			}
		}
		for i < len(b) && class[b[i]]&clDigit != 0 {
			nsec = nsec*10 + int(b[i]-'0')
			i++
		}
		if i == start || i-start > 9 {
			return time.Time{}, 0, false
		}
		nsec *= pow10[9-(i-start)]
	}
zone:
	offset := 0
	switch {
	case i < len(b) && (b[i] == 'Z' || b[i] == 'z'):
		i++
	case i < len(b) && (b[i] == '+' || b[i] == '-'):
		if len(b) < i+6 {
			return time.Time{}, 0, false
		}
		oh, ok1 := digits2(b, i+1)
		om, ok2 := digits2(b, i+4)
		if !ok1 || b[i+3] != ':' || !ok2 || oh > 23 || om > 59 {
			return time.Time{}, 0, false
		}
		offset = (oh*60 + om) * 60
		if b[i] == '-' {
			offset = -offset
		}
		i += 6
	default:
		if needZone {
			return time.Time{}, 0, false
		}
	}
	if sec == 60 {
		sec = 59 // a leap second
	}
	return time.Unix(p.tsBase+int64(sec-offset), int64(nsec)).UTC(), i, true
}

// setMinute parses the "YYYY-MM-DDTHH:MM" that starts b (at least 16
// bytes), whose two words are k0 and k1, into the minute the cache keys
// on them. It is apart from parseRFC3339Prefix so that the compiler
// loads the key there as two words, not byte by byte.
func (p *Parser) setMinute(b []byte, k0, k1 uint64) bool {
	if b[4] != '-' || b[7] != '-' || (b[10] != 'T' && b[10] != 't') || b[13] != ':' {
		return false
	}
	year, ok1 := digits4(b, 0)
	month, ok2 := digits2(b, 5)
	day, ok3 := digits2(b, 8)
	hour, ok4 := digits2(b, 11)
	minute, ok5 := digits2(b, 14)
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 {
		return false
	}
	p.tsKey0, p.tsKey1 = k0, k1
	p.tsBase = p.daysFromCivil(year, month, day)*86400 + int64(hour*3600+minute*60)
	return true
}

// pow10[n] is 10**n, to scale a fraction of n digits to nanoseconds.
var pow10 = [10]int{1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000}

// parseMonth parses a three-letter English month name, its first letter
// in either case and the others in either case too.
func parseMonth(b []byte) (int, bool) {
	if len(b) < 3 {
		return 0, false
	}
	switch uint32(b[0]&^0x20)<<16 | uint32(b[1]|0x20)<<8 | uint32(b[2]|0x20) {
	case 'J'<<16 | 'a'<<8 | 'n':
		return 1, true
	case 'F'<<16 | 'e'<<8 | 'b':
		return 2, true
	case 'M'<<16 | 'a'<<8 | 'r':
		return 3, true
	case 'A'<<16 | 'p'<<8 | 'r':
		return 4, true
	case 'M'<<16 | 'a'<<8 | 'y':
		return 5, true
	case 'J'<<16 | 'u'<<8 | 'n':
		return 6, true
	case 'J'<<16 | 'u'<<8 | 'l':
		return 7, true
	case 'A'<<16 | 'u'<<8 | 'g':
		return 8, true
	case 'S'<<16 | 'e'<<8 | 'p':
		return 9, true
	case 'O'<<16 | 'c'<<8 | 't':
		return 10, true
	case 'N'<<16 | 'o'<<8 | 'v':
		return 11, true
	case 'D'<<16 | 'e'<<8 | 'c':
		return 12, true
	}
	return 0, false
}

// parseBSDTime parses "Mmm dd hh:mm:ss" (day padded with a space or a
// zero, or not at all) with Cisco's optional ".mmm" fraction, optional
// year before or after the time, and optional zone abbreviation; it
// returns the time and the length parsed.
func (p *Parser) parseBSDTime(b []byte) (time.Time, int, bool) {
	var month, day, year, i int
	var hour, minute, sec int
	keyed := false // the fields are those of the key
	// "Mmm dd hh:mm:" is most often that of the previous message.
	if len(b) >= 15 && p.bsdKey0 != 0 && binary.LittleEndian.Uint64(b) == p.bsdKey0 && binary.LittleEndian.Uint64(b[5:]) == p.bsdKey1 {
		month, day, hour, minute, i, keyed = p.bsdMonth, p.bsdDay, p.bsdHour, p.bsdMinute, 7, true
		var ok bool
		if sec, ok = digits2(b, 13); !ok || sec > 60 {
			return time.Time{}, 0, false
		}
	} else {
		var ok bool
		month, ok = parseMonth(b)
		if !ok || len(b) < 4 || b[3] != ' ' {
			return time.Time{}, 0, false
		}
		i = 4
		if i < len(b) && b[i] == ' ' {
			i++
		}
		start := i
		for i < len(b) && class[b[i]]&clDigit != 0 && i-start < 2 {
			day = day*10 + int(b[i]-'0')
			i++
		}
		if i == start || day < 1 || day > 31 || i >= len(b) || b[i] != ' ' {
			return time.Time{}, 0, false
		}
		i++
		if i+4 < len(b) && b[i+4] == ' ' {
			if y, ok := digits4(b, i); ok {
				year = y
				i += 5
			}
		}
		if len(b) < i+8 || b[i+2] != ':' || b[i+5] != ':' {
			return time.Time{}, 0, false
		}
		var ok1, ok2, ok3 bool
		hour, ok1 = digits2(b, i)
		minute, ok2 = digits2(b, i+3)
		sec, ok3 = digits2(b, i+6)
		if !ok1 || !ok2 || !ok3 || hour > 23 || minute > 59 || sec > 60 {
			return time.Time{}, 0, false
		}
		if i == 7 {
			// The fixed layout "Mmm dd hh:mm:" in b[:13]: equal bytes
			// parse to the same fields.
			p.bsdKey0, p.bsdKey1 = binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint64(b[5:])
			p.bsdMonth, p.bsdDay, p.bsdHour, p.bsdMinute = month, day, hour, minute
			p.bsdBased, keyed = false, true
		}
	}
	if sec == 60 {
		sec = 59
	}
	i += 8
	nsec := 0
	if i < len(b) && b[i] == '.' {
		j := i + 1
		for j < len(b) && class[b[j]]&clDigit != 0 && j-i <= 9 {
			nsec = nsec*10 + int(b[j]-'0')
			j++
		}
		if j > i+1 {
			nsec *= pow10[9-(j-i-1)]
			i = j
		}
	}
	loc := p.Location
	if loc == nil {
		loc = time.UTC
	}
	// A year, or a zone abbreviation (Cisco "UTC", "CET") directly
	// followed by ':', after a space; most often neither.
	if i+1 < len(b) && b[i] == ' ' && (b[i+1]-'0' <= 9 || b[i+1]-'A' < 26) {
		if year == 0 && i+5 <= len(b) && b[i+1]-'0' <= 9 && (i+5 == len(b) || b[i+5] == ' ' || b[i+5] == ':') {
			if y, ok := digits4(b, i+1); ok {
				year = y
				i += 5
			}
		}
		if i+1 < len(b) && b[i] == ' ' && b[i+1]-'A' < 26 {
			j := i + 1
			for j < len(b) && j-i <= 6 && (b[j] >= 'A' && b[j] <= 'Z') {
				j++
			}
			if j > i+1 && j < len(b) && b[j] == ':' {
				if string(b[i+1:j]) == "UTC" || string(b[i+1:j]) == "GMT" {
					loc = time.UTC
				}
				i = j
			}
		}
	}
	if year == 0 {
		p.guessYear(loc)
		if keyed && loc == time.UTC {
			if !p.bsdBased || p.bsdYear != p.year {
				p.bsdBased, p.bsdYear = true, p.year
				p.bsdBase = p.daysFromCivil(p.year, month, day)*86400 + int64(hour*3600+minute*60)
			}
			// Not after p.yearLimit (see below), in Unix seconds.
			if s := p.bsdBase + int64(sec); s < p.limitSec || s == p.limitSec && nsec <= p.limitNsec {
				return time.Unix(s, int64(nsec)).UTC(), i, true
			}
		}
		t := p.date(p.year, month, day, hour, minute, sec, nsec, loc)
		// December's messages read in January belong to last year; a
		// clock a little ahead of ours stays in this one.
		if t.After(p.yearLimit) {
			t = p.date(p.year-1, month, day, hour, minute, sec, nsec, loc)
		}
		return t, i, true
	}
	return p.date(year, month, day, hour, minute, sec, nsec, loc), i, true
}

// guessYear sets p.year and p.yearLimit from the reference time, in loc:
// a message without a year is in the reference time's year unless that
// puts it more than a week ahead of the reference time.
func (p *Parser) guessYear(loc *time.Location) {
	// What reference and the test below come to while the clock is not
	// due and nothing changed.
	if p.Now == nil && p.nowLeft > 0 && loc == p.yearLoc && !p.yearRef.IsZero() {
		p.nowLeft--
		return
	}
	n, changed := p.reference()
	if !changed && loc == p.yearLoc && !p.yearRef.IsZero() || n.Equal(p.yearRef) && loc == p.yearLoc && !p.yearRef.IsZero() {
		return
	}
	p.yearRef, p.yearLoc = n, loc
	p.year = n.In(loc).Year()
	p.yearLimit = n.Add(7 * 24 * time.Hour)
	p.limitSec, p.limitNsec = p.yearLimit.Unix(), p.yearLimit.Nanosecond()
}

// date is time.Date, computed directly for UTC (several times faster).
func (p *Parser) date(year, month, day, hour, minute, sec, nsec int, loc *time.Location) time.Time {
	if loc != time.UTC {
		return time.Date(year, time.Month(month), day, hour, minute, sec, nsec, loc)
	}
	return time.Unix(p.daysFromCivil(year, month, day)*86400+int64(hour*3600+minute*60+sec), int64(nsec)).UTC()
}

// daysFromCivil returns the days from 1970-01-01 to the civil date
// (civil.Days), caching the last date.
func (p *Parser) daysFromCivil(year, month, day int) int64 {
	key := year<<9 | month<<5 | day
	if key == p.dayKey && key != 0 {
		return p.days
	}
	p.dayKey, p.days = key, civil.Days(int64(year), int64(month), int64(day))
	return p.days
}

// parse3164 parses what follows the PRI (if any) of a BSD message.
func (p *Parser) parse3164(b []byte, m *Message) error {
	hadPRI := m.Priority >= 0
	// Cisco IOS: a sequence number "123: " (and sometimes a second
	// "host: " or "*" marker) before the timestamp.
	if n := ciscoSeq(b); n > 0 {
		b = b[n:]
	}
	if len(b) > 0 && (b[0] == '*' || b[0] == '.') {
		b = b[1:]
	}
	var t time.Time
	var n int
	var ok bool
	if len(b) > 0 && class[b[0]]&clDigit != 0 {
		t, n, ok = p.parseRFC3339Prefix(b, false)
	} else {
		t, n, ok = p.parseBSDTime(b)
	}
	if !ok {
		if !hadPRI {
			return ErrNoPriority
		}
		// RFC 3164 4.3.3: without a valid timestamp, the whole content is
		// the MSG.
		m.Msg = b
		m.Format = RFC3164
		return nil
	}
	if !hadPRI {
		// RFC 3164 4.3.3: a relay gives a message without PRI the
		// priority 13 (user.notice).
		m.Priority = 13
	}
	m.Timestamp = t
	if n < len(b) && b[n] == ':' {
		n++ // Cisco: "18:46:11.123: %SYS-..."
	}
	for n < len(b) && b[n] == ' ' {
		n++
	}
	b = b[n:]
	// HOSTNAME, unless the next token is already the tag.
	// The token ends at the first space; with a '[' before it, it is the
	// tag.
	if j := indexAny2(b, ' ', '['); j < 0 {
		if len(b) > 0 && b[0] != '%' && b[len(b)-1] != ':' {
			m.Hostname = b
			b = nil
		}
	} else if b[j] == ' ' && j > 0 && b[0] != '%' && b[j-1] != ':' {
		m.Hostname = b[:j]
		b = b[j+1:]
	}
	p.parseTag(b, m)
	m.Format = RFC3164
	return nil
}

// parseTag parses "TAG[PID]: MSG", "TAG: MSG" or Cisco's "%FAC-SEV-MNEM:
// MSG" at the start of b; without a tag all of b is the MSG.
func (p *Parser) parseTag(b []byte, m *Message) {
	if len(b) > 0 && b[0] == '%' {
		tok, rest, _ := field(b)
		if len(tok) > 2 && tok[len(tok)-1] == ':' {
			m.MsgID = tok[1 : len(tok)-1]
			m.Msg = rest
			return
		}
	}
	// The tag ends at ':', '[' or ' ' within its first 65 bytes.
	if i := indexTagEnd(b); i >= 0 {
		switch b[i] {
		case ':':
			if i == 0 {
				m.Msg = b
				return
			}
			m.AppName = b[:i]
			m.Msg = trimOneSpace(b[i+1:])
			return
		case '[':
			j := i + 1 + indexAny2(b[i+1:], ']', ' ')
			if i == 0 || j <= i || b[j] != ']' {
				m.Msg = b
				return
			}
			m.AppName, m.ProcID = b[:i], b[i+1:j]
			j++
			if j < len(b) && b[j] == ':' {
				j++
			}
			m.Msg = trimOneSpace(b[j:])
			return
		case ' ':
			m.Msg = b
			return
		}
	}
	m.Msg = b
}

// indexAny2 returns the index of the first c1 or c2 in b, or -1: byte by
// byte for the first eight (most host names, tags and PIDs are short,
// and a loop that stops where the last one stopped is cheaper than
// computing the place), then eight at a time (the lowest byte swar.HasByte
// flags is exact, so is the lowest of two).
func indexAny2(b []byte, c1, c2 byte) int {
	i := 0
	for ; i < len(b) && i < 8; i++ {
		if b[i] == c1 || b[i] == c2 {
			return i
		}
	}
	for ; i+8 <= len(b); i += 8 {
		w := binary.LittleEndian.Uint64(b[i : i+8])
		if m := swar.HasByte(w, c1) | swar.HasByte(w, c2); m != 0 {
			return i + swar.First(m)
		}
	}
	for ; i < len(b); i++ {
		if b[i] == c1 || b[i] == c2 {
			return i
		}
	}
	return -1
}

// indexTagEnd returns the index of the first ':', '[' or ' ' in the first
// 65 bytes of b, or -1: like indexAny2, byte by byte for the first eight.
func indexTagEnd(b []byte) int {
	const limit = 65
	n := min(len(b), limit)
	i := 0
	for ; i < n && i < 8; i++ {
		if class[b[i]]&clTagEnd != 0 {
			return i
		}
	}
	for ; i+8 <= len(b) && i < n; i += 8 {
		w := binary.LittleEndian.Uint64(b[i : i+8])
		if m := swar.HasByte(w, ':') | swar.HasByte(w, '[') | swar.HasByte(w, ' '); m != 0 {
			if j := i + swar.First(m); j < n {
				return j
			}
			return -1
		}
	}
	for ; i < n; i++ {
		if class[b[i]]&clTagEnd != 0 {
			return i
		}
	}
	return -1
}

func trimOneSpace(b []byte) []byte {
	if len(b) > 0 && b[0] == ' ' {
		return b[1:]
	}
	return b
}

// ciscoSeq returns the length of a Cisco sequence number "123: " at the
// start of b, or 0.
func ciscoSeq(b []byte) int {
	i := 0
	for i < len(b) && i < 10 && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	if i == 0 || i+1 >= len(b) || b[i] != ':' || b[i+1] != ' ' {
		return 0
	}
	return i + 2
}
