package stage

import (
	"strings"
	"time"
)

// utcClock parses timestamps as time.Parse(time.RFC3339Nano, s) does,
// faster for those in UTC ("Z") whose date, hour and minute are those of
// the last such timestamp: the kubelet writes every log line's time that
// way (CRI), and a stream's lines mostly share their minute. It keeps
// the first 17 bytes ("2006-01-02T15:04:") of the last timestamp
// time.Parse accepted in that form, and their time; a timestamp that
// starts with them needs only its seconds and fraction read. Anything
// else goes to time.Parse. FuzzUTCClock holds it to time.Parse.
type utcClock struct {
	minute string // "2006-01-02T15:04:" of the last timestamp, or ""
	base   int64  // its Unix seconds
}

// parse returns the time of s, or time.Parse's error.
func (c *utcClock) parse(s string) (time.Time, error) {
	utc := len(s) >= 20 && s[len(s)-1] == 'Z'
	if utc && s[:17] == c.minute { // never equal while minute is ""
		if sec, nsec, ok := secondsZ(s[17 : len(s)-1]); ok {
			return time.Unix(c.base+sec, nsec).UTC(), nil
		}
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err == nil && utc && s[16] == ':' {
		if s[:17] != c.minute {
			c.minute = strings.Clone(s[:17]) // not a part of the line, which it would keep
		}
		c.base = t.Unix() - int64(t.Second())
	}
	return t, err
}

// secondsZ reads "SS" or "SS.fff…" (one digit or more, nanoseconds taken
// from the first nine) as time.Parse reads the seconds of an RFC 3339
// timestamp; it reports false for anything else, which time.Parse then
// judges.
func secondsZ(s string) (sec, nsec int64, ok bool) {
	if len(s) < 2 || !isDigit(s[0]) || !isDigit(s[1]) {
		return 0, 0, false
	}
	sec = int64(s[0]-'0')*10 + int64(s[1]-'0')
	if sec >= 60 {
		return 0, 0, false
	}
	if len(s) == 2 {
		return sec, 0, true
	}
	if s[2] != '.' || len(s) == 3 {
		return 0, 0, false
	}
	scale := int64(100_000_000)
	for i := 3; i < len(s); i++ {
		if !isDigit(s[i]) {
			return 0, 0, false
		}
		nsec += int64(s[i]-'0') * scale
		scale /= 10
	}
	return sec, nsec, true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
