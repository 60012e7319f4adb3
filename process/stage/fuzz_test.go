package stage

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/ferrydev/ferry"
)

// FuzzJSONScanner compares the scanner with encoding/json: the same inputs
// are objects, and top-level string members decode the same.
func FuzzJSONScanner(f *testing.F) {
	for _, s := range []string{
		`{"a":"x","b":2,"c":{"d":[1,2,{"e":null}]},"f":true}`, `{"a":"\u00e9\ud83d\ude00\n"}`, `{}`, ` { "a" : 1 } `,
		`{"a":1,}`, `{"a":01}`, `{"a":"\x"}`, `[1]`, `{"a":-0.5e+3}`, `{"a":"\ud800"}`, `{"a":1}x`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var it objIter
		it.init(s)
		got := map[string]string{}
		for key, raw, ok := it.next(); ok; key, raw, ok = it.next() {
			if raw[0] == '"' {
				v, ok := unquoteJSON(raw, nil)
				if !ok {
					t.Fatalf("%q: member %s: scanned but does not unquote", s, raw)
				}
				got[it.keyString(key)] = v
			}
		}
		var ref map[string]any
		err := json.Unmarshal([]byte(s), &ref)
		valid := err == nil && ref != nil && strings.HasPrefix(strings.TrimLeft(s, " \t\r\n"), "{")
		if it.valid() != valid {
			if !utf8.ValidString(s) && it.valid() {
				return // we pass invalid UTF-8 through; encoding/json replaces it
			}
			t.Fatalf("%q: scanner valid=%v, encoding/json err=%v", s, it.valid(), err)
		}
		if !valid || !utf8.ValidString(s) {
			return
		}
		for k, v := range got {
			if rv, ok := ref[k].(string); ok && rv != v && !strings.ContainsRune(rv, utf8.RuneError) {
				t.Fatalf("%q: %s = %q, encoding/json %q", s, k, v, rv)
			}
		}
	})
}

func FuzzJSONPath(f *testing.F) {
	f.Add(`a.b[0]."c.d"`, `{"a":{"b":[{"c.d":1}]}}`)
	f.Fuzz(func(t *testing.T, path, doc string) {
		steps, err := parsePath(path)
		if err != nil {
			return
		}
		lookup(doc, steps)
	})
}

func FuzzLogfmt(f *testing.F) {
	for _, s := range []string{`a=1 b="x y" c`, `a="\"q\"" b=`, `=x`, `a="unterminated`, `a=b"c`, "a=\t b=2",
		// Runs longer than a word, with UTF-8 and bytes that end them
		// inside and across words.
		`timestamp=2026-11-25T13:28:58.123456Z caller=handler.go:42 duration_seconds=0.0012`,
		`ключ=значение_длинное user_agent=curl/8.5.0é x=1`, "abcdefgh\x7fijk=1", `abcdefghijklmno=pq"rstuvwxyz`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var it logfmtIter
		it.init(s)
		ref := refLogfmtIter{s: s}
		n := 0
		for {
			key, val, ok := it.next()
			refOK := ref.next()
			if !refOK {
				ref.key, ref.val = "", "" // next returns no pair with false
			}
			if ok != refOK || key != ref.key || val != ref.val || it.err != ref.err || it.i != ref.i {
				t.Fatalf("%q: got %v %q=%q err %v at %d, the reference %v %q=%q err %v at %d",
					s, ok, key, val, it.err, it.i, refOK, ref.key, ref.val, ref.err, ref.i)
			}
			if !ok {
				break
			}
			if key == "" || strings.ContainsAny(key, "= \"") {
				t.Fatalf("%q: bad key %q", s, key)
			}
			if n++; n > len(s) {
				t.Fatalf("%q: no progress", s)
			}
		}
	})
}

// refLogfmtKeyByte reports whether c may be in a key, as refNext tests it.
func refLogfmtKeyByte(c byte) bool { return c > ' ' && c != '=' && c != '"' && c != 0x7f }

// refLogfmtIter is logfmtIter as it was before it used a byte-class table
// and IndexByte and returned its pairs, the reference FuzzLogfmt holds it
// to.
type refLogfmtIter struct {
	s        string
	i        int
	key, val string
	err      bool
}

func (it *refLogfmtIter) next() bool {
	s := it.s
	for it.i < len(s) && (s[it.i] == ' ' || s[it.i] == '\t' || s[it.i] == '\r' || s[it.i] == '\n') {
		it.i++
	}
	if it.i >= len(s) {
		return false
	}
	ks := it.i
	for it.i < len(s) && refLogfmtKeyByte(s[it.i]) {
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
		} else if v, ok := unquoteJSON(q, nil); ok {
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

func FuzzCRI(f *testing.F) {
	f.Add("2019-04-30T02:12:41.8443515Z stdout F message")
	f.Add("2019-04-30T02:12:41.8443515Z stderr P part")
	f.Add("x stdout F")
	f.Fuzz(func(t *testing.T, line string) {
		ts, stream, flags, content, ok := parseCRI(line)
		if !ok {
			return
		}
		if ts+" "+stream+" "+flags+" "+content != line && ts+" "+stream+" "+flags != line {
			t.Fatalf("%q: parts do not add up", line)
		}
	})
}

// FuzzStages runs the parsing stages over arbitrary lines: they must not
// panic, and must keep or drop whole entries.
func FuzzStages(f *testing.F) {
	f.Add(`{"log":"x\n","stream":"stdout","time":"2019-04-30T02:12:41Z"}`)
	f.Add("2019-04-30T02:12:41.8443515Z stdout P part")
	f.Add("\x1b[31mred\x1b]0;t\x07 level=info msg=\"hi\"")
	p := started(f, nil, &Docker{}, &CRI{}, &JSON{}, &Logfmt{}, &Decolorize{},
		&Regex{Expression: `(?P<word>\w+)`}, &Labels{Values: map[string]string{"word": ""}},
		&Timestamp{Source: "time", Format: "RFC3339", FallbackFormats: []string{"Unix", "UnixMs"}},
		&Replace{Expression: `(\d+)`, Replace: "<{{ .Value }}>"},
		&Multiline{FirstLine: `^\S`})
	f.Fuzz(func(t *testing.T, line string) {
		b, err := p.Process(context.Background(), ferry.Batch[ferry.Entry]{Items: []ferry.Entry{entry(line), entry(line)}})
		if err != nil || len(b.Items) > 4 {
			t.Fatalf("%v %d", err, len(b.Items))
		}
	})
}

func FuzzSelector(f *testing.F) {
	f.Add(`{a="b", c=~"d.*", e!="f", g!~` + "`h`" + `}`)
	f.Fuzz(func(t *testing.T, s string) {
		ms, err := ParseSelector(s)
		if err == nil && len(ms) == 0 {
			t.Fatal("no matchers without error")
		}
	})
}

func FuzzDecolorize(f *testing.F) {
	f.Add("\x1b[1;31mred\x1b[0m")
	f.Fuzz(func(t *testing.T, s string) {
		out := string(stripANSI(nil, s))
		if len(out) > len(s) || strings.Contains(out, "\x1b[") && !strings.Contains(s, "\x1b\x1b[") {
			// A removed escape can only leave "ESC [" behind if the
			// input had ESC ESC [.
			t.Fatalf("%q -> %q", s, out)
		}
	})
}
