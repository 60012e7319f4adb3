package stage

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
)

type pair struct{ name, from string }

// sortedPairs turns a name -> source map into pairs sorted by name, an
// empty source meaning the name itself.
func sortedPairs(m map[string]string, what string, checkNames bool) ([]pair, error) {
	var out []pair
	var errs []error
	for n, v := range m {
		if checkNames && !model.LegacyValidation.IsValidLabelName(n) {
			errs = append(errs, fmt.Errorf("%s: invalid label name %q", what, n))
			continue
		}
		if v == "" {
			v = n
		}
		out = append(out, pair{n, v})
	}
	slices.SortFunc(out, func(a, b pair) int { return strings.Compare(a.name, b.name) })
	return out, errors.Join(errs...)
}

// Labels sets stream labels from extracted values, as stage.labels. Values
// maps label names to extracted names; an empty extracted name means the
// same name. Missing and empty values leave the label as it is.
type Labels struct {
	// Values maps label names to extracted names (empty: the same name).
	Values map[string]string

	pairs []pair
}

// Init checks the label names.
func (s *Labels) Init() (err error) {
	s.pairs, err = sortedPairs(s.Values, "labels", true)
	return err
}

// Process sets the labels.
func (s *Labels) Process(c *Context, e *ferry.Entry) bool {
	for _, p := range s.pairs {
		if v, ok := c.Extracted[p.from]; ok && v != "" {
			c.SetLabel(p.name, v)
		}
	}
	return true
}

// StructuredMetadata sets structured metadata (ferry.Entry.Metadata) from
// extracted values, as stage.structured_metadata. Values maps metadata
// names to extracted names; an empty extracted name means the same name.
// Missing and empty values are skipped.
type StructuredMetadata struct {
	// Values maps metadata names to extracted names (empty: the same name).
	Values map[string]string

	pairs []pair
	sb    labels.ScratchBuilder
}

// Init checks the names.
func (s *StructuredMetadata) Init() (err error) {
	s.pairs, err = sortedPairs(s.Values, "structured_metadata", true)
	s.sb = labels.NewScratchBuilder(len(s.pairs) + 4)
	return err
}

// Process sets the metadata.
func (s *StructuredMetadata) Process(c *Context, e *ferry.Entry) bool {
	n := 0
	for _, p := range s.pairs {
		if v, ok := c.Extracted[p.from]; ok && v != "" {
			n++
		}
	}
	if n == 0 {
		return true
	}
	s.sb.Reset()
	e.Metadata.Range(func(l labels.Label) {
		for _, p := range s.pairs {
			if v := c.Extracted[p.from]; p.name == l.Name && v != "" {
				return // replaced
			}
		}
		s.sb.Add(l.Name, l.Value)
	})
	for _, p := range s.pairs {
		if v, ok := c.Extracted[p.from]; ok && v != "" {
			s.sb.Add(p.name, v)
		}
	}
	s.sb.Sort()
	e.Metadata = s.sb.Labels()
	return true
}

// StaticLabels sets fixed stream labels, as stage.static_labels. An empty
// value removes the label.
type StaticLabels struct {
	// Values maps label names to values; an empty value removes the label.
	Values map[string]string

	pairs []pair
}

// Init checks the label names.
func (s *StaticLabels) Init() error {
	s.pairs = s.pairs[:0]
	for n, v := range s.Values {
		if !model.LegacyValidation.IsValidLabelName(n) {
			return fmt.Errorf("static_labels: invalid label name %q", n)
		}
		s.pairs = append(s.pairs, pair{n, v})
	}
	slices.SortFunc(s.pairs, func(a, b pair) int { return strings.Compare(a.name, b.name) })
	return nil
}

// Process sets the labels.
func (s *StaticLabels) Process(c *Context, e *ferry.Entry) bool {
	for _, p := range s.pairs {
		if p.from == "" {
			c.DelLabel(p.name)
		} else {
			c.SetLabel(p.name, p.from)
		}
	}
	return true
}

// LabelDrop removes stream labels by name, as stage.label_drop.
type LabelDrop struct {
	// Names are the labels to remove.
	Names []string
}

// Process removes the labels.
func (s *LabelDrop) Process(c *Context, e *ferry.Entry) bool {
	for _, n := range s.Names {
		c.DelLabel(n)
	}
	return true
}

// LabelKeep removes every stream label not named, as stage.label_keep
// (Promtail's labelallow).
type LabelKeep struct {
	// Names are the labels to keep.
	Names []string
}

// Process removes the other labels.
func (s *LabelKeep) Process(c *Context, e *ferry.Entry) bool {
	c.Labels(e).Range(func(l labels.Label) {
		if !slices.Contains(s.Names, l.Name) {
			c.DelLabel(l.Name)
		}
	})
	return true
}

// Output replaces the line with an extracted value, as stage.output. A
// missing value leaves the line unchanged.
type Output struct {
	// Source is the extracted value that becomes the line.
	Source string
}

// Init checks the configuration.
func (s *Output) Init() error {
	if s.Source == "" {
		return errors.New("output: empty Source")
	}
	return nil
}

// Process replaces the line.
func (s *Output) Process(c *Context, e *ferry.Entry) bool {
	if v, ok := c.Extracted[s.Source]; ok {
		e.Line = v
	}
	return true
}

// Timestamp sets the entry's timestamp from an extracted value, as
// stage.timestamp.
//
// Format is a Go layout (reference time Mon Jan 2 15:04:05 MST 2006) or
// one of the names ANSIC, UnixDate, RubyDate, RFC822, RFC822Z, RFC850,
// RFC1123, RFC1123Z, RFC3339, RFC3339Nano, Unix (seconds, with optional
// fraction), UnixMs, UnixUs, UnixNs. FallbackFormats are tried in order
// when Format fails. Location (an IANA zone name) applies to layouts
// without zone; a layout without year takes the current year.
//
// A value that is missing or matches no format is counted as
// "timestamp_unparsed"; with ActionOnFailure "fudge" (the default) the
// entry gets the last timestamp seen on its stream plus one nanosecond, if
// there is one; with "skip" it keeps its timestamp.
type Timestamp struct {
	// Source is the extracted value holding the time.
	Source string
	// Format is a layout or a format name (see above).
	Format string
	// FallbackFormats are tried in order when Format fails.
	FallbackFormats []string
	// Location is an IANA zone for layouts without zone; default UTC.
	Location string
	// ActionOnFailure is "fudge" (default) or "skip".
	ActionOnFailure string

	parsers []timeParse
	loc     *time.Location
	// The last good timestamp of each stream: of the stream of the last
	// entry that had one in cur and curT, of the others in last by label
	// hash. Most entries follow one of their own stream, and then only
	// cur is compared, not the labels hashed.
	cur    labels.Labels
	curT   time.Time
	curSet bool
	last   map[uint64]time.Time
}

var namedLayouts = map[string]string{
	"ANSIC": time.ANSIC, "UnixDate": time.UnixDate, "RubyDate": time.RubyDate,
	"RFC822": time.RFC822, "RFC822Z": time.RFC822Z, "RFC850": time.RFC850,
	"RFC1123": time.RFC1123, "RFC1123Z": time.RFC1123Z,
	"RFC3339": time.RFC3339, "RFC3339Nano": time.RFC3339Nano,
}

// Init compiles the formats.
func (s *Timestamp) Init() error {
	if s.Source == "" || s.Format == "" {
		return errors.New("timestamp: Source and Format are required")
	}
	switch s.ActionOnFailure {
	case "":
		s.ActionOnFailure = "fudge"
	case "fudge", "skip":
	default:
		return fmt.Errorf("timestamp: ActionOnFailure %q is neither fudge nor skip", s.ActionOnFailure)
	}
	s.loc = time.UTC
	if s.Location != "" {
		loc, err := time.LoadLocation(s.Location)
		if err != nil {
			return fmt.Errorf("timestamp: %w", err)
		}
		s.loc = loc
	}
	s.parsers = nil
	for _, f := range append([]string{s.Format}, s.FallbackFormats...) {
		s.parsers = append(s.parsers, timeParser(f, s.loc))
	}
	s.last = map[uint64]time.Time{}
	s.cur, s.curT, s.curSet = labels.EmptyLabels(), time.Time{}, false
	return nil
}

// timeParse parses a timestamp in one format; c holds the clock of RFC
// 3339 timestamps.
type timeParse func(c *Context, v string) (time.Time, error)

func timeParser(format string, loc *time.Location) timeParse {
	unix := func(conv func(int64) time.Time) timeParse {
		return func(_ *Context, v string) (time.Time, error) {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return time.Time{}, err
			}
			return conv(n).UTC(), nil
		}
	}
	switch format {
	case "Unix":
		return func(_ *Context, v string) (time.Time, error) {
			if i := strings.IndexByte(v, '.'); i >= 0 {
				sec, err := strconv.ParseInt(v[:i], 10, 64)
				frac := v[i+1:]
				if err != nil || frac == "" || len(frac) > 9 || frac[0] == '+' || frac[0] == '-' {
					return time.Time{}, fmt.Errorf("bad Unix time %q", v)
				}
				ns, err := strconv.ParseUint(frac, 10, 32)
				if err != nil {
					return time.Time{}, fmt.Errorf("bad Unix time %q", v)
				}
				for k := len(frac); k < 9; k++ {
					ns *= 10
				}
				if sec < 0 {
					return time.Unix(sec, -int64(ns)).UTC(), nil
				}
				return time.Unix(sec, int64(ns)).UTC(), nil
			}
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return time.Time{}, err
			}
			return time.Unix(n, 0).UTC(), nil
		}
	case "UnixMs":
		return unix(time.UnixMilli)
	case "UnixUs":
		return unix(time.UnixMicro)
	case "UnixNs":
		return unix(func(n int64) time.Time { return time.Unix(0, n) })
	}
	layout := format
	if l, ok := namedLayouts[format]; ok {
		layout = l
	}
	rfc3339 := layout == time.RFC3339 || layout == time.RFC3339Nano
	return func(c *Context, v string) (t time.Time, err error) {
		if rfc3339 {
			t, err = c.clock.ParseInLocation(v, loc)
		} else {
			t, err = time.ParseInLocation(layout, v, loc)
		}
		if err != nil {
			return t, err
		}
		if t.Year() == 0 {
			now := time.Now().In(loc)
			t = t.AddDate(now.Year(), 0, 0)
		}
		return t, nil
	}
}

// Process sets the timestamp.
func (s *Timestamp) Process(c *Context, e *ferry.Entry) bool {
	v, ok := c.Extracted[s.Source]
	if ok {
		for _, p := range s.parsers {
			if t, err := p(c, v); err == nil {
				e.Timestamp = t
				if s.ActionOnFailure == "fudge" {
					s.remember(c, e, t)
				}
				return true
			}
		}
	}
	c.Failed("timestamp_unparsed")
	if s.ActionOnFailure == "fudge" {
		s.fudge(c, e)
	}
	return true
}

// remember keeps t as the last good timestamp of e's stream.
func (s *Timestamp) remember(c *Context, e *ferry.Entry, t time.Time) {
	ls := c.Labels(e)
	if !s.curSet || !labels.Equal(ls, s.cur) {
		if s.curSet {
			s.keep(s.cur.Hash(), s.curT)
		}
		s.cur, s.curSet = ls, true
	}
	s.curT = t
}

// fudge gives e the last timestamp of its stream plus one nanosecond, if
// its stream has had one, and keeps that as the stream's last.
func (s *Timestamp) fudge(c *Context, e *ferry.Entry) {
	ls := c.Labels(e)
	if s.curSet && labels.Equal(ls, s.cur) {
		s.curT = s.curT.Add(time.Nanosecond)
		e.Timestamp = s.curT
		return
	}
	key := ls.Hash()
	if last, ok := s.last[key]; ok {
		e.Timestamp = last.Add(time.Nanosecond)
		s.last[key] = e.Timestamp
	}
}

// keep stores the last timestamp t of the stream whose labels hash to
// key, forgetting all streams once 10000 are kept.
func (s *Timestamp) keep(key uint64, t time.Time) {
	if len(s.last) >= 10000 {
		clear(s.last)
	}
	s.last[key] = t
}

// templateFuncs are the functions templates may call, as in Promtail's
// template stage.
var templateFuncs = template.FuncMap{
	"ToLower":    strings.ToLower,
	"ToUpper":    strings.ToUpper,
	"Replace":    strings.Replace,
	"Trim":       strings.Trim,
	"TrimLeft":   strings.TrimLeft,
	"TrimRight":  strings.TrimRight,
	"TrimPrefix": strings.TrimPrefix,
	"TrimSuffix": strings.TrimSuffix,
	"TrimSpace":  strings.TrimSpace,
	"Contains":   strings.Contains,
	"HasPrefix":  strings.HasPrefix,
	"HasSuffix":  strings.HasSuffix,
	"regexReplaceAll": func(re, s, repl string) (string, error) {
		r, err := regexp.Compile(re)
		if err != nil {
			return "", err
		}
		return r.ReplaceAllString(s, repl), nil
	},
	"regexReplaceAllLiteral": func(re, s, repl string) (string, error) {
		r, err := regexp.Compile(re)
		if err != nil {
			return "", err
		}
		return r.ReplaceAllLiteralString(s, repl), nil
	},
}

// Template sets an extracted value from a Go text/template, as
// stage.template. The template sees every extracted value by name and the
// current value of Source as .Value, and may call ToLower, ToUpper,
// Replace, Trim, TrimLeft, TrimRight, TrimPrefix, TrimSuffix, TrimSpace,
// Contains, HasPrefix, HasSuffix, regexReplaceAll and
// regexReplaceAllLiteral. The result is stored under Source. A template
// that fails on an entry leaves the value unchanged and is counted as
// "template_failed".
type Template struct {
	// Source is the extracted value to set (and .Value in the template).
	Source string
	// Template is the text/template source.
	Template string

	t    *template.Template
	data map[string]any
	buf  bytes.Buffer
}

// Init parses the template.
func (s *Template) Init() error {
	if s.Source == "" {
		return errors.New("template: empty Source")
	}
	t, err := template.New("stage").Funcs(templateFuncs).Option("missingkey=zero").Parse(s.Template)
	if err != nil {
		return fmt.Errorf("template: %w", err)
	}
	s.t, s.data = t, map[string]any{}
	return nil
}

// Process runs the template.
func (s *Template) Process(c *Context, e *ferry.Entry) bool {
	clear(s.data)
	for k, v := range c.Extracted {
		s.data[k] = v
	}
	if v, ok := c.Extracted[s.Source]; ok {
		s.data["Value"] = v
	}
	s.buf.Reset()
	if err := s.t.Execute(&s.buf, s.data); err != nil {
		c.Failed("template_failed")
		return true
	}
	c.Extracted[s.Source] = c.text.String(s.buf.Bytes())
	return true
}

// Replace rewrites parts of the line (or of the extracted value Source)
// matched by a regular expression, as stage.replace: every capture group
// of every match is replaced by Replace, in which "{{ .Value }}" stands for
// the captured text; an expression without groups has its whole matches
// replaced. Named groups are also extracted, from the first match. A line
// without match passes unchanged (not counted).
type Replace struct {
	// Expression is the regular expression (RE2) to find.
	Expression string
	// Source is the extracted value to rewrite; empty means the line.
	Source string
	// Replace is the replacement, with {{ .Value }} for the captured text.
	Replace string

	re    *regexp.Regexp
	parts []string // Replace split around {{ .Value }}
	buf   []byte
}

var valueRef = regexp.MustCompile(`\{\{\s*\.Value\s*\}\}`)

// Init compiles the expression.
func (s *Replace) Init() error {
	re, err := regexp.Compile(s.Expression)
	if err != nil {
		return fmt.Errorf("replace: %w", err)
	}
	s.re = re
	s.parts = valueRef.Split(s.Replace, -1)
	return nil
}

func (s *Replace) render(value string) {
	for i, p := range s.parts {
		if i > 0 {
			s.buf = append(s.buf, value...)
		}
		s.buf = append(s.buf, p...)
	}
}

// Process rewrites the text.
func (s *Replace) Process(c *Context, e *ferry.Entry) bool {
	src, ok := source(c, e, s.Source)
	if !ok {
		return true
	}
	ms := s.re.FindAllStringSubmatchIndex(src, -1)
	if ms == nil {
		return true
	}
	for i, n := range s.re.SubexpNames() {
		if n != "" && ms[0][2*i] >= 0 {
			c.Extracted[n] = src[ms[0][2*i]:ms[0][2*i+1]]
		}
	}
	s.buf = s.buf[:0]
	last := 0
	for _, m := range ms {
		if len(m) == 2 {
			s.buf = append(s.buf, src[last:m[0]]...)
			s.render(src[m[0]:m[1]])
			last = m[1]
			continue
		}
		for g := 1; g < len(m)/2; g++ {
			a, b := m[2*g], m[2*g+1]
			if a < 0 || a < last {
				continue
			}
			s.buf = append(s.buf, src[last:a]...)
			s.render(src[a:b])
			last = b
		}
	}
	s.buf = append(s.buf, src[last:]...)
	out := c.text.String(s.buf)
	if s.Source == "" {
		e.Line = out
	} else {
		c.Extracted[s.Source] = out
	}
	return true
}

// Decolorize removes ANSI escape sequences (colours, cursor movement) from
// the line, as stage.decolorize. A line without ESC is not copied.
type Decolorize struct {
	buf []byte
}

// Process cleans the line.
func (s *Decolorize) Process(c *Context, e *ferry.Entry) bool {
	if strings.IndexByte(e.Line, 0x1b) < 0 {
		return true
	}
	s.buf = stripANSI(s.buf[:0], e.Line)
	e.Line = c.text.String(s.buf)
	return true
}

// stripANSI appends to b the line without its CSI sequences (ESC [ params
// intermediates final), OSC sequences (ESC ] ... BEL or ESC \) and
// two-byte escapes.
func stripANSI(b []byte, line string) []byte {
	for i := 0; i < len(line); {
		c := line[i]
		if c != 0x1b {
			b = append(b, c)
			i++
			continue
		}
		if i+1 >= len(line) {
			i++
			continue
		}
		switch line[i+1] {
		case '[':
			j := i + 2
			for j < len(line) && line[j] >= 0x30 && line[j] <= 0x3f {
				j++
			}
			for j < len(line) && line[j] >= 0x20 && line[j] <= 0x2f {
				j++
			}
			if j < len(line) && line[j] >= 0x40 && line[j] <= 0x7e {
				j++
			}
			i = j
		case ']':
			j := i + 2
			for j < len(line) {
				if line[j] == 0x07 {
					j++
					break
				}
				if line[j] == 0x1b && j+1 < len(line) && line[j+1] == '\\' {
					j += 2
					break
				}
				j++
			}
			i = j
		default:
			i += 2
		}
	}
	return b
}
