// Package pipeline wires discoverers, sources, processors and sinks into a
// running graph, in code.
//
// A Builder hands out typed handles: a Stream[ferry.Entry] can only reach
// a sink of entries, so wiring samples into a log sink does not compile.
// Every component has a name that appears in errors, logs, metrics and
// health. Build checks the whole graph and reports every problem at once;
// Run starts it and returns when it has drained.
//
//	b := pipeline.New()
//	lines := pipeline.FromSource(b, "stdin", &source.Reader{R: os.Stdin})
//	pipeline.To(b, "console", &sink.Console[ferry.Entry]{W: os.Stdout}, lines)
//	p, err := b.Build()
//	...
//	err = p.Run(ctx)
//
// Batches travel over bounded channels, so a slow sink slows its sources
// down rather than growing memory. A stream consumed by several components
// is copied for each (fan-out); several streams into one component are
// merged (fan-in). A chain of processors runs as plain calls on one
// goroutine.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/discovery"
	"github.com/ferrydev/ferry/process"
	"github.com/ferrydev/ferry/relabel"
	"github.com/ferrydev/ferry/sink"
	"github.com/ferrydev/ferry/source"
)

// DefaultDrainTimeout is the drain deadline of a pipeline built without
// WithDrainTimeout. It fits within the 10 s that docker stop waits between
// SIGTERM and SIGKILL, leaving a second to save positions.
const DefaultDrainTimeout = 9 * time.Second

// Option configures a Builder.
type Option func(*options)

type options struct {
	logger        *slog.Logger
	drain         time.Duration
	buffer        int
	minBackoff    time.Duration
	maxBackoff    time.Duration
	flushInterval time.Duration
	inline        bool
}

// WithLogger sets the logger of the pipeline and, with the component's name
// and kind added, of every component. The default is slog.Default().
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithDrainTimeout bounds how long Run waits, once its context is done, for
// processors and sinks to deliver what they hold (default DefaultDrainTimeout).
// After it, sinks give up and acknowledge what is left with an error, and Run
// returns an error wrapping ferry.ErrUndelivered. Sources and discoverers are
// closed (positions saved) after the drain, so the time a stop takes is about
// d plus the time of those closes; docs/shutdown.md says how to choose d for
// docker stop and Kubernetes.
func WithDrainTimeout(d time.Duration) Option { return func(o *options) { o.drain = d } }

// WithBuffer sets how many batches each component's input holds before its
// producers block (default 4). Memory in flight is bounded by this times the
// batch size times the number of edges.
func WithBuffer(n int) Option { return func(o *options) { o.buffer = n } }

// WithBackoff sets the first and the longest wait before a failed
// discoverer or source is restarted (defaults 250ms and 30s). The wait
// doubles after each failure and starts over after a run longer than
// longest.
func WithBackoff(first, longest time.Duration) Option {
	return func(o *options) { o.minBackoff, o.maxBackoff = first, longest }
}

// WithFlushInterval sets how often processors that hold items
// (process.Flusher) are flushed (default 1s).
func WithFlushInterval(d time.Duration) Option { return func(o *options) { o.flushInterval = d } }

// WithInlineChains runs each source's chain, the processors fused after it
// and a sink fused at its end, on the goroutine of the source that sends,
// inside source.Send, instead of on a goroutine of the chain's own that
// reads the source's channel. That saves a cross-core hand-off per batch
// (BenchmarkPipelineOverhead measures it: about half the cost of a relabel
// step on a 2-core machine) but gives up the overlap of reading with
// processing, so it suits machines whose cores are busy with other work.
// It suits a source that sends from one goroutine (a file, a container's
// log) and not one that sends from many: a chain runs one batch at a time,
// and a scraper's targets then wait for each other (at 1000 targets it cost
// 5–10 % more CPU a sample than the default, TestE2EThroughput with
// FERRY_E2E_PIPELINE). It is off by default. Sources
// that write to their channel without source.Send, or from a context not
// derived from the one Run gave them, go through the channel as before.
// The chain's own goroutine remains, for those and for timed flushes.
func WithInlineChains() Option { return func(o *options) { o.inline = true } }

// Builder collects the components of a pipeline. Its functions record
// mistakes instead of failing one by one; Build reports them all. A Builder
// is not safe for concurrent use.
type Builder struct {
	opts  options
	nodes []*node
	names map[string]*node
	errs  []error
	built bool
}

// New returns an empty Builder configured by opts (WithLogger, WithBuffer,
// WithBackoff, WithDrainTimeout, WithFlushInterval, WithInlineChains; each
// names its default).
func New(opts ...Option) *Builder {
	o := options{
		logger:        slog.Default(),
		drain:         DefaultDrainTimeout,
		buffer:        4,
		minBackoff:    250 * time.Millisecond,
		maxBackoff:    30 * time.Second,
		flushInterval: time.Second,
	}
	for _, opt := range opts {
		opt(&o)
	}
	if o.buffer < 1 {
		o.buffer = 1
	}
	if o.maxBackoff < o.minBackoff {
		o.maxBackoff = o.minBackoff
	}
	return &Builder{opts: o, names: map[string]*node{}}
}

// node is one component of the graph. Its typed behaviour lives in impl.
type node struct {
	c         *component
	impl      runner
	consumers int
	value     any // the user's component, for Validate and Close
}

// runner is the typed part of a node, started by Pipeline.Run.
type runner interface {
	start(r *run)
}

// Stream is a handle on a stream of batches of T produced by a component.
// Pass it to Process or To to consume it; consuming it more than once fans
// it out. The zero Stream is invalid.
type Stream[T any] struct {
	b *Builder
	n *node
	p producer[T]
}

// Targets is a handle on the target sets produced by a discoverer or a
// RelabelTargets step.
type Targets struct {
	b *Builder
	n *node
	p targetProducer
}

// Name returns the name of the component that produces the stream.
func (s Stream[T]) Name() string {
	if s.n == nil {
		return ""
	}
	return s.n.c.name
}

// Name returns the name of the component that produces the targets.
func (t Targets) Name() string {
	if t.n == nil {
		return ""
	}
	return t.n.c.name
}

func (b *Builder) errorf(format string, args ...any) {
	b.errs = append(b.errs, fmt.Errorf(format, args...))
}

// add registers a component under name. It returns nil after recording an
// error if the component cannot be added.
func (b *Builder) add(name string, kind Kind, value any) *node {
	switch {
	case b.built:
		b.errorf("%s %q: added after Build", kind, name)
		return nil
	case name == "":
		b.errorf("%s: empty name", kind)
		return nil
	case b.names[name] != nil:
		b.errorf("%s %q: name already used by a %s", kind, name, b.names[name].c.kind)
		return nil
	}
	n := &node{c: newComponent(name, kind, b.opts.logger), value: value}
	n.c.typ = fmt.Sprintf("%T", value)
	_, n.c.starter = value.(ferry.Starter)
	b.names[name] = n
	b.nodes = append(b.nodes, n)
	if isNil(value) {
		b.errorf("%s %q: component is nil", kind, name)
	}
	return n
}

func isNil(v any) bool {
	if v == nil {
		return true
	}
	switch rv := reflect.ValueOf(v); rv.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Func, reflect.Interface, reflect.Chan:
		return rv.IsNil()
	}
	return false
}

// checkInput records an error unless in is a stream of this builder.
func checkInput[T any](b *Builder, who string, in Stream[T]) bool {
	switch {
	case in.n == nil:
		b.errorf("%s: input is the zero Stream", who)
		return false
	case in.b != b:
		b.errorf("%s: input %q belongs to another Builder", who, in.n.c.name)
		return false
	}
	return true
}

// Discover adds a discoverer and returns its targets.
func Discover(b *Builder, name string, d discovery.Discoverer) Targets {
	n := b.add(name, KindDiscoverer, d)
	if n == nil {
		return Targets{}
	}
	dn := &discovererNode{n: n, d: d}
	n.impl = dn
	return Targets{b: b, n: n, p: dn}
}

// RelabelTargets adds a step that applies rules to the union of the given
// target sets, as Prometheus relabel_configs and Alloy's discovery.relabel
// do. The rules are validated by Build, which also reports a rule that
// reads a label no input target can carry, when every input says which
// labels its targets carry (see relabel.Producer; discovery.Static and
// earlier RelabelTargets steps say so too): a rule on
// __meta_docker_container_log_stream here, for instance, which exists only
// on log entries.
func RelabelTargets(b *Builder, name string, rules []relabel.Rule, in ...Targets) Targets {
	rn := &relabelNode{rules: rules}
	n := b.add(name, KindRelabel, rn)
	if n == nil {
		return Targets{}
	}
	rn.n = n
	n.impl = rn
	rn.in = connectTargets(b, n, in)
	for _, t := range in {
		if t.n != nil && t.b == b {
			rn.from = append(rn.from, t.n)
		}
	}
	return Targets{b: b, n: n, p: rn}
}

func connectTargets(b *Builder, n *node, in []Targets) []*mailbox {
	if len(in) == 0 {
		b.errorf("%s %q: no targets to consume", n.c.kind, n.c.name)
	}
	var boxes []*mailbox
	for _, t := range in {
		if t.n == nil || t.b != b {
			b.errorf("%s %q: targets input is invalid or from another Builder", n.c.kind, n.c.name)
			continue
		}
		m := newMailbox()
		t.p.addTargetConsumer(m)
		t.n.consumers++
		n.c.inputs = append(n.c.inputs, t.n.c.name)
		boxes = append(boxes, m)
	}
	return boxes
}

// FromSource adds a source and returns its stream. Like every component,
// a source with a Validate() error method is checked by Build, one that
// implements ferry.Starter is started by Run before its first Run, and one
// that implements source.Closer is closed by Run after the sinks drained.
// Run closes the source's output channel once the source's Run returned for
// good: a source that sends after its Run returned breaks its contract.
func FromSource[T any](b *Builder, name string, s source.Source[T]) Stream[T] {
	n := b.add(name, KindSource, s)
	if n == nil {
		return Stream[T]{}
	}
	sn := newSourceNode[T](b, n)
	sn.run = s.Run
	return Stream[T]{b: b, n: n, p: sn.fwd}
}

// FromTargets adds a source driven by targets (container logs, file tails,
// scrapes) and returns its stream. With several Targets handles the source
// sees their union.
func FromTargets[T any](b *Builder, name string, s source.TargetSource[T], targets ...Targets) Stream[T] {
	n := b.add(name, KindSource, s)
	if n == nil {
		return Stream[T]{}
	}
	sn := newSourceNode[T](b, n)
	ts := &targetFeed{in: connectTargets(b, n, targets), out: newMailbox()}
	sn.targets = ts
	sn.run = func(ctx context.Context, out chan<- ferry.Batch[T]) error {
		return s.Run(ctx, ts.out.ch, out)
	}
	return Stream[T]{b: b, n: n, p: sn.fwd}
}

// newSourceNode makes the node of a source. What the source emits is read
// by a forwarder, a processor chain without stages of its own: processors
// that consume only this source fuse into it and run on its goroutine.
func newSourceNode[T any](b *Builder, n *node) *sourceNode[T] {
	ch := make(chan ferry.Batch[T], b.opts.buffer)
	sn := &sourceNode[T]{n: n, fwd: &processorNode[T]{n: n, src: ch}}
	n.c.queue = func() (int, int) { return len(ch), cap(ch) }
	n.impl = sn
	return sn
}

// Process adds a processor that consumes the given streams (merged) and
// returns its output.
func Process[T any](b *Builder, name string, p process.Processor[T], in ...Stream[T]) Stream[T] {
	n := b.add(name, KindProcessor, p)
	if n == nil {
		return Stream[T]{}
	}
	pn := &processorNode[T]{n: n, stages: []stage[T]{{p: p, c: n.c}}}
	if f, ok := p.(process.Flusher[T]); ok {
		pn.stages[0].f = f
	}
	pn.in = connectStreams(b, n, in)
	for _, s := range in {
		if s.p != nil && s.b == b {
			pn.from = append(pn.from, s.p)
		}
	}
	n.impl = pn
	return Stream[T]{b: b, n: n, p: pn}
}

// Relabel adds a processor that applies rules to the labels of entries or
// samples, dropping the items the rules drop. The rules are validated by
// Build.
func Relabel[T ferry.Entry | ferry.Sample](b *Builder, name string, rules []relabel.Rule, in ...Stream[T]) Stream[T] {
	rp := &lazyRelabel[T]{rules: rules}
	out := Process[T](b, name, rp, in...)
	return out
}

func connectStreams[T any](b *Builder, n *node, in []Stream[T]) *inport[T] {
	port := newInport[T](b.opts.buffer)
	n.c.queue = func() (int, int) { return len(port.ch), cap(port.ch) }
	if len(in) == 0 {
		b.errorf("%s %q: no input stream", n.c.kind, n.c.name)
	}
	for _, s := range in {
		if !checkInput(b, fmt.Sprintf("%s %q", n.c.kind, n.c.name), s) {
			continue
		}
		s.p.addConsumer(port)
		s.n.consumers++
		port.writers++
		port.left++
		n.c.inputs = append(n.c.inputs, s.n.c.name)
	}
	return port
}

// To adds a sink that consumes the given streams, merged. Run closes it
// when it drains, within the drain deadline.
func To[T any](b *Builder, name string, s sink.Sink[T], in ...Stream[T]) {
	n := b.add(name, KindSink, s)
	if n == nil {
		return
	}
	sn := &sinkNode[T]{n: n, s: s, in: connectStreams(b, n, in)}
	for _, st := range in {
		if st.p != nil && st.b == b {
			sn.from = append(sn.from, st.p)
		}
	}
	n.impl = sn
}

// validator is implemented by components that can check their own
// configuration; Build calls it.
type validator interface{ Validate() error }

// Build checks the graph and returns the pipeline, or an error that joins
// every problem found: duplicate or empty names, nil components, streams and
// targets nobody consumes, invalid relabel rules, target relabel rules that
// read a label which cannot exist there, and errors returned by the Validate
// methods of every component (discoverers, sources, processors, sinks, and
// the relabel steps the pipeline makes for Relabel and RelabelTargets). A
// Validate that panics is reported as its error. Build starts nothing.
func (b *Builder) Build() (*Pipeline, error) {
	if b.built {
		return nil, errors.New("pipeline: Build called twice")
	}
	b.built = true
	errs := append([]error(nil), b.errs...)
	for _, n := range b.nodes {
		if n.c.kind != KindSink && n.consumers == 0 {
			errs = append(errs, fmt.Errorf("%s %q: output is not consumed by any component", n.c.kind, n.c.name))
		}
		if v, ok := n.value.(validator); ok && !isNil(n.value) {
			if err := safeCall(n.c.name, v.Validate); err != nil {
				errs = append(errs, fmt.Errorf("%s %q: %w", n.c.kind, n.c.name, err))
			}
		}
	}
	for _, n := range b.nodes {
		rn, ok := n.impl.(*relabelNode)
		if !ok || rn.r == nil {
			continue
		}
		if in, ok := rn.inputNames(); ok {
			if err := rn.r.CheckReads(in); err != nil {
				errs = append(errs, fmt.Errorf("%s %q: %w", n.c.kind, n.c.name, err))
			}
		}
	}
	if len(b.nodes) == 0 {
		errs = append(errs, errors.New("pipeline is empty"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	for _, n := range b.nodes {
		if f, ok := n.impl.(interface{ fuse() }); ok {
			f.fuse()
		}
	}
	return &Pipeline{opts: b.opts, nodes: b.nodes}, nil
}

// lazyRelabel is the processor behind Relabel: its rules are validated by
// Build (through Validate) and compiled into a relabel.Processor then.
type lazyRelabel[T ferry.Entry | ferry.Sample] struct {
	rules []relabel.Rule
	p     process.Processor[T]
}

func (l *lazyRelabel[T]) Validate() error {
	r, err := relabel.New(l.rules...)
	if err != nil {
		return err
	}
	var p any
	switch any(*new(T)).(type) {
	case ferry.Entry:
		p = relabel.Entries(r)
	case ferry.Sample:
		p = relabel.Samples(r)
	}
	l.p = p.(process.Processor[T])
	return nil
}

func (l *lazyRelabel[T]) Process(ctx context.Context, b ferry.Batch[T]) (ferry.Batch[T], error) {
	return l.p.Process(ctx, b)
}
