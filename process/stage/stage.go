// Package stage holds typed log processing stages, the Go counterparts of
// the stages of Alloy's loki.process and Promtail's pipeline_stages: parsers
// (JSON, Logfmt, Regex, Docker, CRI, Syslog), transforms (Template, Replace,
// Decolorize), actions (Labels, StructuredMetadata, StaticLabels,
// LabelDrop, LabelKeep, Timestamp, Output), filters (Drop, Match, Limit) and
// Multiline.
//
// Stages run in a Processor, which implements process.Processor and
// process.Flusher for ferry.Entry:
//
//	p, err := stage.New(
//		&stage.CRI{},
//		&stage.JSON{Expressions: map[string]string{"level": "", "ts": "time"}},
//		&stage.Labels{Values: map[string]string{"level": ""}},
//		&stage.Timestamp{Source: "ts", Format: "RFC3339Nano"},
//	)
//
// Each entry gets a scratch map of extracted values (Context.Extracted),
// emptied for every entry and reused, not reallocated: parsers write to it,
// the other stages read it. Label changes are collected per entry and
// applied once, through a cache, so that a stream's entries share one label
// set and the steady state allocates nothing for labels.
//
// Entries a parser cannot parse pass unchanged and are counted in
// Processor.Failures under the stage's reason (for example
// "json_malformed"), unless the stage is configured to drop them, in which
// case they are counted through ferry.Reporter.Dropped.
package stage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/cespare/xxhash/v2"
	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/internal/arena"
	"github.com/ferrydev/ferry/internal/lifecycle"
	"github.com/ferrydev/ferry/internal/rfc3339"
	"github.com/ferrydev/ferry/process"
	"github.com/prometheus/prometheus/model/labels"
)

// Stage processes one entry at a time, in place.
//
// Process returns false to remove the entry from its batch; the entry then
// counts as done (a stage that drops for a reason reports it with
// Context.Dropped). A stage may read and write c.Extracted, change labels
// through c.SetLabel and c.DelLabel, and change any field of e. It must
// not keep e or c.Extracted after it returns; a stage that holds entries
// across calls (Multiline, CRI partial lines) uses Context.Hold and
// Context.Emit so that acknowledgements follow the data.
//
// A Processor calls Process from one goroutine at a time.
type Stage interface {
	Process(c *Context, e *ferry.Entry) bool
}

// Func adapts a function to the Stage interface.
type Func func(c *Context, e *ferry.Entry) bool

// Process calls f.
func (f Func) Process(c *Context, e *ferry.Entry) bool { return f(c, e) }

// Initializer is implemented by stages with configuration to check and
// compile. New calls Init once, before the first Process; a stage whose
// Init failed is never run.
type Initializer interface {
	Init() error
}

// FlushStage is implemented by stages that hold entries. Flush hands on,
// with Context.Emit, what has waited long enough at now, or everything when
// all is set (the input ended).
type FlushStage interface {
	Flush(c *Context, now time.Time, all bool)
}

// Context is what a stage sees besides the entry: the extracted values, the
// pending label changes, the reporter. One Context serves every entry of a
// Processor.
type Context struct {
	// Ctx is the context of the current Process call.
	Ctx context.Context
	// Extracted holds the values parsers extracted from the current entry.
	// It is emptied before every entry.
	Extracted map[string]string

	p        *Processor
	rep      ferry.Reporter
	mods     []string // name, value pairs; see delMarker
	ack      *ferry.Ack
	acks     []*ferry.Ack
	emitted  []ferry.Entry
	now      time.Time
	cache    map[uint64][]labelsCacheEntry
	cacheLen int
	recent   [4]labelsCacheEntry // the entries of cache last used, tried before hashing
	next     int                 // the slot of recent to fill next
	lb       *labels.Builder
	clock    rfc3339.Clock // RFC 3339 timestamps: the CRI, Docker and Timestamp stages
	// text holds the strings the stages make (lines they rewrite or join,
	// values they unescape) for the entries of one Process or Flush call:
	// released at its end, a block a batch rather than a string an entry.
	text arena.Arena
}

const delMarker = "\x00del"

type labelsCacheEntry struct {
	in   labels.Labels
	mods []string
	out  labels.Labels
}

// SetLabel sets a stream label of the current entry. Changes are applied
// when the entry leaves the pipeline, or when a stage needs the full label
// set (Context.Labels).
func (c *Context) SetLabel(name, value string) {
	c.mods = append(c.mods, name, value)
}

// DelLabel removes a stream label of the current entry.
func (c *Context) DelLabel(name string) {
	c.mods = append(c.mods, name, delMarker)
}

// Label returns the value of a stream label of e, pending changes
// included.
func (c *Context) Label(e *ferry.Entry, name string) string {
	for i := len(c.mods) - 2; i >= 0; i -= 2 {
		if c.mods[i] == name {
			if c.mods[i+1] == delMarker {
				return ""
			}
			return c.mods[i+1]
		}
	}
	return e.Labels.Get(name)
}

// Labels applies the pending label changes to e and returns its labels.
func (c *Context) Labels(e *ferry.Entry) labels.Labels {
	if len(c.mods) == 0 {
		return e.Labels
	}
	// The entries of a batch mostly share their labels (one string, which
	// compares at once) and the few changes the stages make: a look at the
	// last few results costs less than hashing the labels and the changes.
	for i := range c.recent {
		if ce := &c.recent[i]; labels.Equal(ce.in, e.Labels) && equalStrings(ce.mods, c.mods) {
			e.Labels = ce.out
			c.mods = c.mods[:0]
			return e.Labels
		}
	}
	h := e.Labels.Hash()
	for _, m := range c.mods {
		h = xxhash.Sum64String(m) ^ (h * 1099511628211)
	}
	for _, ce := range c.cache[h] {
		if labels.Equal(ce.in, e.Labels) && equalStrings(ce.mods, c.mods) {
			c.remember(ce)
			e.Labels = ce.out
			c.mods = c.mods[:0]
			return e.Labels
		}
	}
	in := e.Labels
	c.lb.Reset(in)
	for i := 0; i < len(c.mods); i += 2 {
		if c.mods[i+1] == delMarker {
			c.lb.Del(c.mods[i])
		} else {
			c.lb.Set(c.mods[i], c.mods[i+1])
		}
	}
	e.Labels = c.lb.Labels()
	if c.cache == nil || c.cacheLen >= labelsCacheSize {
		c.cache = make(map[uint64][]labelsCacheEntry, 256)
		c.cacheLen = 0
	}
	ce := labelsCacheEntry{in: in, mods: cloneStrings(c.mods), out: e.Labels}
	c.cache[h] = append(c.cache[h], ce)
	c.cacheLen++
	c.remember(ce)
	c.mods = c.mods[:0]
	return e.Labels
}

const labelsCacheSize = 4096

// remember puts ce among the recent entries, in place of the oldest.
func (c *Context) remember(ce labelsCacheEntry) {
	c.recent[c.next] = ce
	c.next = (c.next + 1) % len(c.recent)
}

// cloneStrings copies ss and their bytes, so that a cache entry does not
// keep alive the lines (or their read buffers) its strings were cut from.
// The copies share one string.
func cloneStrings(ss []string) []string {
	n := 0
	for _, s := range ss {
		n += len(s)
	}
	b := make([]byte, 0, n)
	for _, s := range ss {
		b = append(b, s...)
	}
	all := unsafe.String(unsafe.SliceData(b), len(b))
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i], all = all[:len(s)], all[len(s):]
	}
	return out
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Dropped counts one entry dropped for reason through the reporter. The
// stage still returns false itself.
func (c *Context) Dropped(reason string) { c.rep.Dropped(reason, 1) }

// Failed counts one entry a stage could not handle and passed on
// unchanged, under reason; see Processor.Failures.
func (c *Context) Failed(reason string) { c.p.failed(reason) }

// Logger returns the pipeline's logger.
func (c *Context) Logger() *slog.Logger { return c.rep.Logger() }

// Now returns the time the current batch started processing.
func (c *Context) Now() time.Time { return c.now }

// Hold keeps the current entry's batch from completing: the stage keeps
// (part of) the entry and will hand it on later with Emit, passing the
// returned acknowledgement along. Outside a batch (Flush) it returns nil.
func (c *Context) Hold() *ferry.Ack {
	if c.ack != nil {
		c.ack.Retain(1)
	}
	return c.ack
}

// Attach makes the current batch's acknowledgement wait for a, the
// acknowledgement of held data that the current entry now carries.
func (c *Context) Attach(a *ferry.Ack) {
	if a != nil {
		c.acks = append(c.acks, a)
	}
}

// Emit hands on e, an entry the stage held, with a, the acknowledgement of
// the data it holds. It goes through the stages after the emitting one and
// into the output before the current entry (or into the output of Flush).
func (c *Context) Emit(e ferry.Entry, a *ferry.Ack) {
	c.emitted = append(c.emitted, e)
	c.Attach(a)
}

// Processor runs stages over the entries of batches. It implements
// process.Processor[ferry.Entry], process.Flusher[ferry.Entry] and
// ferry.Starter, and is safe for concurrent use (calls are serialised).
// Like every component it is started before use: a pipeline calls Start,
// a program that calls Process itself calls Start first, and Process
// refuses to run before.
type Processor struct {
	stages []Stage

	mu       sync.Mutex
	c        Context
	pend     []ferry.Entry // entries emitted while processing one entry
	fmu      sync.Mutex
	failures map[string]*atomic.Int64
	life     lifecycle.State
	rep      ferry.Reporter // from Start
}

// ErrNotStarted is returned by Process and Flush before Start.
var ErrNotStarted = fmt.Errorf("stage: Process before Start: %w", ferry.ErrNotStarted)

var (
	_ ferry.Starter                  = (*Processor)(nil)
	_ process.Processor[ferry.Entry] = (*Processor)(nil)
	_ process.Flusher[ferry.Entry]   = (*Processor)(nil)
)

// New checks and compiles the stages (Initializer) and returns a Processor
// running them in order. Configuration errors of all stages are returned
// together.
func New(stages ...Stage) (*Processor, error) {
	var errs []error
	for i, s := range stages {
		if s == nil {
			errs = append(errs, fmt.Errorf("stage %d: nil", i))
			continue
		}
		if in, ok := s.(Initializer); ok {
			if err := in.Init(); err != nil {
				errs = append(errs, fmt.Errorf("stage %d (%T): %w", i, s, err))
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	p := &Processor{stages: stages, failures: map[string]*atomic.Int64{}}
	// Extracted is cleared for every entry, which costs as much as the
	// map's capacity: eight values fit the smallest map (one group), which
	// clears in half the time of one sized for sixteen. It grows for lines
	// that extract more and stays grown.
	p.c = Context{p: p, Extracted: make(map[string]string, 8), lb: labels.NewBuilder(labels.EmptyLabels())}
	return p, nil
}

// MustNew is New that panics on error, for stages fixed at compile time.
func MustNew(stages ...Stage) *Processor {
	p, err := New(stages...)
	if err != nil {
		panic(err)
	}
	return p
}

func (p *Processor) failed(reason string) {
	p.fmu.Lock()
	n := p.failures[reason]
	if n == nil {
		n = new(atomic.Int64)
		p.failures[reason] = n
	}
	p.fmu.Unlock()
	n.Add(1)
}

// Failures returns how many entries each stage could not handle and passed
// on unchanged, by reason.
func (p *Processor) Failures() map[string]int64 {
	p.fmu.Lock()
	defer p.fmu.Unlock()
	out := make(map[string]int64, len(p.failures))
	for k, v := range p.failures {
		out[k] = v.Load()
	}
	return out
}

// Start keeps r, through which the stages count what they drop and log,
// for every later Process and Flush. A pipeline calls it; a program that
// calls Process itself calls Start first (with ferry.NopReporter() if it
// counts nothing). Start is a no-op on a started Processor.
func (p *Processor) Start(_ context.Context, r ferry.Reporter) error {
	if r == nil {
		r = ferry.NopReporter()
	}
	return p.life.Start(nil, func() error {
		p.rep = r
		return nil
	})
}

func (p *Processor) begin(ctx context.Context, ack *ferry.Ack, now time.Time) *Context {
	c := &p.c
	c.Ctx, c.rep, c.ack, c.now = ctx, p.rep, ack, now
	c.acks = c.acks[:0]
	return c
}

// run runs stages[from:] over e; it returns false if a stage removed it.
// Entries emitted by stage i are run through stages[i+1:] and appended to
// out before e.
func (p *Processor) run(c *Context, e *ferry.Entry, from int, out *[]ferry.Entry) bool {
	clear(c.Extracted)
	c.mods = c.mods[:0]
	for i := from; i < len(p.stages); i++ {
		keep := p.stages[i].Process(c, e)
		if len(c.emitted) > 0 {
			p.emitFrom(c, i+1, out)
		}
		if !keep {
			c.mods = c.mods[:0]
			return false
		}
	}
	c.Labels(e)
	return true
}

// emitFrom runs the entries just emitted through stages[from:] and appends
// the survivors to out. The current entry's extracted values and label
// changes are saved around it.
func (p *Processor) emitFrom(c *Context, from int, out *[]ferry.Entry) {
	em := c.emitted
	c.emitted = nil
	saved := maps.Clone(c.Extracted)
	savedMods := append([]string(nil), c.mods...)
	for i := range em {
		e := em[i]
		if p.run(c, &e, from, out) {
			*out = append(*out, e)
		}
	}
	clear(c.Extracted)
	maps.Copy(c.Extracted, saved)
	c.mods = append(c.mods[:0], savedMods...)
	if c.emitted == nil {
		c.emitted = em[:0]
	}
}

// Process runs the stages over every entry of b. Entries are changed in
// place; removed entries count as done. When a stage emits held entries,
// the batch gets a new slice and an acknowledgement joined with theirs.
// Before Start it returns ErrNotStarted and leaves b alone.
func (p *Processor) Process(ctx context.Context, b ferry.Batch[ferry.Entry]) (ferry.Batch[ferry.Entry], error) {
	if err := p.life.Err(ErrNotStarted, nil); err != nil {
		return ferry.Batch[ferry.Entry]{}, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.begin(ctx, b.Ack, time.Now())
	var extra []ferry.Entry // output once something was emitted
	copying := false
	n := 0
	for i := range b.Items {
		e := &b.Items[i]
		p.pend = p.pend[:0]
		keep := p.run(c, e, 0, &p.pend)
		if len(p.pend) > 0 && !copying {
			copying = true
			extra = make([]ferry.Entry, 0, len(b.Items)+len(p.pend))
			extra = append(extra, b.Items[:n]...)
		}
		if copying {
			extra = append(extra, p.pend...)
			if keep {
				extra = append(extra, *e)
			}
			continue
		}
		if keep {
			if n != i {
				b.Items[n] = *e
			}
			n++
		}
	}
	clear(p.pend)
	if copying {
		clear(b.Items)
		b.Items = extra
	} else {
		clear(b.Items[n:])
		b.Items = b.Items[:n]
	}
	if len(c.acks) > 0 {
		acks := append([]*ferry.Ack{b.Ack}, c.acks...)
		b.Ack = ferry.JoinAcks(acks...)
	}
	c.ack = nil
	c.text.Release()
	return b, nil
}

// Flush hands on what stages hold that waited long enough, or everything
// when the input has ended (process.IsFinal) or ctx is already done. A
// pipeline flushes this way when its input ends, so the last multi-line
// block of a stream is delivered, not held. Before Start it returns
// ErrNotStarted.
func (p *Processor) Flush(ctx context.Context) (ferry.Batch[ferry.Entry], error) {
	if err := p.life.Err(ErrNotStarted, nil); err != nil {
		return ferry.Batch[ferry.Entry]{}, err
	}
	return p.flush(ctx, process.IsFinal(ctx) || ctx.Err() != nil), nil
}

// FlushAll hands on everything the stages hold, as when the input ended.
// Before Start the stages hold nothing, and it returns an empty batch.
func (p *Processor) FlushAll(ctx context.Context) ferry.Batch[ferry.Entry] {
	if !p.life.Started() {
		return ferry.Batch[ferry.Entry]{}
	}
	return p.flush(ctx, true)
}

func (p *Processor) flush(ctx context.Context, all bool) ferry.Batch[ferry.Entry] {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.begin(ctx, nil, time.Now())
	var out []ferry.Entry
	for i, s := range p.stages {
		if f, ok := s.(FlushStage); ok {
			f.Flush(c, c.now, all)
			if len(c.emitted) > 0 {
				p.emitFrom(c, i+1, &out)
			}
		}
	}
	b := ferry.Batch[ferry.Entry]{Items: out}
	if len(c.acks) > 0 {
		b.Ack = ferry.JoinAcks(append([]*ferry.Ack(nil), c.acks...)...)
	}
	c.text.Release()
	return b
}
