package stage

import (
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"

	"github.com/ferrydev/ferry/internal/arena"
)

// A small JSON reader over strings: it validates as it goes and hands out
// raw member values as substrings, so that extracting from a line
// allocates nothing; a string with escapes is unescaped into the batch's
// arena (Context.text).

const maxJSONDepth = 512

type jsonScanner struct {
	s     string
	i     int
	depth int
}

func (d *jsonScanner) ws() {
	for d.i < len(d.s) {
		switch d.s[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// str scans a string starting at d.i (a quote) and reports whether it had
// escapes.
func (d *jsonScanner) str() (escaped, ok bool) {
	if d.i >= len(d.s) || d.s[d.i] != '"' {
		return false, false
	}
	d.i++
	for d.i < len(d.s) {
		c := d.s[d.i]
		switch {
		case c == '"':
			d.i++
			return escaped, true
		case c == '\\':
			escaped = true
			d.i++
			if d.i >= len(d.s) {
				return false, false
			}
			switch d.s[d.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				d.i++
			case 'u':
				if d.i+5 > len(d.s) {
					return false, false
				}
				for _, h := range d.s[d.i+1 : d.i+5] {
					if !isHex(byte(h)) {
						return false, false
					}
				}
				d.i += 5
			default:
				return false, false
			}
		case c < 0x20:
			return false, false
		default:
			d.i++
		}
	}
	return false, false
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func (d *jsonScanner) number() bool {
	start := d.i
	if d.i < len(d.s) && d.s[d.i] == '-' {
		d.i++
	}
	digits := func() int {
		n := 0
		for d.i < len(d.s) && '0' <= d.s[d.i] && d.s[d.i] <= '9' {
			d.i++
			n++
		}
		return n
	}
	if d.i < len(d.s) && d.s[d.i] == '0' {
		d.i++
	} else if digits() == 0 {
		return false
	}
	if d.i < len(d.s) && d.s[d.i] == '.' {
		d.i++
		if digits() == 0 {
			return false
		}
	}
	if d.i < len(d.s) && (d.s[d.i] == 'e' || d.s[d.i] == 'E') {
		d.i++
		if d.i < len(d.s) && (d.s[d.i] == '+' || d.s[d.i] == '-') {
			d.i++
		}
		if digits() == 0 {
			return false
		}
	}
	return d.i > start
}

// value skips one value.
func (d *jsonScanner) value() bool {
	d.ws()
	if d.i >= len(d.s) {
		return false
	}
	switch c := d.s[d.i]; {
	case c == '"':
		_, ok := d.str()
		return ok
	case c == '{':
		if d.depth++; d.depth > maxJSONDepth {
			return false
		}
		d.i++
		d.ws()
		if d.i < len(d.s) && d.s[d.i] == '}' {
			d.i++
			d.depth--
			return true
		}
		for {
			d.ws()
			if _, ok := d.str(); !ok {
				return false
			}
			d.ws()
			if d.i >= len(d.s) || d.s[d.i] != ':' {
				return false
			}
			d.i++
			if !d.value() {
				return false
			}
			d.ws()
			if d.i >= len(d.s) {
				return false
			}
			if d.s[d.i] == '}' {
				d.i++
				d.depth--
				return true
			}
			if d.s[d.i] != ',' {
				return false
			}
			d.i++
		}
	case c == '[':
		if d.depth++; d.depth > maxJSONDepth {
			return false
		}
		d.i++
		d.ws()
		if d.i < len(d.s) && d.s[d.i] == ']' {
			d.i++
			d.depth--
			return true
		}
		for {
			if !d.value() {
				return false
			}
			d.ws()
			if d.i >= len(d.s) {
				return false
			}
			if d.s[d.i] == ']' {
				d.i++
				d.depth--
				return true
			}
			if d.s[d.i] != ',' {
				return false
			}
			d.i++
		}
	case c == 't':
		return d.lit("true")
	case c == 'f':
		return d.lit("false")
	case c == 'n':
		return d.lit("null")
	default:
		return d.number()
	}
}

func (d *jsonScanner) lit(w string) bool {
	if strings.HasPrefix(d.s[d.i:], w) {
		d.i += len(w)
		return true
	}
	return false
}

// objIter walks the members of a JSON object:
//
//	var it objIter
//	it.init(s)
//	for key, raw, ok := it.next(); ok; key, raw, ok = it.next() { use it.keyIs(key, k), raw }
//	if !it.valid() { ... }
//
// next returns each member's raw key (quotes included) and raw value rather
// than storing them in the iterator, as logfmtIter does its pairs: strings
// stored through the pointer of a method that is not inlined take write
// barriers while the collector runs. (A struct of the three would not do:
// at 40 bytes it is returned through memory.)
type objIter struct {
	d       jsonScanner
	escaped bool // the key next returned last has escapes
	state   int  // 0 start, 1 in members, 2 done ok, 3 error
}

func (it *objIter) init(s string) {
	*it = objIter{d: jsonScanner{s: s}}
}

func (it *objIter) next() (key, raw string, ok bool) {
	d := &it.d
	switch it.state {
	case 0:
		d.ws()
		if d.i >= len(d.s) || d.s[d.i] != '{' {
			it.state = 3
			return "", "", false
		}
		d.i++
		d.ws()
		if d.i < len(d.s) && d.s[d.i] == '}' {
			d.i++
			return "", "", it.end()
		}
	case 1:
		d.ws()
		if d.i >= len(d.s) {
			it.state = 3
			return "", "", false
		}
		if d.s[d.i] == '}' {
			d.i++
			return "", "", it.end()
		}
		if d.s[d.i] != ',' {
			it.state = 3
			return "", "", false
		}
		d.i++
		d.ws()
	default:
		return "", "", false
	}
	ks := d.i
	esc, valid := d.str()
	if !valid {
		it.state = 3
		return "", "", false
	}
	key, it.escaped = d.s[ks:d.i], esc
	d.ws()
	if d.i >= len(d.s) || d.s[d.i] != ':' {
		it.state = 3
		return "", "", false
	}
	d.i++
	d.ws()
	vs := d.i
	if !d.value() {
		it.state = 3
		return "", "", false
	}
	it.state = 1
	return key, d.s[vs:d.i], true
}

// end checks that nothing but white space follows the object.
func (it *objIter) end() bool {
	it.d.ws()
	if it.d.i != len(it.d.s) {
		it.state = 3
		return false
	}
	it.state = 2
	return false
}

func (it *objIter) valid() bool { return it.state == 2 }

// keyString returns key, the raw key next returned last, unquoted.
func (it *objIter) keyString(key string) string {
	if !it.escaped {
		return key[1 : len(key)-1]
	}
	s, _ := unquoteJSON(key, nil)
	return s
}

// keyIs reports whether key, the raw key next returned last, is k, without
// allocating for keys without escapes.
func (it *objIter) keyIs(key, k string) bool {
	if !it.escaped {
		return len(key) == len(k)+2 && key[1:len(key)-1] == k
	}
	s, _ := unquoteJSON(key, nil)
	return s == k
}

// unquoteJSON decodes a JSON string literal, quotes included. A string
// without escapes is a substring of q; one with escapes is written to a
// (see Context.text), or to memory of its own when a is nil.
func unquoteJSON(q string, a *arena.Arena) (string, bool) {
	if len(q) < 2 || q[0] != '"' || q[len(q)-1] != '"' {
		return "", false
	}
	s := q[1 : len(q)-1]
	if strings.IndexByte(s, '\\') < 0 {
		return s, true
	}
	var b []byte
	start := 0
	if a != nil {
		start = a.Grow(len(s))
		b = a.Buf
	} else {
		b = make([]byte, 0, len(s))
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c != '\\' {
			b = append(b, c)
			i++
			continue
		}
		if i+1 >= len(s) {
			return "", false
		}
		switch s[i+1] {
		case '"', '\\', '/':
			b = append(b, s[i+1])
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			r, n := hex4(s[i+2:])
			if n < 0 {
				return "", false
			}
			i += 6
			if utf16.IsSurrogate(r) && strings.HasPrefix(s[i:], `\u`) {
				if r2, n2 := hex4(s[i+2:]); n2 >= 0 {
					if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
						b = utf8.AppendRune(b, d)
						i += 6
						continue
					}
				}
			}
			if utf16.IsSurrogate(r) {
				r = utf8.RuneError
			}
			b = utf8.AppendRune(b, r)
			continue
		default:
			return "", false
		}
		i += 2
	}
	if a == nil {
		// b is this call's and is not written again.
		return unsafe.String(unsafe.SliceData(b), len(b)), true
	}
	a.Buf = b
	return a.Cut(start), true
}

func hex4(s string) (rune, int) {
	if len(s) < 4 {
		return 0, -1
	}
	v, err := strconv.ParseUint(s[:4], 16, 32)
	if err != nil {
		return 0, -1
	}
	return rune(v), 4
}

// jsonValue turns a raw JSON value into the string a stage extracts:
// strings unquoted (into a, when they have escapes), null absent, anything
// else as written.
func jsonValue(raw string, a *arena.Arena) (string, bool) {
	if raw == "" {
		return "", false
	}
	switch raw[0] {
	case '"':
		return unquoteJSON(raw, a)
	case 'n':
		return "", false
	}
	return raw, true
}

// pathStep is one step of a JSON path: a member name or an array index.
type pathStep struct {
	key   string
	index int // -1 for a key
}

// parsePath parses a JMESPath-like path: names separated by dots, names in
// double quotes for other characters, and [n] indexes: a.b[0]."c.d".
func parsePath(p string) ([]pathStep, error) {
	var steps []pathStep
	i := 0
	needName := true
	for i < len(p) {
		switch c := p[i]; {
		case c == '[':
			j := strings.IndexByte(p[i:], ']')
			if j < 0 {
				return nil, errPath(p)
			}
			n, err := strconv.Atoi(p[i+1 : i+j])
			if err != nil || n < 0 {
				return nil, errPath(p)
			}
			steps = append(steps, pathStep{index: n})
			i += j + 1
			needName = false
			continue
		case c == '.' && !needName:
			i++
			needName = true
			continue
		case !needName:
			return nil, errPath(p)
		case c == '"':
			j := i + 1
			for j < len(p) && p[j] != '"' {
				if p[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(p) {
				return nil, errPath(p)
			}
			k, ok := unquoteJSON(p[i:j+1], nil)
			if !ok {
				return nil, errPath(p)
			}
			steps = append(steps, pathStep{key: k, index: -1})
			i = j + 1
		default:
			j := i
			for j < len(p) && p[j] != '.' && p[j] != '[' {
				c := p[j]
				if !(c == '_' || c == '-' || c == '@' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80) {
					return nil, errPath(p)
				}
				j++
			}
			if j == i {
				return nil, errPath(p)
			}
			steps = append(steps, pathStep{key: p[i:j], index: -1})
			i = j
		}
		needName = false
	}
	if len(steps) == 0 || needName {
		return nil, errPath(p)
	}
	return steps, nil
}

type pathError string

func (e pathError) Error() string { return "invalid JSON path " + strconv.Quote(string(e)) }

func errPath(p string) error { return pathError(p) }

// lookup follows steps from the raw value and returns the raw value found.
func lookup(raw string, steps []pathStep) (string, bool) {
	for _, st := range steps {
		if st.index < 0 {
			var it objIter
			it.init(raw)
			found := ""
			ok := false
			for key, raw, more := it.next(); more; key, raw, more = it.next() {
				if it.keyIs(key, st.key) {
					found, ok = raw, true
				}
			}
			if !ok || !it.valid() {
				return "", false
			}
			raw = found
			continue
		}
		d := jsonScanner{s: raw}
		d.ws()
		if d.i >= len(d.s) || d.s[d.i] != '[' {
			return "", false
		}
		d.i++
		for n := 0; ; n++ {
			d.ws()
			if d.i < len(d.s) && d.s[d.i] == ']' {
				return "", false
			}
			vs := d.i
			if !d.value() {
				return "", false
			}
			if n == st.index {
				raw = d.s[vs:d.i]
				break
			}
			d.ws()
			if d.i >= len(d.s) || d.s[d.i] != ',' {
				return "", false
			}
			d.i++
		}
	}
	return raw, true
}
