package stage

import "strconv"

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

func isLogfmtKeyByte(c byte) bool { return c > ' ' && c != '=' && c != '"' && c != 0x7f }

func (it *logfmtIter) next() bool {
	s := it.s
	for it.i < len(s) && (s[it.i] == ' ' || s[it.i] == '\t' || s[it.i] == '\r' || s[it.i] == '\n') {
		it.i++
	}
	if it.i >= len(s) {
		return false
	}
	ks := it.i
	for it.i < len(s) && isLogfmtKeyByte(s[it.i]) {
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
		escaped := false
		for it.i < len(s) && s[it.i] != '"' {
			if s[it.i] == '\\' {
				escaped = true
				it.i++
			}
			it.i++
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
	for it.i < len(s) && s[it.i] > ' ' && s[it.i] != '"' && s[it.i] != 0x7f {
		it.i++
	}
	it.val = s[vs:it.i]
	if it.i < len(s) && s[it.i] == '"' {
		it.err = true
		return false
	}
	return true
}
