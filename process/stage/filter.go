package stage

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/prometheus/prometheus/model/labels"
	"golang.org/x/time/rate"
)

// Drop removes entries, as stage.drop. Every condition that is set must
// hold for the entry to be dropped:
//
//   - Source names extracted values (joined with Separator, default ";");
//     without Value or Expression, the entry is dropped when they are all
//     present. A missing value means no drop.
//   - Value: the source equals it.
//   - Expression: a regular expression that matches the source, or the
//     line when Source is empty.
//   - OlderThan: the entry's timestamp is older than that.
//   - LongerThan: the line is longer than that many bytes.
//
// Dropped entries are counted with Reason (default "drop_stage").
type Drop struct {
	// Source names the extracted values to test.
	Source []string
	// Separator joins several Source values; default ";".
	Separator string
	// Value is compared with the source.
	Value string
	// Expression is matched against the source or the line.
	Expression string
	// OlderThan drops entries with older timestamps.
	OlderThan time.Duration
	// LongerThan drops lines longer than that many bytes.
	LongerThan int
	// Reason is the drop reason counted; default "drop_stage".
	Reason string

	re  *regexp.Regexp
	buf []byte
}

// Init compiles the expression.
func (s *Drop) Init() error {
	if s.Expression != "" {
		re, err := regexp.Compile(s.Expression)
		if err != nil {
			return fmt.Errorf("drop: %w", err)
		}
		s.re = re
	}
	if s.Value != "" && s.re != nil {
		return errors.New("drop: Value and Expression exclude each other")
	}
	if (s.Value != "") && len(s.Source) == 0 {
		return errors.New("drop: Value needs Source")
	}
	if len(s.Source) == 0 && s.re == nil && s.OlderThan <= 0 && s.LongerThan <= 0 {
		return errors.New("drop: no condition")
	}
	if s.Separator == "" {
		s.Separator = ";"
	}
	if s.Reason == "" {
		s.Reason = "drop_stage"
	}
	return nil
}

// Process drops the entry if every condition holds.
func (s *Drop) Process(c *Context, e *ferry.Entry) bool {
	if s.OlderThan > 0 && !e.Timestamp.Before(c.now.Add(-s.OlderThan)) {
		return true
	}
	if s.LongerThan > 0 && len(e.Line) <= s.LongerThan {
		return true
	}
	subject := e.Line
	if len(s.Source) > 0 {
		if len(s.Source) == 1 {
			v, ok := c.Extracted[s.Source[0]]
			if !ok {
				return true
			}
			subject = v
		} else {
			s.buf = s.buf[:0]
			for i, name := range s.Source {
				v, ok := c.Extracted[name]
				if !ok {
					return true
				}
				if i > 0 {
					s.buf = append(s.buf, s.Separator...)
				}
				s.buf = append(s.buf, v...)
			}
			subject = string(s.buf)
		}
		if s.Value != "" && subject != s.Value {
			return true
		}
	}
	if s.re != nil && !s.re.MatchString(subject) {
		return true
	}
	c.Dropped(s.Reason)
	return false
}

// ParseSelector parses a stream selector such as
// {app="web", level=~"warn|error", env!="dev"} into matchers. Values are
// double-quoted (Go escapes) or back-quoted; regular expressions are fully
// anchored, as in Prometheus and Loki.
func ParseSelector(sel string) ([]*labels.Matcher, error) {
	s := strings.TrimSpace(sel)
	if len(s) < 2 || s[0] != '{' || s[len(s)-1] != '}' {
		return nil, fmt.Errorf("selector %q: must be {...}", sel)
	}
	s = s[1 : len(s)-1]
	var out []*labels.Matcher
	i := 0
	skip := func() {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n') {
			i++
		}
	}
	for {
		skip()
		if i >= len(s) {
			break
		}
		j := i
		for j < len(s) && (s[j] == '_' || s[j] >= 'a' && s[j] <= 'z' || s[j] >= 'A' && s[j] <= 'Z' || j > i && s[j] >= '0' && s[j] <= '9') {
			j++
		}
		if j == i {
			return nil, fmt.Errorf("selector %q: expected a label name at %d", sel, i+1)
		}
		name := s[i:j]
		i = j
		skip()
		var mt labels.MatchType
		switch {
		case strings.HasPrefix(s[i:], "=~"):
			mt, i = labels.MatchRegexp, i+2
		case strings.HasPrefix(s[i:], "!~"):
			mt, i = labels.MatchNotRegexp, i+2
		case strings.HasPrefix(s[i:], "!="):
			mt, i = labels.MatchNotEqual, i+2
		case strings.HasPrefix(s[i:], "="):
			mt, i = labels.MatchEqual, i+1
		default:
			return nil, fmt.Errorf("selector %q: expected =, !=, =~ or !~ after %s", sel, name)
		}
		skip()
		if i >= len(s) || s[i] != '"' && s[i] != '`' {
			return nil, fmt.Errorf("selector %q: expected a quoted value for %s", sel, name)
		}
		q := s[i]
		j = i + 1
		for j < len(s) && s[j] != q {
			if q == '"' && s[j] == '\\' {
				j++
			}
			j++
		}
		if j >= len(s) {
			return nil, fmt.Errorf("selector %q: unterminated value for %s", sel, name)
		}
		val, err := strconv.Unquote(s[i : j+1])
		if err != nil {
			return nil, fmt.Errorf("selector %q: value of %s: %w", sel, name, err)
		}
		i = j + 1
		m, err := labels.NewMatcher(mt, name, val)
		if err != nil {
			return nil, fmt.Errorf("selector %q: %w", sel, err)
		}
		out = append(out, m)
		skip()
		if i < len(s) {
			if s[i] != ',' {
				return nil, fmt.Errorf("selector %q: expected , at %d", sel, i+1)
			}
			i++
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("selector %q: no matcher", sel)
	}
	return out, nil
}

// MatchAction says what Match does with matching entries.
type MatchAction int

const (
	// RunStages runs the nested stages on matching entries (the default).
	RunStages MatchAction = iota
	// DropMatching drops matching entries, counted with DropReason.
	DropMatching
)

// Match runs Stages only on entries whose stream labels match Selector, or
// drops them, as stage.match. Entries that do not match pass unchanged.
// Nested stages share the entry's extracted values. Entries emitted by a
// nested stage (Multiline inside Match) continue after the Match stage.
type Match struct {
	// Selector is a stream selector, {name="value", ...}.
	Selector string
	// Stages run on matching entries.
	Stages []Stage
	// Action is RunStages or DropMatching.
	Action MatchAction
	// DropReason is counted for dropped entries; default "match_stage".
	DropReason string

	matchers []*labels.Matcher
}

// Init parses the selector and initialises the nested stages.
func (s *Match) Init() error {
	m, err := ParseSelector(s.Selector)
	if err != nil {
		return fmt.Errorf("match: %w", err)
	}
	s.matchers = m
	if s.DropReason == "" {
		s.DropReason = "match_stage"
	}
	if s.Action == RunStages && len(s.Stages) == 0 {
		return errors.New("match: no stages to run")
	}
	var errs []error
	for i, st := range s.Stages {
		if st == nil {
			errs = append(errs, fmt.Errorf("match: stage %d: nil", i))
			continue
		}
		if in, ok := st.(Initializer); ok {
			if err := in.Init(); err != nil {
				errs = append(errs, fmt.Errorf("match: stage %d (%T): %w", i, st, err))
			}
		}
	}
	return errors.Join(errs...)
}

// Process matches and runs the stages.
func (s *Match) Process(c *Context, e *ferry.Entry) bool {
	ls := c.Labels(e)
	for _, m := range s.matchers {
		if !m.Matches(ls.Get(m.Name)) {
			return true
		}
	}
	if s.Action == DropMatching {
		c.Dropped(s.DropReason)
		return false
	}
	for _, st := range s.Stages {
		if !st.Process(c, e) {
			return false
		}
	}
	return true
}

// Flush flushes nested stages that hold entries.
func (s *Match) Flush(c *Context, now time.Time, all bool) {
	for _, st := range s.Stages {
		if f, ok := st.(FlushStage); ok {
			f.Flush(c, now, all)
		}
	}
}

// Limit bounds the rate of entries, as stage.limit: Rate entries per
// second with bursts of Burst, for all entries, or per stream (PerStream:
// per distinct label set), or per value of the stream label ByLabel. At
// most MaxStreams streams or values (default 10000) get their own limiter;
// beyond that, new ones share one. With Drop, entries over the limit
// are dropped and counted as "rate_limited"; without, the pipeline blocks
// until they may pass (backpressure up to the source).
type Limit struct {
	// Rate is the steady rate in entries per second.
	Rate float64
	// Burst is how many entries may pass at once.
	Burst int
	// ByLabel, if set, limits each value of this stream label separately.
	ByLabel string
	// PerStream limits each stream (label set) separately.
	PerStream bool
	// Drop drops entries over the limit instead of waiting.
	Drop bool
	// MaxStreams bounds the distinct ByLabel values; default 10000.
	MaxStreams int

	all      *rate.Limiter
	byValue  map[string]*rate.Limiter
	byStream map[uint64]*rate.Limiter
	overflow *rate.Limiter
}

// Init checks the limits.
func (s *Limit) Init() error {
	if s.Rate <= 0 || s.Burst <= 0 {
		return errors.New("limit: Rate and Burst must be positive")
	}
	if s.MaxStreams == 0 {
		s.MaxStreams = 10000
	}
	s.all = rate.NewLimiter(rate.Limit(s.Rate), s.Burst)
	s.overflow = rate.NewLimiter(rate.Limit(s.Rate), s.Burst)
	s.byValue = map[string]*rate.Limiter{}
	s.byStream = map[uint64]*rate.Limiter{}
	if s.PerStream && s.ByLabel != "" {
		return errors.New("limit: PerStream and ByLabel exclude each other")
	}
	return nil
}

// Process applies the limit.
func (s *Limit) Process(c *Context, e *ferry.Entry) bool {
	l := s.all
	if s.PerStream {
		h := c.Labels(e).Hash()
		l = s.byStream[h]
		if l == nil {
			if len(s.byStream) >= s.MaxStreams {
				l = s.overflow
			} else {
				l = rate.NewLimiter(rate.Limit(s.Rate), s.Burst)
				s.byStream[h] = l
			}
		}
	} else if s.ByLabel != "" {
		v := c.Label(e, s.ByLabel)
		l = s.byValue[v]
		if l == nil {
			if len(s.byValue) >= s.MaxStreams {
				l = s.overflow
			} else {
				l = rate.NewLimiter(rate.Limit(s.Rate), s.Burst)
				s.byValue[strings.Clone(v)] = l
			}
		}
	}
	if s.Drop {
		if !l.Allow() {
			c.Dropped("rate_limited")
			return false
		}
		return true
	}
	if err := l.Wait(c.Ctx); err != nil {
		// Shutting down: let it through rather than lose it.
		return true
	}
	return true
}
