package stage

import (
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/ferrydev/ferry"
)

// Multiline joins the lines of a multi-line message (a stack trace) into
// one entry, as stage.multiline. A line matching FirstLine starts a block;
// lines that do not match are appended to the open block of their stream,
// separated by "\n". A block is handed on when the next block starts, when
// it reaches MaxLines (default 128), and, through the pipeline's Flush,
// when no line came for MaxWait (default 3s). The block keeps the labels
// and timestamp of its first line.
//
// Lines that do not match while no block is open pass unchanged. Held
// lines keep their batches' acknowledgements open until their block is
// handed on, so positions never pass undelivered lines.
type Multiline struct {
	// FirstLine is a regular expression matching the first line of a block.
	FirstLine string
	// MaxLines bounds a block; default 128.
	MaxLines int
	// MaxWait is how long an idle block is held; default 3s.
	MaxWait time.Duration

	re     *regexp.Regexp
	blocks map[uint64]*held
}

// Init compiles the expression.
func (s *Multiline) Init() error {
	if s.FirstLine == "" {
		return errors.New("multiline: FirstLine is required")
	}
	re, err := regexp.Compile(s.FirstLine)
	if err != nil {
		return fmt.Errorf("multiline: %w", err)
	}
	if s.MaxLines < 0 || s.MaxWait < 0 {
		return errors.New("multiline: negative limit")
	}
	if s.MaxLines == 0 {
		s.MaxLines = 128
	}
	if s.MaxWait == 0 {
		s.MaxWait = 3 * time.Second
	}
	s.re, s.blocks = re, map[uint64]*held{}
	return nil
}

// Process holds the line in its block.
func (s *Multiline) Process(c *Context, e *ferry.Entry) bool {
	key := c.Labels(e).Hash()
	h := s.blocks[key]
	if s.re.MatchString(e.Line) {
		if h != nil {
			s.emit(c, key, h)
		}
		h = &held{entry: *e, since: c.now}
		h.buf = append(h.buf, e.Line...)
		h.n = 1
		h.hold(c)
		s.blocks[key] = h
		return false
	}
	if h == nil {
		return true
	}
	h.buf = append(h.buf, '\n')
	h.buf = append(h.buf, e.Line...)
	h.n++
	h.since = c.now
	h.hold(c)
	if h.n >= s.MaxLines {
		s.emit(c, key, h)
	}
	return false
}

func (s *Multiline) emit(c *Context, key uint64, h *held) {
	e := h.entry
	e.Line = c.text.String(h.buf)
	c.Emit(e, h.release())
	delete(s.blocks, key)
}

// Flush hands on blocks that got no line for MaxWait, or all of them.
func (s *Multiline) Flush(c *Context, now time.Time, all bool) {
	for key, h := range s.blocks {
		if all || now.Sub(h.since) >= s.MaxWait {
			s.emit(c, key, h)
		}
	}
}
