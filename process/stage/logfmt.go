package stage

import (
	"strconv"
	"strings"

	"github.com/ferrydev/ferry/internal/swar"
)

// logfmtIter walks the key=value pairs of a logfmt line:
//
//	var it logfmtIter
//	it.init(s)
//	for key, val, ok := it.next(); ok; key, val, ok = it.next() { use key, val }
//	if it.err { ... }
//
// Keys are runs of bytes above space other than '=' and '"'. Values are
// bare (the same bytes), or double-quoted with Go/JSON escapes; a key
// without '=' has an empty value. Values are substrings of the line unless
// they hold escapes.
//
// next returns the pair rather than storing it in the iterator: next is
// not inlined, so it cannot know that the iterator lives on its caller's
// stack, and every string stored through the pointer took a write barrier
// while the collector ran (a tenth of the stage's time end to end, where
// lines are allocated fast enough to keep it running often).
type logfmtIter struct {
	s   string
	i   int
	err bool
}

func (it *logfmtIter) init(s string) { *it = logfmtIter{s: s} }

// logfmtClass classifies bytes for logfmtIter: a table lookup a byte, not
// four comparisons.
var logfmtClass = func() (t [256]uint8) {
	for c := range 256 {
		b := byte(c)
		if b > ' ' && b != '"' && b != 0x7f {
			t[c] |= logfmtValue
			if b != '=' {
				t[c] |= logfmtKey
			}
		}
	}
	return t
}()

const (
	logfmtKey   = 1 << iota // may be in a key
	logfmtValue             // may be in a bare value
)

// logfmtRun returns the end of the run of bytes of class cl (logfmtKey or
// logfmtValue) that starts at s[i]. It tests eight bytes at a time for the
// bytes that end a run in ASCII text: those outside 33–126, '"', and for
// a key '='. The first it flags ends the run unless it is a byte above
// 0x7e that the class allows (UTF-8), from which it goes on a byte at a
// time.
func logfmtRun(s string, i int, cl uint8) int {
	for i+8 <= len(s) {
		w := swar.Load(s, i)
		m := swar.NotPrint(w) | swar.HasByte(w, '"')
		if cl == logfmtKey {
			m |= swar.HasByte(w, '=')
		}
		if m == 0 {
			i += 8
			continue
		}
		i += swar.First(m)
		if logfmtClass[s[i]]&cl == 0 {
			return i
		}
		break
	}
	for i < len(s) && logfmtClass[s[i]]&cl != 0 {
		i++
	}
	return i
}

func (it *logfmtIter) next() (key, val string, ok bool) {
	s := it.s
	i := it.i
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n') {
		i++
	}
	if i >= len(s) {
		it.i = i
		return "", "", false
	}
	ks := i
	i = logfmtRun(s, i, logfmtKey)
	if i == ks {
		it.i, it.err = i, true
		return "", "", false
	}
	key = s[ks:i]
	if i >= len(s) || s[i] != '=' {
		it.i = i
		if i < len(s) && s[i] > ' ' {
			it.err = true
			return "", "", false
		}
		return key, "", true
	}
	i++ // '='
	if i >= len(s) {
		it.i = i
		return key, "", true
	}
	if s[i] == '"' {
		vs := i
		i++
		// The closing quote, found with IndexByte; a backslash before it
		// means escapes, which are walked a byte at a time.
		escaped := false
		end := strings.IndexByte(s[i:], '"')
		if end >= 0 && strings.IndexByte(s[i:i+end], '\\') < 0 {
			i += end
		} else {
			for i < len(s) && s[i] != '"' {
				if s[i] == '\\' {
					escaped = true
					i++
				}
				i++
			}
		}
		if i >= len(s) {
			it.i, it.err = i, true
			return "", "", false
		}
		i++
		it.i = i
		q := s[vs:i]
		if !escaped {
			val = q[1 : len(q)-1]
		} else if v, err := strconv.Unquote(q); err == nil {
			val = v
		} else if v, ok := unquoteJSON(q, nil); ok {
			val = v
		} else {
			it.err = true
			return "", "", false
		}
		if i < len(s) && s[i] > ' ' {
			it.err = true
			return "", "", false
		}
		return key, val, true
	}
	vs := i
	i = logfmtRun(s, i, logfmtValue)
	it.i = i
	if i < len(s) && s[i] == '"' {
		it.err = true
		return "", "", false
	}
	return key, s[vs:i], true
}
