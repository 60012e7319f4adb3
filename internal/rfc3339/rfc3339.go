// Package rfc3339 reads RFC 3339 timestamps exactly as
// time.ParseInLocation(time.RFC3339Nano, s, loc) reads them, at a fraction
// of its cost in the common case: a UTC ("Z") timestamp in the same minute
// as the last one. Container runtimes put such a timestamp before every
// log line (Docker's daemon in its log streams, the kubelet in CRI log
// files), and applications write them in their JSON and logfmt logs: the
// Docker source and the CRI, Docker and Timestamp stages read them here.
//
// The syslog parser (source/syslog/syslogmsg) reads its timestamps itself:
// there a timestamp is the prefix of a message, may have a lowercase "t"
// or "z" (which RFC 3339 allows and time.Parse rejects), and is read as
// leniently as syslog receivers read it (a second of 60 is taken).
package rfc3339

import (
	"encoding/binary"
	"time"
	"unsafe"

	"github.com/ferrydev/ferry/internal/swar"
)

// Clock parses timestamps as time.Parse(time.RFC3339Nano, s) and
// time.ParseInLocation do: the same instant, the same location, an error
// exactly when they return one (FuzzClock holds it to that).
//
// It keeps the date, hour and minute ("2006-01-02T15:04") of the last UTC
// timestamp the time package accepted, and their Unix time; a UTC
// timestamp that starts with them needs only its seconds and fraction
// read, eight fraction digits at once. Anything else goes to the time
// package. The lines of one stream mostly share their minute.
//
// The zero Clock is ready to use. A Clock is not safe for concurrent use:
// keep one a stream or a goroutine.
type Clock struct {
	// "2006-01-02T15:04" of the last UTC timestamp, if set, as two
	// little-endian words (the ':' after it is checked apart), and its Unix
	// seconds.
	minute [2]uint64
	base   int64
	set    bool
}

// Parse returns the time of s, or time.Parse's error.
func (c *Clock) Parse(s string) (time.Time, error) {
	// time.Parse reads an offset of Local's as Local, as ParseInLocation
	// reads one of loc's as loc.
	return c.ParseInLocation(s, time.Local)
}

// ParseInLocation is time.ParseInLocation(time.RFC3339Nano, s, loc),
// which time.ParseInLocation(time.RFC3339, s, loc) equals too: a UTC
// timestamp is in UTC, one with the offset of loc at its time in loc.
func (c *Clock) ParseInLocation(s string, loc *time.Location) (time.Time, error) {
	// cached only reads the bytes of s.
	if t, ok := c.cached(unsafe.Slice(unsafe.StringData(s), len(s))); ok {
		return t, nil
	}
	return c.parse(s, loc)
}

// ParseBytes is Parse of b. It allocates no more than time.Parse of a
// string does.
func (c *Clock) ParseBytes(b []byte) (time.Time, error) {
	if t, ok := c.cached(b); ok {
		return t, nil
	}
	return c.parse(string(b), time.Local)
}

// cached returns the time of b if it is a UTC timestamp in the minute of
// the last one and its seconds are as time.Parse reads them: "SS" or
// "SS.fff…" (one fraction digit or more, the nanoseconds taken from the
// first nine). Anything else it leaves to time.Parse.
func (c *Clock) cached(b []byte) (time.Time, bool) {
	n := len(b)
	if n < 20 || b[n-1] != 'Z' || b[16] != ':' || !c.set ||
		binary.LittleEndian.Uint64(b) != c.minute[0] || binary.LittleEndian.Uint64(b[8:]) != c.minute[1] {
		return time.Time{}, false
	}
	s0, s1 := b[17]-'0', b[18]-'0' // a byte below '0' wraps around
	if s0 > 5 || s1 > 9 {
		return time.Time{}, false
	}
	var nsec int64
	if n > 20 {
		if b[19] != '.' || n == 21 {
			return time.Time{}, false
		}
		var ok bool
		if nsec, ok = fraction(b[20 : n-1]); !ok {
			return time.Time{}, false
		}
	}
	return time.Unix(c.base+int64(s0)*10+int64(s1), nsec).UTC(), true
}

// parse is time.ParseInLocation of s; it keeps the minute of a UTC
// timestamp.
func (c *Clock) parse(s string, loc *time.Location) (time.Time, error) {
	t, err := time.ParseInLocation(time.RFC3339Nano, s, loc)
	if err == nil && len(s) >= 20 && s[len(s)-1] == 'Z' && s[16] == ':' {
		c.minute = [2]uint64{swar.Load(s, 0), swar.Load(s, 8)}
		c.base, c.set = t.Unix()-int64(t.Second()), true
	}
	return t, err
}

// fraction reads the digits of a fraction of a second (one or more) into
// nanoseconds, from the first nine; it reports false if any is not a
// digit. Eight digits, as most timestamps have, are read at once.
func fraction(s []byte) (int64, bool) {
	n := min(len(s), 9)
	var v int64
	i := 0
	if n >= 8 {
		w := binary.LittleEndian.Uint64(s)
		if swar.DigitRun(w) < 8 {
			return 0, false
		}
		v, i = int64(swar.Digits(w-0x30*swar.Lo8)), 8
	}
	for ; i < len(s); i++ {
		if !isDigit(s[i]) {
			return 0, false
		}
		if i < n {
			v = v*10 + int64(s[i]-'0')
		}
	}
	return v * pow10[9-n], true
}

// pow10[n] is 10**n: a fraction of n digits times pow10[9-n] is in
// nanoseconds.
var pow10 = [10]int64{1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
