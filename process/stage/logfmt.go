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
//	for it.next() { use it.key, it.val }
//	if it.err { ... }
//
// Keys are runs of bytes above space other than '=' and '"'. Values are
// bare (the same bytes), or double-quoted with Go/JSON escapes; a key
// without '=' has an empty value. Values are substrings of the line unless
// they hold escapes.
type logfmtIter struct {
	s        string
	i        int
	key, val string
	err      bool
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

func (it *logfmtIter) next() bool {
	s := it.s
	for it.i < len(s) && (s[it.i] == ' ' || s[it.i] == '\t' || s[it.i] == '\r' || s[it.i] == '\n') {
		it.i++
	}
	if it.i >= len(s) {
		return false
	}
	ks := it.i
	it.i = logfmtRun(s, it.i, logfmtKey)
	if it.i == ks {
		it.err = true
		return false
	}
	it.key, it.val = s[ks:it.i], ""
	if it.i >= len(s) || s[it.i] != '=' {
		if it.i < len(s) && s[it.i] > ' ' {
			it.err = true
			return false
		}
		return true
	}
	it.i++ // '='
	if it.i >= len(s) {
		return true
	}
	if s[it.i] == '"' {
		vs := it.i
		it.i++
		// The closing quote, found with IndexByte; a backslash before it
		// means escapes, which are walked a byte at a time.
		escaped := false
		end := strings.IndexByte(s[it.i:], '"')
		if end >= 0 && strings.IndexByte(s[it.i:it.i+end], '\\') < 0 {
			it.i += end
		} else {
			for it.i < len(s) && s[it.i] != '"' {
				if s[it.i] == '\\' {
					escaped = true
					it.i++
				}
				it.i++
			}
		}
		if it.i >= len(s) {
			it.err = true
			return false
		}
		it.i++
		q := s[vs:it.i]
		if !escaped {
			it.val = q[1 : len(q)-1]
		} else if v, err := strconv.Unquote(q); err == nil {
			it.val = v
		} else if v, ok := unquoteJSON(q); ok {
			it.val = v
		} else {
			it.err = true
			return false
		}
		if it.i < len(s) && s[it.i] > ' ' {
			it.err = true
			return false
		}
		return true
	}
	vs := it.i
	it.i = logfmtRun(s, it.i, logfmtValue)
	it.val = s[vs:it.i]
	if it.i < len(s) && s[it.i] == '"' {
		it.err = true
		return false
	}
	return true
}
