package scrape

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"
	"unsafe"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"
	"github.com/prometheus/prometheus/model/value"

	"github.com/ferrydev/ferry"
)

// skimText reads the leading lines of a page in the Prometheus text format
// that need no parser: sample lines whose series the cache already holds
// from this format or whose series is new and plain (see plainLabels, for
// which newEntry makes the entry), and comments, HELP and TYPE lines of the
// plain form; on a scrape that records metadata, it records theirs. It
// stops at the first line it cannot vouch for (a new series of another
// form, a series split over lines, an escape in a help text that is to be
// recorded, anything unusual or malformed) and returns the textparse parser
// that is to read the rest of the page, or nil if it took the page to its
// end. The outcome is the one textparse gives for the whole page, metadata
// included; FuzzSkimText checks this against textparse alone.
//
// A steady target's page is thus read at the cost of a hash and a float
// conversion per line: textparse's lexer is the largest single cost of a
// scrape, and a series seen before needs nothing it produces but the
// bytes of the series, the value and the timestamp. A target's first page,
// and a new series on a later one, mostly need no lexer either.
//
// That holds because a line is only taken when its series bytes are those
// of a series textparse accepted before (the key of a promText entry), or
// bytes of the plain form, which textparse accepts: the text format's
// lexer gives equal bytes equal tokens, the series ends at the first '}'
// outside quotes (for a plain series, its last byte), and what follows is
// checked here as the lexer and parser check it.
func (l *loop) skimText(items []ferry.Sample, page []byte, ts int64, st *stats) ([]ferry.Sample, textparse.Parser, error) {
	meta := l.recordsMeta()
	off := 0
	typeOff, entries := -1, 0               // the last TYPE line, and the entries from it on
	typ, typOff := model.MetricType(""), -1 // its type, once a new series needs it
	next := int32(0)                        // the slot after the last series' (see slot)
	for off < len(page) {
		n := bytes.IndexByte(page[off:], '\n')
		if n < 0 {
			break // a last line without its newline
		}
		line := page[off : off+n]
		switch {
		case n == 0:
			off++
			continue // a blank line is no entry
		case line[0] == '#':
			var kind int
			if meta {
				var name, text []byte
				kind, name, text = readComment(line)
				if kind == helpLine && bytes.IndexByte(text, '\\') >= 0 {
					return l.resume(items, page, off, typeOff, entries)
				}
				l.recordMeta(kind, name, text)
			} else {
				kind = l.s.comments.kind(line)
			}
			if kind == badComment {
				return l.resume(items, page, off, typeOff, entries)
			}
			if kind == typeLine {
				typeOff, entries = off, 0
			}
		default:
			series, pt, hasTS, v, ok := sampleLine(line)
			if !ok {
				return l.resume(items, page, off, typeOff, entries)
			}
			key := seriesKey(series)
			i, ok := l.slot(next, key)
			if !ok {
				if typeOff != typOff {
					typ, typOff = typeAt(page, typeOff), typeOff
				}
				i, ok = l.newEntry(nil, series, key, typ)
			}
			if !ok || !l.entries[i].has(promText) {
				return l.resume(items, page, off, typeOff, entries)
			}
			var err error
			if items, err = l.take(items, i, pt, hasTS, v, ts, st); err != nil {
				return items, nil, err
			}
			next = i + 1
		}
		off += n + 1
		entries++
	}
	if off == len(page) {
		return items, nil, nil
	}
	return l.resume(items, page, off, typeOff, entries)
}

// slot returns the slot of the entry with key, looking first at slot
// next: a target's page lists its series in the same order each scrape,
// and the entries of a page are made in its order, so that a steady page
// reads its entries one after the other and rarely needs the index, whose
// table, a target's cells in no order, would be out of the CPU's caches
// when its next scrape comes.
func (l *loop) slot(next int32, key uint64) (int32, bool) {
	if int(next) < len(l.entries) {
		if ce := &l.entries[next]; ce.key == key && ce.has(used) {
			return next, true
		}
	}
	return l.index.find(l.entries, key)
}

// typeNotKnown stands for the type of a TYPE line that is not known to
// plainLabels (where textparse alone knows it).
const typeNotKnown model.MetricType = "?"

// typeAt returns the type of the TYPE line at page[off:], as textparse
// reads it, or none if off is negative.
func typeAt(page []byte, off int) model.MetricType {
	if off < 0 {
		return ""
	}
	line := page[off:]
	line = line[:bytes.IndexByte(line, '\n')]
	_, _, text := readComment(line)
	typ, _ := metricType(text)
	return typ
}

// resume ends skimText at page[off:]: it returns items with a parser of
// the rest of the page, in the state textparse would be in there. The last
// TYPE line decides how a series' labels read (a summary's quantile and a
// histogram's le are normalized), so the parser starts at that line and
// passes over the entries between it and off.
func (l *loop) resume(items []ferry.Sample, page []byte, off, typeOff, entries int) ([]ferry.Sample, textparse.Parser, error) {
	if typeOff < 0 {
		return items, textparse.NewPromParser(page[off:], l.st, false), nil
	}
	p := textparse.NewPromParser(page[typeOff:], l.st, false)
	for range entries {
		if _, err := p.Next(); err != nil {
			// Cannot happen: skimText vouched for these lines.
			return items, nil, fmt.Errorf("parsing page again after skimming: %w", err)
		}
	}
	return items, p, nil
}

// sampleLine splits a sample line of the text format (without its newline)
// into its series, timestamp (if it has one) and value, if the line has the
// plain form
//
//	name[{...}] value [timestamp]
//
// with blanks (spaces or tabs) between the parts and no label value running
// on to the next line. The series itself is not checked (its bytes must be
// a cached series'); the rest is checked as textparse checks it.
//
// A series with labels ends at the last '}' of the line: neither the value
// nor the timestamp can hold one. Bytes taken that way that are a cached
// series are one textparse accepted, whose label set closes at its last
// byte, so the line reads as textparse would read it; bytes that are not
// (a '}' after the value, say) send the line to textparse. Searching from
// the end passes over the value and timestamp only, not over the quoted
// label values.
func sampleLine(line []byte) (series []byte, t int64, hasTS bool, v float64, ok bool) {
	if !isNameStart(line[0]) {
		return nil, 0, false, 0, false
	}
	i := bytes.LastIndexByte(line, '}') + 1
	if i == 0 {
		i = 1
		for i < len(line) && isNameChar(line[i]) {
			i++
		}
	}
	series = line[:i]
	j := skipBlanks(line, i)
	if j == i || j == len(line) || line[j] == '{' {
		return nil, 0, false, 0, false
	}
	// The value runs to a blank. Floats as textparse takes them: no
	// hexadecimal ones (p, P), no underscores, and one NaN.
	k := j
	for ; k < len(line) && lineChars[line[k]]&valueEnd == 0; k++ {
		if lineChars[line[k]]&notInFloat != 0 {
			return nil, 0, false, 0, false
		}
	}
	val := line[j:k]
	if k < len(line) && line[k] == '{' {
		return nil, 0, false, 0, false
	}
	if j = skipBlanks(line, k); j < len(line) {
		k = j
		for k < len(line) && line[k] >= '0' && line[k] <= '9' {
			k++
		}
		if k == j || skipBlanks(line, k) != len(line) {
			return nil, 0, false, 0, false
		}
		var err error
		if t, err = strconv.ParseInt(viewString(line[j:k]), 10, 64); err != nil {
			return nil, 0, false, 0, false
		}
		hasTS = true
	}
	if v, ok = decimal(val); !ok {
		var err error
		if v, err = strconv.ParseFloat(viewString(val), 64); err != nil {
			return nil, 0, false, 0, false
		}
	}
	if math.IsNaN(v) {
		v = math.Float64frombits(value.NormalNaN)
	}
	return series, t, hasTS, v, true
}

// decimal reads the common forms of a sample value, [sign] digits [.digits]
// [e[sign]digits], as strconv.ParseFloat does, when the digits make an
// integer m of at most 2^53 and the value is m times or divided by a power
// of ten up to 10^22: both are exact in a float64, so one multiplication or
// division rounds as ParseFloat rounds (it takes the same path first, after
// a more general scan). ok is false for any other form or size, which
// ParseFloat is then to read; FuzzDecimal compares the two.
func decimal(b []byte) (v float64, ok bool) {
	i, neg := 0, false
	if len(b) > 0 && (b[0] == '-' || b[0] == '+') {
		neg = b[0] == '-'
		i++
	}
	var m uint64
	digits, frac, dot := 0, 0, false
	for ; i < len(b); i++ {
		c := b[i]
		if c == '.' && !dot {
			dot = true
			continue
		}
		if c < '0' || c > '9' {
			break
		}
		if digits++; digits > 19 {
			return 0, false // m could overflow
		}
		m = m*10 + uint64(c-'0')
		if dot {
			frac++
		}
	}
	if digits == 0 || m > 1<<53 {
		return 0, false
	}
	exp := 0
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		eneg := false
		if i < len(b) && (b[i] == '-' || b[i] == '+') {
			eneg = b[i] == '-'
			i++
		}
		start := i
		for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
			if i-start >= 3 {
				return 0, false
			}
			exp = exp*10 + int(b[i]-'0')
		}
		if i == start {
			return 0, false
		}
		if eneg {
			exp = -exp
		}
	}
	if i != len(b) {
		return 0, false
	}
	v = float64(m)
	switch e := exp - frac; {
	case m == 0:
	case e >= 0 && e < len(exactPow10):
		v *= exactPow10[e]
	case e < 0 && -e < len(exactPow10):
		v /= exactPow10[-e]
	default:
		return 0, false
	}
	if neg {
		v = -v
	}
	return v, true
}

// exactPow10 are the powers of ten a float64 holds exactly.
var exactPow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// The kinds of line that start with '#'.
const (
	badComment = iota // one to leave to textparse
	comment           // carries nothing
	helpLine
	typeLine
)

// readComment reads a line starting with '#' (without its newline): a
// comment, or a HELP or TYPE line of the plain form
//
//	# HELP name text
//	# TYPE name counter|gauge|histogram|summary|untyped
//
// with valid UTF-8 help text that is not blank, which textparse accepts;
// for those it returns the name and the text, as textparse reads them
// (the help text with its escapes, if any, as written). Anything else
// starting with "# HELP" or "# TYPE" is a badComment.
func readComment(line []byte) (kind int, name, text []byte) {
	i := skipBlanks(line, 1)
	if i == 1 {
		return comment, nil, nil // "#text" is a comment
	}
	rest := line[i:]
	help, isType := bytes.HasPrefix(rest, []byte("HELP")), bytes.HasPrefix(rest, []byte("TYPE"))
	if !help && !isType || len(rest) == 4 || rest[4] != ' ' && rest[4] != '\t' {
		return comment, nil, nil // "# anything else" is a comment too
	}
	i = skipBlanks(line, i+4)
	if i == len(line) || !isNameStart(line[i]) {
		return badComment, nil, nil
	}
	start := i
	for i++; i < len(line) && isNameChar(line[i]); i++ {
	}
	name, text = line[start:i], line[i:]
	if len(text) < 2 || text[0] != ' ' {
		return badComment, nil, nil
	}
	text = text[1:]
	if help {
		if skipBlanks(text, 0) == len(text) || !utf8.Valid(text) {
			return badComment, nil, nil
		}
		return helpLine, name, text
	}
	// The types of metricType, listed again: calling it here measured
	// 74-75 against 56-59 µs a page (BENCHMARKS.md, 2026-12-06, later).
	switch string(text) {
	case "counter", "gauge", "histogram", "summary", "untyped":
		return typeLine, name, text
	}
	return badComment, nil, nil
}

// metricType returns textparse's reading of a type readComment accepts:
// "untyped" is unknown.
func metricType(text []byte) (model.MetricType, bool) {
	switch string(text) {
	case "counter":
		return model.MetricTypeCounter, true
	case "gauge":
		return model.MetricTypeGauge, true
	case "histogram":
		return model.MetricTypeHistogram, true
	case "summary":
		return model.MetricTypeSummary, true
	case "untyped":
		return model.MetricTypeUnknown, true
	}
	return "", false
}

// recordMeta records the metadata of a HELP or TYPE line, as the textparse
// path does.
func (l *loop) recordMeta(kind int, name, text []byte) {
	switch kind {
	case helpLine:
		l.s.meta.update(name, metaHelp, "", text)
	case typeLine:
		typ, _ := metricType(text)
		l.s.meta.update(name, metaType, typ, nil)
	}
}

func skipBlanks(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t') {
		i++
	}
	return i
}

func isNameStart(c byte) bool { return lineChars[c]&nameStart != 0 }

func isNameChar(c byte) bool { return lineChars[c]&nameChar != 0 }

// lineChars classifies bytes for sampleLine and readComment.
var lineChars = func() (t [256]uint8) {
	for c := range 256 {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_', c == ':':
			t[c] |= nameStart | nameChar
		case c >= '0' && c <= '9':
			t[c] |= nameChar
		case c == ' ', c == '\t', c == '{':
			t[c] |= valueEnd
		}
		if c == 'p' || c == 'P' || c == '_' {
			t[c] |= notInFloat
		}
	}
	return t
}()

const (
	nameStart  = 1 << iota // starts a metric name
	nameChar               // continues one
	valueEnd               // ends a sample's value
	notInFloat             // textparse refuses it in a value
)

// viewString views b as a string for a parse that does not keep it.
func viewString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// plainLabels appends to dst the labels of met, the bytes of a series in
// the text format, in name order with the metric name as __name__, and
// reports true if met has the plain form
//
//	name[{label="value",...[,]}]
//
// with blanks (spaces or tabs) at most inside the braces around the
// labels, the '=' and the commas, without escapes or quoted names, with
// values in UTF-8 and distinct label names. Such bytes are a series
// textparse accepts, and the labels are those its Labels method gives
// where typ is the type of the last TYPE line before the series (which
// makes textparse rewrite the le label of a histogram and the quantile of
// a summary: "1" becomes "1.0"); the strings view met, but for those
// rewritten. For any other form, and for such a label when typ is
// typeNotKnown, it reports false, for textparse to read the series.
// FuzzPlainLabels compares it with textparse.
func plainLabels(dst []labels.Label, met []byte, typ model.MetricType) ([]labels.Label, bool) {
	start := len(dst)
	i := 0
	for i < len(met) && isNameChar(met[i]) {
		i++
	}
	if i == 0 || !isNameStart(met[0]) {
		return dst, false
	}
	dst = append(dst, labels.Label{Name: model.MetricNameLabel, Value: viewString(met[:i])})
	if i == len(met) {
		return dst, true
	}
	if met[i] != '{' || met[len(met)-1] != '}' {
		return dst[:start], false
	}
	end := len(met) - 1
	in := met[:end] // inside the braces, for skipBlanks
	for i = skipBlanks(in, i+1); i < end; i = skipBlanks(in, i) {
		n := i
		for i < end && isNameChar(met[i]) && met[i] != ':' {
			i++
		}
		if i == n || !isNameStart(met[n]) {
			return dst[:start], false
		}
		name := viewString(met[n:i])
		if i = skipBlanks(in, i); i == end || met[i] != '=' {
			return dst[:start], false
		}
		if i = skipBlanks(in, i+1); i == end || met[i] != '"' {
			return dst[:start], false
		}
		i++
		v := i
		var high byte // any byte of the value beyond ASCII
		for i < end && met[i] != '"' && met[i] != '\\' {
			high |= met[i]
			i++
		}
		if i == end || met[i] != '"' || high >= utf8.RuneSelf && !utf8.Valid(met[v:i]) {
			return dst[:start], false
		}
		value := viewString(met[v:i])
		if name == model.BucketLabel || name == model.QuantileLabel {
			if typ == typeNotKnown {
				return dst[:start], false
			}
			if name == model.BucketLabel && typ == model.MetricTypeHistogram || name == model.QuantileLabel && typ == model.MetricTypeSummary {
				if f, err := strconv.ParseFloat(value, 64); err == nil {
					value = labels.FormatOpenMetricsFloat(f)
				}
			}
		}
		dst = append(dst, labels.Label{Name: name, Value: value})
		if i = skipBlanks(in, i+1); i < end {
			if met[i] != ',' {
				return dst[:start], false
			}
			i++
		}
	}
	// Insertion sort: a series has a few labels.
	ls := dst[start:]
	for j := 1; j < len(ls); j++ {
		for k := j; k > 0 && ls[k].Name < ls[k-1].Name; k-- {
			ls[k], ls[k-1] = ls[k-1], ls[k]
		}
	}
	for j := 1; j < len(ls); j++ {
		if ls[j].Name == ls[j-1].Name {
			return dst[:start], false
		}
	}
	return dst, true
}
