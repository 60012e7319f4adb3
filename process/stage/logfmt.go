package stage

import (
	"strconv"
	"strings"
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

func (it *logfmtIter) next() bool {
	s := it.s
	for it.i < len(s) && (s[it.i] == ' ' || s[it.i] == '\t' || s[it.i] == '\r' || s[it.i] == '\n') {
		it.i++
	}
	if it.i >= len(s) {
		return false
	}
	ks := it.i
	for it.i < len(s) && logfmtClass[s[it.i]]&logfmtKey != 0 {
		it.i++
	}
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
	for it.i < len(s) && logfmtClass[s[it.i]]&logfmtValue != 0 {
		it.i++
	}
	it.val = s[vs:it.i]
	if it.i < len(s) && s[it.i] == '"' {
		it.err = true
		return false
	}
	return true
}
