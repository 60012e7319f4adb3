package syslogmsg

// This is the parser as it was before its rewrite for speed, kept as the
// reference that FuzzParseMatchesReference holds the new one to, and that
// BenchmarkSyslogParse/*/reference measures in the same run.

import (
	"bytes"
	"time"
)

// refParser parses syslog messages. Its zero value is ready to use: RFC 3164
// timestamps, which carry neither year nor zone, are taken in UTC and in
// the year that puts them closest to now.
type refParser struct {
	// Location of RFC 3164 timestamps without a zone (default UTC).
	Location *time.Location
	// Now returns the current time, for the year of RFC 3164 timestamps
	// (default time.Now, read at most once a second of parsing).
	Now func() time.Time

	// The refReference time for the year of RFC 3164 timestamps, refreshed
	// every refNowEvery messages: reading the clock per message would cost
	// more than parsing it.
	now     time.Time
	nowLeft int
}

const refNowEvery = 1024

func (p *refParser) refReference() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	if p.nowLeft <= 0 {
		p.now, p.nowLeft = time.Now(), refNowEvery
	}
	p.nowLeft--
	return p.now
}

// Parse parses one message, without its framing, into m, recognising RFC
// 5424 ("<PRI>1 ...") and otherwise RFC 3164 with the common variants:
// no hostname, an RFC 3339 timestamp instead of the BSD one, Cisco IOS's
// sequence numbers, "*"/"." time-sync markers, milliseconds, year and zone,
// and "%FACILITY-SEVERITY-MNEMONIC:" tags, and a missing PRI when a
// timestamp follows. It does not allocate. On error m holds what was
// parsed so far with Format Unparsed.
func (p *refParser) Parse(b []byte, m *Message) error {
	*m = Message{Priority: -1}
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r' || b[len(b)-1] == 0) {
		b = b[:len(b)-1]
	}
	if len(b) == 0 {
		return ErrEmpty
	}
	rest := b
	if b[0] == '<' {
		pri, n, ok := refParsePRI(b)
		if !ok {
			return ErrPriority
		}
		m.Priority = pri
		rest = b[n:]
		if len(rest) >= 2 && rest[0] == '1' && rest[1] == ' ' {
			return p.refParse5424(rest[2:], m)
		}
	}
	return p.refParse3164(rest, m)
}

// refParsePRI parses "<N>" with N of 1 to 3 refDigits, 0 to 191, and returns
// its value and length.
func refParsePRI(b []byte) (int, int, bool) {
	v, i := 0, 1
	for ; i < len(b) && i <= 4 && b[i] >= '0' && b[i] <= '9'; i++ {
		v = v*10 + int(b[i]-'0')
	}
	if i == 1 || i > 4 || i >= len(b) || b[i] != '>' || v > 191 {
		return 0, 0, false
	}
	// RFC 5424 forbids leading zeros, but RFC 3164 senders emit "<00>"
	// rarely; accept them.
	return v, i + 1, true
}

// refField cuts the next space-terminated header refField off b.
func refField(b []byte) (f, rest []byte, ok bool) {
	if i := bytes.IndexByte(b, ' '); i >= 0 {
		return b[:i], b[i+1:], true
	}
	return b, nil, false
}

// refPrintChar[c] is true for PRINTUSASCII (33–126); refSdNameChar[c] also
// excludes '=', ']' and '"', as RFC 5424's SD-NAME does.
var refPrintChar, refSdNameChar [256]bool

func init() {
	for c := 33; c <= 126; c++ {
		refPrintChar[c] = true
		refSdNameChar[c] = c != '=' && c != ']' && c != '"'
	}
}

// refHeaderField cuts the next RFC 5424 header refField off b: PRINTUSASCII up
// to a space. It fails on any other byte or a missing space.
func refHeaderField(b []byte) (f, rest []byte, ok bool) {
	i := 0
	for i < len(b) && refPrintChar[b[i]] {
		i++
	}
	if i == 0 || i == len(b) || b[i] != ' ' {
		return nil, nil, false
	}
	return b[:i], b[i+1:], true
}

func refNilValue(f []byte) []byte {
	if len(f) == 1 && f[0] == '-' {
		return nil
	}
	return f
}

func (p *refParser) refParse5424(b []byte, m *Message) error {
	ts, b, ok := refHeaderField(b)
	if !ok {
		return ErrHeader
	}
	if !(len(ts) == 1 && ts[0] == '-') {
		t, ok := refParseRFC3339(ts)
		if !ok {
			return ErrTimestamp
		}
		m.Timestamp = t
	}
	var host, app, proc, msgid []byte
	if host, b, ok = refHeaderField(b); !ok {
		return ErrHeader
	}
	if app, b, ok = refHeaderField(b); !ok {
		return ErrHeader
	}
	if proc, b, ok = refHeaderField(b); !ok {
		return ErrHeader
	}
	// "... MSGID SD": without a space after MSGID there is no SD and the
	// message is malformed.
	if msgid, b, ok = refHeaderField(b); !ok {
		return ErrHeader
	}
	if len(host) > 255 || len(app) > 48 || len(proc) > 128 || len(msgid) > 32 {
		return ErrFieldTooLong
	}
	m.Hostname, m.AppName, m.ProcID, m.MsgID = refNilValue(host), refNilValue(app), refNilValue(proc), refNilValue(msgid)
	switch {
	case len(b) == 0:
		return ErrHeader
	case b[0] == '-':
		b = b[1:]
	case b[0] == '[':
		n, ok := refSdLen(b)
		if !ok {
			return ErrSD
		}
		m.StructuredData = b[:n]
		b = b[n:]
	default:
		return ErrSD
	}
	if len(b) > 0 {
		if b[0] != ' ' {
			return ErrSD
		}
		b = b[1:]
	}
	if len(b) >= 3 && b[0] == 0xEF && b[1] == 0xBB && b[2] == 0xBF {
		b = b[3:]
	}
	m.Msg = b
	m.Format = RFC5424
	return nil
}

// refSdLen returns the length of the SD-ELEMENTs at the start of b.
func refSdLen(b []byte) (int, bool) {
	i := 0
	for i < len(b) && b[i] == '[' {
		i++
		// SD-ID
		start := i
		for i < len(b) && refSdNameChar[b[i]] {
			i++
		}
		if i == start || i-start > 32 || i >= len(b) || b[i] != ' ' && b[i] != ']' {
			return 0, false
		}
		for {
			if i >= len(b) {
				return 0, false
			}
			if b[i] == ']' {
				i++
				break
			}
			if b[i] != ' ' {
				return 0, false
			}
			i++
			start = i
			for i < len(b) && refSdNameChar[b[i]] {
				i++
			}
			if i == start || i-start > 32 || i+1 >= len(b) || b[i] != '=' || b[i+1] != '"' {
				return 0, false
			}
			i += 2
			// The value ends at the first '"' not escaped by an odd number
			// of backslashes.
			for {
				q := bytes.IndexByte(b[i:], '"')
				if q < 0 {
					return 0, false
				}
				bs := 0
				for k := i + q - 1; k >= i && b[k] == '\\'; k-- {
					bs++
				}
				i += q + 1
				if bs%2 == 0 {
					break
				}
			}
		}
	}
	return i, i > 0
}

func refDigits(b []byte, n int) (int, bool) {
	if len(b) < n {
		return 0, false
	}
	v := 0
	for i := 0; i < n; i++ {
		c := b[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, true
}

// refParseRFC3339 parses an RFC 3339 timestamp as RFC 5424 restricts it
// (fractions up to 9 refDigits here, to accept nanosecond senders), with a
// zone of "Z" or ±hh:mm.
func refParseRFC3339(b []byte) (time.Time, bool) {
	t, n, ok := refParseRFC3339Prefix(b, true)
	if !ok || n != len(b) {
		return time.Time{}, false
	}
	return t, true
}

// refParseRFC3339Prefix parses an RFC 3339 timestamp at the start of b and
// returns its length. Without needZone a missing zone means UTC.
func refParseRFC3339Prefix(b []byte, needZone bool) (time.Time, int, bool) {
	year, ok1 := refDigits(b, 4)
	if !ok1 || len(b) < 19 || b[4] != '-' || b[7] != '-' || (b[10] != 'T' && b[10] != 't') || b[13] != ':' || b[16] != ':' {
		return time.Time{}, 0, false
	}
	month, ok2 := refDigits(b[5:], 2)
	day, ok3 := refDigits(b[8:], 2)
	hour, ok4 := refDigits(b[11:], 2)
	minute, ok5 := refDigits(b[14:], 2)
	sec, ok6 := refDigits(b[17:], 2)
	if !ok2 || !ok3 || !ok4 || !ok5 || !ok6 || month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || sec > 60 {
		return time.Time{}, 0, false
	}
	i := 19
	nsec := 0
	if i < len(b) && b[i] == '.' {
		i++
		start := i
		scale := 100000000
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			if i-start < 9 {
				nsec += int(b[i]-'0') * scale
				scale /= 10
			}
			i++
		}
		if i == start || i-start > 9 {
			return time.Time{}, 0, false
		}
	}
	offset := 0
	switch {
	case i < len(b) && (b[i] == 'Z' || b[i] == 'z'):
		i++
	case i < len(b) && (b[i] == '+' || b[i] == '-'):
		oh, ok1 := refDigits(b[i+1:], 2)
		if !ok1 || len(b) < i+6 || b[i+3] != ':' {
			return time.Time{}, 0, false
		}
		om, ok2 := refDigits(b[i+4:], 2)
		if !ok2 || oh > 23 || om > 59 {
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
		sec = 59 // a leap second: time.Date would carry it over
	}
	t := refDate(year, month, day, hour, minute, sec, nsec, time.UTC)
	if offset != 0 {
		t = t.Add(-time.Duration(offset) * time.Second)
	}
	return t, i, true
}

var refMonths = [12][3]byte{
	{'J', 'a', 'n'}, {'F', 'e', 'b'}, {'M', 'a', 'r'}, {'A', 'p', 'r'}, {'M', 'a', 'y'}, {'J', 'u', 'n'},
	{'J', 'u', 'l'}, {'A', 'u', 'g'}, {'S', 'e', 'p'}, {'O', 'c', 't'}, {'N', 'o', 'v'}, {'D', 'e', 'c'},
}

func refParseMonth(b []byte) (int, bool) {
	if len(b) < 3 {
		return 0, false
	}
	c0, c1, c2 := b[0]&^0x20, b[1]|0x20, b[2]|0x20
	for i, m := range refMonths {
		if c0 == m[0] && c1 == m[1] && c2 == m[2] {
			return i + 1, true
		}
	}
	return 0, false
}

// refParseBSDTime parses "Mmm dd hh:mm:ss" (day padded with a space or a
// zero, or not at all) with Cisco's optional ".mmm" fraction, optional
// year before or after the time, and optional zone abbreviation; it
// returns the time and the length parsed.
func (p *refParser) refParseBSDTime(b []byte) (time.Time, int, bool) {
	month, ok := refParseMonth(b)
	if !ok || len(b) < 4 || b[3] != ' ' {
		return time.Time{}, 0, false
	}
	i := 4
	if i < len(b) && b[i] == ' ' {
		i++
	}
	day := 0
	start := i
	for i < len(b) && b[i] >= '0' && b[i] <= '9' && i-start < 2 {
		day = day*10 + int(b[i]-'0')
		i++
	}
	if i == start || day < 1 || day > 31 || i >= len(b) || b[i] != ' ' {
		return time.Time{}, 0, false
	}
	i++
	year := 0
	if y, ok := refDigits(b[i:], 4); ok && i+4 < len(b) && b[i+4] == ' ' {
		year = y
		i += 5
	}
	if len(b) < i+8 || b[i+2] != ':' || b[i+5] != ':' {
		return time.Time{}, 0, false
	}
	hour, ok1 := refDigits(b[i:], 2)
	minute, ok2 := refDigits(b[i+3:], 2)
	sec, ok3 := refDigits(b[i+6:], 2)
	if !ok1 || !ok2 || !ok3 || hour > 23 || minute > 59 || sec > 60 {
		return time.Time{}, 0, false
	}
	if sec == 60 {
		sec = 59
	}
	i += 8
	nsec := 0
	if i < len(b) && b[i] == '.' {
		j := i + 1
		scale := 100000000
		for j < len(b) && b[j] >= '0' && b[j] <= '9' && j-i <= 9 {
			nsec += int(b[j]-'0') * scale
			scale /= 10
			j++
		}
		if j > i+1 {
			i = j
		}
	}
	if year == 0 && i < len(b) && b[i] == ' ' {
		if y, ok := refDigits(b[i+1:], 4); ok && (i+5 == len(b) || b[i+5] == ' ' || b[i+5] == ':') {
			year = y
			i += 5
		}
	}
	loc := p.Location
	if loc == nil {
		loc = time.UTC
	}
	// A zone abbreviation (Cisco "UTC", "CET") directly followed by ':'.
	if i < len(b) && b[i] == ' ' {
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
	if year == 0 {
		n := p.refReference()
		year = n.In(loc).Year()
		t := refDate(year, month, day, hour, minute, sec, nsec, loc)
		// December's messages read in January belong to last year; a
		// clock a little ahead of ours stays in this one.
		if t.After(n.Add(7 * 24 * time.Hour)) {
			t = refDate(year-1, month, day, hour, minute, sec, nsec, loc)
		}
		return t, i, true
	}
	return refDate(year, month, day, hour, minute, sec, nsec, loc), i, true
}

// refDate is time.Date, computed directly for UTC (several times faster).
func refDate(year, month, day, hour, minute, sec, nsec int, loc *time.Location) time.Time {
	if loc != time.UTC {
		return time.Date(year, time.Month(month), day, hour, minute, sec, nsec, loc)
	}
	// Days from 1970-01-01 to the civil refDate (Howard Hinnant's algorithm);
	// day overflow (Feb 31) normalises the way time.Date does.
	y := year
	if month <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era--
	}
	yoe := y - era*400
	mp := (month + 9) % 12
	doy := (153*mp+2)/5 + day - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	days := int64(era)*146097 + int64(doe) - 719468
	return time.Unix(days*86400+int64(hour*3600+minute*60+sec), int64(nsec)).UTC()
}

// refParse3164 parses what follows the PRI (if any) of a BSD message.
func (p *refParser) refParse3164(b []byte, m *Message) error {
	hadPRI := m.Priority >= 0
	// Cisco IOS: a sequence number "123: " (and sometimes a second
	// "host: " or "*" marker) before the timestamp.
	if n := refCiscoSeq(b); n > 0 {
		b = b[n:]
	}
	if len(b) > 0 && (b[0] == '*' || b[0] == '.') {
		b = b[1:]
	}
	var t time.Time
	var n int
	var ok bool
	if len(b) > 0 && b[0] >= '0' && b[0] <= '9' {
		t, n, ok = refParseRFC3339Prefix(b, false)
	} else {
		t, n, ok = p.refParseBSDTime(b)
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
	b = b[n:]
	if len(b) > 0 && b[0] == ':' {
		b = b[1:] // Cisco: "18:46:11.123: %SYS-..."
	}
	for len(b) > 0 && b[0] == ' ' {
		b = b[1:]
	}
	// HOSTNAME, unless the next token is already the tag.
	tok, rest, _ := refField(b)
	if len(tok) > 0 && tok[0] != '%' && tok[len(tok)-1] != ':' && !refContainsByte(tok, '[') {
		m.Hostname = tok
		b = rest
	}
	p.refParseTag(b, m)
	m.Format = RFC3164
	return nil
}

// refParseTag parses "TAG[PID]: MSG", "TAG: MSG" or Cisco's "%FAC-SEV-MNEM:
// MSG" at the start of b; without a tag all of b is the MSG.
func (p *refParser) refParseTag(b []byte, m *Message) {
	if len(b) > 0 && b[0] == '%' {
		tok, rest, _ := refField(b)
		if len(tok) > 2 && tok[len(tok)-1] == ':' {
			m.MsgID = tok[1 : len(tok)-1]
			m.Msg = rest
			return
		}
	}
	for i := 0; i < len(b) && i <= 64; i++ {
		switch c := b[i]; c {
		case ':':
			if i == 0 {
				m.Msg = b
				return
			}
			m.AppName = b[:i]
			m.Msg = refTrimOneSpace(b[i+1:])
			return
		case '[':
			j := i + 1
			for j < len(b) && b[j] != ']' && b[j] != ' ' {
				j++
			}
			if i == 0 || j >= len(b) || b[j] != ']' {
				m.Msg = b
				return
			}
			m.AppName, m.ProcID = b[:i], b[i+1:j]
			j++
			if j < len(b) && b[j] == ':' {
				j++
			}
			m.Msg = refTrimOneSpace(b[j:])
			return
		case ' ':
			m.Msg = b
			return
		}
	}
	m.Msg = b
}

func refTrimOneSpace(b []byte) []byte {
	if len(b) > 0 && b[0] == ' ' {
		return b[1:]
	}
	return b
}

func refContainsByte(b []byte, c byte) bool {
	for _, x := range b {
		if x == c {
			return true
		}
	}
	return false
}

// refCiscoSeq returns the length of a Cisco sequence number "123: " at the
// start of b, or 0.
func refCiscoSeq(b []byte) int {
	i := 0
	for i < len(b) && i < 10 && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	if i == 0 || i+1 >= len(b) || b[i] != ':' || b[i+1] != ' ' {
		return 0
	}
	return i + 2
}
