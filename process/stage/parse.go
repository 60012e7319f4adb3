package stage

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/ferrydev/ferry"
)

// source returns the text a stage works on: the line, or an extracted
// value when name is set.
func source(c *Context, e *ferry.Entry, name string) (string, bool) {
	if name == "" {
		return e.Line, true
	}
	v, ok := c.Extracted[name]
	return v, ok
}

// JSON extracts values from a JSON object, as loki.process's stage.json.
//
// Expressions maps extracted names to paths: member names separated by
// dots, quoted names for other characters, and [n] array indexes
// ("user.roles[0]"). An empty path means the member of the same name. With
// no expressions at all, every top-level member is extracted. Strings are
// extracted unquoted, numbers and booleans as written, objects and arrays
// as their JSON text; null and missing members extract nothing.
//
// An entry whose source is not a JSON object passes unchanged, counted as
// "json_malformed" in Processor.Failures, or is dropped with that reason
// when DropMalformed is set. A missing Source value is not an error.
type JSON struct {
	// Expressions maps extracted names to JSON paths.
	Expressions map[string]string
	// Source is the extracted value to parse; empty means the line.
	Source string
	// DropMalformed drops entries that are not JSON objects.
	DropMalformed bool

	exprs   []jsonExpr
	byFirst keyIndex[int] // expressions by their first key
	rooted  []int         // expressions starting with an array index
}

type jsonExpr struct {
	name  string
	steps []pathStep
}

// Init compiles the paths.
func (s *JSON) Init() error {
	s.exprs, s.rooted, s.byFirst = nil, nil, keyIndex[int]{}
	var errs []error
	for name, path := range s.Expressions {
		if name == "" {
			errs = append(errs, errors.New("json: empty extracted name"))
			continue
		}
		if path == "" {
			path = name
			if strings.ContainsAny(name, `.["`) {
				path = `"` + strings.ReplaceAll(name, `"`, `\"`) + `"`
			}
		}
		steps, err := parsePath(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("json: %s: %w", name, err))
			continue
		}
		s.exprs = append(s.exprs, jsonExpr{name: name, steps: steps})
		i := len(s.exprs) - 1
		if steps[0].index >= 0 {
			s.rooted = append(s.rooted, i)
		} else {
			s.byFirst.add(steps[0].key, i)
		}
	}
	return errors.Join(errs...)
}

// Process extracts the values.
func (s *JSON) Process(c *Context, e *ferry.Entry) bool {
	src, ok := source(c, e, s.Source)
	if !ok {
		return true
	}
	var it objIter
	it.init(src)
	all := len(s.exprs) == 0
	for key, raw, more := it.next(); more; key, raw, more = it.next() {
		if all {
			if v, ok := jsonValue(raw, &c.text); ok {
				c.Extracted[it.keyString(key)] = v
			}
			continue
		}
		for _, i := range s.byFirst.get(it.keyString(key)) {
			x := &s.exprs[i]
			inner, found := lookup(raw, x.steps[1:])
			if !found {
				continue
			}
			if v, ok := jsonValue(inner, &c.text); ok {
				c.Extracted[x.name] = v
			}
		}
	}
	if !it.valid() {
		if !all {
			for _, x := range s.exprs {
				delete(c.Extracted, x.name)
			}
		}
		return fail(c, "json_malformed", s.DropMalformed)
	}
	for _, i := range s.rooted {
		x := &s.exprs[i]
		if raw, found := lookup(src, x.steps); found {
			if v, ok := jsonValue(raw, &c.text); ok {
				c.Extracted[x.name] = v
			}
		}
	}
	return true
}

// fail counts an entry a stage could not handle and says whether it stays.
func fail(c *Context, reason string, drop bool) bool {
	if drop {
		c.Dropped(reason)
		return false
	}
	c.Failed(reason)
	return true
}

// Logfmt extracts values from a logfmt line (key=value key2="quoted
// value"), as stage.logfmt.
//
// Mapping maps extracted names to logfmt keys; an empty key means the same
// name. With no mapping, every key is extracted. When a key repeats, the
// last value wins. A line that is not valid logfmt keeps what was
// extracted before the error and is counted as "logfmt_malformed", or
// dropped with that reason when DropMalformed is set.
type Logfmt struct {
	// Mapping maps extracted names to logfmt keys.
	Mapping map[string]string
	// Source is the extracted value to parse; empty means the line.
	Source string
	// DropMalformed drops lines that are not valid logfmt.
	DropMalformed bool

	keys keyIndex[string]
}

// Init builds the key index.
func (s *Logfmt) Init() error {
	s.keys = keyIndex[string]{}
	for name, key := range s.Mapping {
		if name == "" {
			return errors.New("logfmt: empty extracted name")
		}
		if key == "" {
			key = name
		}
		s.keys.add(key, name)
	}
	return nil
}

// Process extracts the values.
func (s *Logfmt) Process(c *Context, e *ferry.Entry) bool {
	src, ok := source(c, e, s.Source)
	if !ok {
		return true
	}
	var it logfmtIter
	it.init(src)
	all := s.keys.len() == 0
	for key, val, ok := it.next(); ok; key, val, ok = it.next() {
		if all {
			c.Extracted[key] = val
			continue
		}
		for _, name := range s.keys.get(key) {
			c.Extracted[name] = val
		}
	}
	if it.err {
		return fail(c, "logfmt_malformed", s.DropMalformed)
	}
	return true
}

// keyIndex finds what a stage does with a parsed key: the names it
// extracts it as (Logfmt), the expressions that start with it (JSON). Most
// stages name a few keys, and a line has several that are not among them:
// up to keyIndexLinear keys are compared in a slice, where a Go string
// comparison rejects most on their length, about a tenth of the cost of
// hashing the key for a map lookup; more keys go to a map.
type keyIndex[V any] struct {
	keys  []string
	vals  [][]V // vals[i] are those of keys[i]
	byKey map[string][]V
}

const keyIndexLinear = 8

func (x *keyIndex[V]) len() int { return len(x.keys) }

// add appends v to those of key.
func (x *keyIndex[V]) add(key string, v V) {
	i := slices.Index(x.keys, key)
	if i < 0 {
		i = len(x.keys)
		x.keys = append(x.keys, key)
		x.vals = append(x.vals, nil)
	}
	x.vals[i] = append(x.vals[i], v)
	switch {
	case x.byKey != nil:
		x.byKey[key] = x.vals[i]
	case len(x.keys) > keyIndexLinear:
		x.byKey = make(map[string][]V, len(x.keys))
		for i, k := range x.keys {
			x.byKey[k] = x.vals[i]
		}
	}
}

// get returns the values of key, nil if it has none.
func (x *keyIndex[V]) get(key string) []V {
	if x.byKey != nil {
		return x.byKey[key]
	}
	for i, k := range x.keys {
		if k == key {
			return x.vals[i]
		}
	}
	return nil
}

// Regex extracts the named groups of a regular expression (RE2 syntax), as
// stage.regex. Unnamed groups are ignored. Groups that did not take part
// in the match extract nothing.
//
// An entry the expression does not match passes unchanged, counted as
// "regex_unmatched", or is dropped with that reason when DropUnmatched is
// set.
type Regex struct {
	// Expression must have at least one named group.
	Expression string
	// Source is the extracted value to match; empty means the line.
	Source string
	// DropUnmatched drops entries that do not match.
	DropUnmatched bool

	re    *regexp.Regexp
	names []string
	idx   []int
}

// Init compiles the expression.
func (s *Regex) Init() error {
	re, err := regexp.Compile(s.Expression)
	if err != nil {
		return fmt.Errorf("regex: %w", err)
	}
	s.re = re
	for i, n := range re.SubexpNames() {
		if n != "" {
			s.names = append(s.names, n)
			s.idx = append(s.idx, i)
		}
	}
	if len(s.names) == 0 {
		return errors.New("regex: the expression has no named group")
	}
	return nil
}

// Process extracts the groups.
func (s *Regex) Process(c *Context, e *ferry.Entry) bool {
	src, ok := source(c, e, s.Source)
	if !ok {
		return true
	}
	m := s.re.FindStringSubmatchIndex(src)
	if m == nil {
		return fail(c, "regex_unmatched", s.DropUnmatched)
	}
	for k, i := range s.idx {
		if m[2*i] >= 0 {
			c.Extracted[s.names[k]] = src[m[2*i]:m[2*i+1]]
		}
	}
	return true
}

// Docker parses lines of Docker's json-file log driver,
// {"log":"hello\n","stream":"stderr","time":"2019-04-30T02:12:41.8443515Z"},
// as stage.docker: the line becomes the log text without its trailing
// newline, the label "stream" is set, the timestamp is the time field.
// Extracted: "output", "stream", "timestamp".
//
// A line that is not such an object passes unchanged, counted as
// "docker_malformed", or is dropped with that reason when DropMalformed is
// set.
type Docker struct {
	// DropMalformed drops lines that are not Docker JSON log lines.
	DropMalformed bool
}

// Process parses the line.
func (s *Docker) Process(c *Context, e *ferry.Entry) bool {
	var it objIter
	it.init(e.Line)
	var logRaw, stream, ts string
	for key, raw, ok := it.next(); ok; key, raw, ok = it.next() {
		switch {
		case it.keyIs(key, "log"):
			logRaw = raw
		case it.keyIs(key, "stream"):
			stream, _ = jsonValue(raw, &c.text)
		case it.keyIs(key, "time"):
			ts, _ = jsonValue(raw, &c.text)
		}
	}
	if !it.valid() || logRaw == "" || logRaw[0] != '"' {
		return fail(c, "docker_malformed", s.DropMalformed)
	}
	t, err := c.clock.Parse(ts)
	if err != nil {
		return fail(c, "docker_malformed", s.DropMalformed)
	}
	line, _ := unquoteJSON(logRaw, &c.text)
	line = strings.TrimSuffix(line, "\n")
	line = strings.TrimSuffix(line, "\r")
	e.Line, e.Timestamp = line, t
	c.Extracted["output"], c.Extracted["timestamp"] = line, ts
	if stream != "" {
		c.Extracted["stream"] = stream
		c.SetLabel("stream", stream)
	}
	return true
}

// CRI parses lines of the CRI log format used by containerd and CRI-O,
// "2019-04-30T02:12:41.8443515Z stdout F message", as stage.cri: the line
// becomes the message, the label "stream" is set, the timestamp is the
// first field. Extracted: "content", "stream", "flags", "timestamp".
//
// Partial lines (flag P) are joined with the lines that follow up to the
// final one (flag F), per stream: held partials keep their batches'
// acknowledgements open until the joined line is handed on. At most
// MaxPartialLines partials are joined (default 100); more, or partials
// older than MaxPartialWait (default 5s) at a Flush, are handed on as they
// are. MaxPartialLineSize, if set, truncates each partial.
//
// A line that is not in CRI format passes unchanged, counted as
// "cri_malformed", or is dropped with that reason when DropMalformed is
// set.
type CRI struct {
	// MaxPartialLines bounds the partials joined into one line; default 100.
	MaxPartialLines int
	// MaxPartialLineSize, if positive, truncates each partial to that many bytes.
	MaxPartialLineSize int
	// MaxPartialWait is how long partials wait for their final line; default 5s.
	MaxPartialWait time.Duration
	// DropMalformed drops lines not in CRI format.
	DropMalformed bool

	partial map[uint64]*held
}

type held struct {
	entry ferry.Entry
	buf   []byte
	n     int
	acks  []*ferry.Ack
	since time.Time
}

func (h *held) hold(c *Context) {
	a := c.ack
	if a == nil {
		return
	}
	if n := len(h.acks); n > 0 && h.acks[n-1] == a {
		return
	}
	h.acks = append(h.acks, c.Hold())
}

func (h *held) release() *ferry.Ack {
	return ferry.JoinAcks(h.acks...)
}

// Init sets the defaults.
func (s *CRI) Init() error {
	if s.MaxPartialLines < 0 || s.MaxPartialLineSize < 0 || s.MaxPartialWait < 0 {
		return errors.New("cri: negative limit")
	}
	if s.MaxPartialLines == 0 {
		s.MaxPartialLines = 100
	}
	if s.MaxPartialWait == 0 {
		s.MaxPartialWait = 5 * time.Second
	}
	s.partial = map[uint64]*held{}
	return nil
}

// parseCRI splits a CRI log line.
func parseCRI(line string) (ts, stream, flags, content string, ok bool) {
	i := strings.IndexByte(line, ' ')
	if i <= 0 {
		return
	}
	ts, line = line[:i], line[i+1:]
	i = strings.IndexByte(line, ' ')
	if i <= 0 {
		return
	}
	stream, line = line[:i], line[i+1:]
	if stream != "stdout" && stream != "stderr" {
		return
	}
	i = strings.IndexByte(line, ' ')
	if i < 0 {
		// "ts stream F" with empty content.
		flags, line = line, ""
	} else {
		flags, line = line[:i], line[i+1:]
	}
	if flags == "" || flags[0] != 'F' && flags[0] != 'P' {
		return
	}
	return ts, stream, flags, line, true
}

// Process parses the line and joins partial lines.
func (s *CRI) Process(c *Context, e *ferry.Entry) bool {
	ts, stream, flags, content, ok := parseCRI(e.Line)
	if !ok {
		return fail(c, "cri_malformed", s.DropMalformed)
	}
	t, err := c.clock.Parse(ts)
	if err != nil {
		return fail(c, "cri_malformed", s.DropMalformed)
	}
	c.SetLabel("stream", stream)
	// A stream's key is needed only for a partial line or while some
	// stream has partials held: a full line with none held, nearly every
	// line, skips hashing its labels.
	var (
		key uint64
		h   *held
	)
	if flags[0] == 'P' || len(s.partial) > 0 {
		key = c.Labels(e).Hash()
		h = s.partial[key]
	}
	if flags[0] == 'P' {
		if s.MaxPartialLineSize > 0 && len(content) > s.MaxPartialLineSize {
			content = content[:s.MaxPartialLineSize]
		}
		if h == nil {
			h = &held{entry: *e, since: c.now}
			h.entry.Timestamp = t
			s.partial[key] = h
		}
		h.buf = append(h.buf, content...)
		h.n++
		h.hold(c)
		if h.n >= s.MaxPartialLines {
			s.emit(c, key, h)
		}
		return false
	}
	if h != nil {
		h.buf = append(h.buf, content...)
		content = c.text.String(h.buf)
		t = h.entry.Timestamp
		c.Attach(h.release())
		delete(s.partial, key)
	}
	e.Line, e.Timestamp = content, t
	c.Extracted["content"], c.Extracted["stream"] = content, stream
	c.Extracted["flags"], c.Extracted["timestamp"] = flags, ts
	return true
}

func (s *CRI) emit(c *Context, key uint64, h *held) {
	e := h.entry
	e.Line = c.text.String(h.buf)
	c.Emit(e, h.release())
	delete(s.partial, key)
}

// Flush hands on partial lines that waited longer than MaxPartialWait.
func (s *CRI) Flush(c *Context, now time.Time, all bool) {
	for key, h := range s.partial {
		if all || now.Sub(h.since) >= s.MaxPartialWait {
			s.emit(c, key, h)
		}
	}
}
