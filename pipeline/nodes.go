package pipeline

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/discovery"
	"github.com/ferrydev/ferry/internal/inline"
	"github.com/ferrydev/ferry/process"
	"github.com/ferrydev/ferry/relabel"
	"github.com/ferrydev/ferry/sink"
	"github.com/prometheus/prometheus/model/labels"
)

// inport is a component's input: one bounded channel, written by one or
// more producers and closed by the last of them to finish.
type inport[T any] struct {
	ch      chan envelope[T]
	writers int // producers, counted while building

	mu   sync.Mutex
	left int // producers that have not released yet
}

// envelope is a batch in transit with its payload size, measured once by
// its producer.
type envelope[T any] struct {
	b     ferry.Batch[T]
	bytes int
}

func newInport[T any](buffer int) *inport[T] {
	return &inport[T]{ch: make(chan envelope[T], buffer)}
}

// release is called once by each producer when it has sent its last batch.
func (p *inport[T]) release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.left--
	if p.left == 0 {
		close(p.ch)
	}
}

// producer is implemented by the typed nodes that produce a Stream[T].
type producer[T any] interface {
	addConsumer(*inport[T])
}

// outports are a producer's consumers.
type outports[T any] []*inport[T]

func (o *outports[T]) addConsumer(p *inport[T]) { *o = append(*o, p) }

// send hands b to every consumer, blocking while they are full. Consumers
// beyond the first get their own copy of the items, since consumers modify
// batches in place; all share one acknowledgement. If ctx ends first, the
// batch is given up with ctx's cause (the drain deadline's error). The batch's output is counted for c,
// unless c is nil; bytes is its payload size if measured already, or -1.
func (o outports[T]) send(ctx context.Context, c *component, b ferry.Batch[T], bytes int) {
	if c != nil {
		bytes = payloadBytes(b.Items)
		countOut(c, len(b.Items), bytes)
		c.tapItems(b.Items)
	} else if bytes < 0 {
		bytes = payloadBytes(b.Items)
	}
	switch len(o) {
	case 0:
		b.Done(nil)
		return
	case 1:
		sendOne(ctx, o[0], envelope[T]{b, bytes})
		return
	}
	b.Ack.Retain(len(o) - 1)
	copies := make([]ferry.Batch[T], len(o))
	copies[0] = b
	for i := 1; i < len(o); i++ {
		copies[i] = ferry.Batch[T]{Items: append([]T(nil), b.Items...), Ack: b.Ack}
	}
	for i, p := range o {
		sendOne(ctx, p, envelope[T]{copies[i], bytes})
	}
}

func sendOne[T any](ctx context.Context, p *inport[T], e envelope[T]) {
	select {
	case p.ch <- e:
	case <-ctx.Done():
		e.b.Done(context.Cause(ctx))
	}
}

func (o outports[T]) release() {
	for _, p := range o {
		p.release()
	}
}

// sourceNode runs a Source or TargetSource.
type sourceNode[T any] struct {
	n       *node
	run     func(context.Context, chan<- ferry.Batch[T]) error
	targets *targetFeed
	fwd     *processorNode[T] // reads what the source emits
}

func (s *sourceNode[T]) start(r *run) {
	c := s.n.c
	if s.targets != nil {
		r.goTracked(&r.rest, c, func() { s.targets.loop(r.discCtx) })
	}
	srcCtx := r.srcCtx
	if r.opts.inline {
		s.fwd.inline = inline.New(s.fwd.src, func(b ferry.Batch[T]) { s.fwd.fromSource(r, b) })
		srcCtx = inline.With(srcCtx, s.fwd.inline)
	}
	s.fwd.start(r)
	r.goTracked(&r.sources, c, func() {
		defer close(s.fwd.src)
		r.supervise(srcCtx, c, func(ctx context.Context) error {
			if s.targets != nil {
				s.targets.resend()
			}
			return s.run(ctx, s.fwd.src)
		})
	})
}

// stage is one processor of a fused chain.
type stage[T any] struct {
	p process.Processor[T]
	f process.Flusher[T]
	c *component
}

// processorNode runs a chain of processors on one goroutine. It reads
// either the input of a processor (in) or, as a source's forwarder, what the
// source emits (src).
type processorNode[T any] struct {
	n      *node
	in     *inport[T]
	src    chan ferry.Batch[T]
	stages []stage[T]
	outs   outports[T]
	from   []producer[T]     // the producers of in
	fused  *processorNode[T] // set when this node's stages run in another node
	sink   *sinkNode[T]      // a sink fused at the end of the chain, instead of outs
	// inline, for a source's forwarder under WithInlineChains, runs the
	// chain on the goroutines of the source's sends; the forwarder's own
	// goroutine takes its lock too.
	inline *inline.Consumer[T]
}

func (p *processorNode[T]) addConsumer(port *inport[T]) { p.outs.addConsumer(port) }

// fuse moves this node's stages into its producer's chain when that is a
// processor chain (or a source's forwarder) whose only consumer is this
// node, so that the chain runs as plain calls without a channel hand-off
// between stages.
func (p *processorNode[T]) fuse() {
	q := soleFeeder(p.in, p.from)
	if q == nil {
		return
	}
	q.stages = append(q.stages, p.stages...)
	q.outs = p.outs
	p.fused = q
}

// soleFeeder returns the processor chain (or source forwarder) that is the
// only producer of in and feeds nothing else, following earlier fusions, or
// nil: the chain a consumer of in can be fused into.
func soleFeeder[T any](in *inport[T], from []producer[T]) *processorNode[T] {
	if in.writers != 1 || len(from) != 1 {
		return nil
	}
	q, ok := from[0].(*processorNode[T])
	if !ok {
		return nil
	}
	for q.fused != nil {
		q = q.fused
	}
	if len(q.outs) != 1 || q.outs[0] != in {
		return nil
	}
	return q
}

func (p *processorNode[T]) start(r *run) {
	if p.fused != nil {
		return
	}
	var in <-chan envelope[T]
	if p.in != nil {
		in = p.in.ch
	}
	r.goTracked(&r.rest, p.n.c, func() {
		defer func() {
			if p.sink != nil {
				p.sink.finish(r)
			}
		}()
		defer p.outs.release()
		var tick <-chan time.Time
		for _, s := range p.stages {
			if s.f != nil {
				t := time.NewTicker(r.opts.flushInterval)
				defer t.Stop()
				tick = t.C
				break
			}
		}
		for {
			select {
			case e, ok := <-in:
				if !ok {
					p.flush(r, true)
					return
				}
				p.process(r, 0, e.b, e.bytes)
			case b, ok := <-p.src:
				if !ok {
					p.locked(func() { p.flush(r, true) })
					return
				}
				p.locked(func() { p.fromSource(r, b) })
			case <-tick:
				p.locked(func() { p.flush(r, false) })
			}
		}
	})
}

// locked runs fn under the inline consumer's lock, if there is one.
func (p *processorNode[T]) locked(fn func()) {
	if p.inline == nil {
		fn()
		return
	}
	p.inline.Do(fn)
}

// fromSource counts a batch the source emitted and runs it through the
// chain.
func (p *processorNode[T]) fromSource(r *run, b ferry.Batch[T]) {
	c := p.n.c
	b = watchAck(r, b)
	bytes := payloadBytes(b.Items)
	countOut(c, len(b.Items), bytes)
	observeLag(c, b.Items)
	c.tapItems(b.Items)
	c.ok()
	p.process(r, 0, b, bytes)
}

// last returns the component whose output is the chain's output, or nil
// for a forwarder without stages, whose source counted it already.
func (p *processorNode[T]) last() *component {
	if len(p.stages) == 0 {
		return nil
	}
	return p.stages[len(p.stages)-1].c
}

// process runs b, of the given payload size, through stages[from:] and
// sends what comes out.
func (p *processorNode[T]) process(r *run, from int, b ferry.Batch[T], bytes int) {
	for i := from; i < len(p.stages); i++ {
		s := &p.stages[i]
		countIn(s.c, len(b.Items), bytes)
		in := b
		err := safeCall(s.c.name, func() error {
			var err error
			b, err = s.p.Process(s.c.ctx, in)
			return err
		})
		if err != nil {
			if !r.notStarted(s.c, err) {
				s.c.failed(ferry.Degraded, err)
			}
			s.c.Dropped("processor_error", len(in.Items))
			in.Done(err)
			return
		}
		s.c.ok()
		if len(b.Items) == 0 {
			b.Done(nil)
			return
		}
		if i < len(p.stages)-1 {
			bytes = payloadBytes(b.Items)
			countOut(s.c, len(b.Items), bytes)
			s.c.tapItems(b.Items)
		}
	}
	p.emit(r, p.last(), b, bytes)
}

// emit passes the chain's output on: to the fused sink, or to the
// consumers. c and bytes are as for outports.send.
func (p *processorNode[T]) emit(r *run, c *component, b ferry.Batch[T], bytes int) {
	if p.sink == nil {
		p.outs.send(r.hardCtx, c, b, bytes)
		return
	}
	if c != nil || bytes < 0 {
		bytes = payloadBytes(b.Items)
	}
	if c != nil {
		countOut(c, len(b.Items), bytes)
		c.tapItems(b.Items)
	}
	p.sink.deliver(r, envelope[T]{b, bytes})
}

// flush asks every holding stage for what it holds, in chain order, and
// passes it through the stages after it. final says the input has ended.
func (p *processorNode[T]) flush(r *run, final bool) {
	for i := range p.stages {
		s := &p.stages[i]
		if s.f == nil {
			continue
		}
		var b ferry.Batch[T]
		err := safeCall(s.c.name, func() error {
			var err error
			ctx := s.c.ctx
			if final {
				ctx = process.Final(ctx)
			}
			b, err = s.f.Flush(ctx)
			return err
		})
		if err != nil {
			if !r.notStarted(s.c, err) {
				s.c.failed(ferry.Degraded, err)
			}
			continue
		}
		if len(b.Items) == 0 {
			b.Done(nil)
			continue
		}
		if i < len(p.stages)-1 {
			bytes := payloadBytes(b.Items)
			countOut(s.c, len(b.Items), bytes)
			p.process(r, i+1, b, bytes)
		} else {
			p.emit(r, s.c, b, -1)
		}
	}
}

// sinkNode feeds a Sink and closes it when its input ends. When its only
// input is a processor chain (or a source's forwarder) that feeds nothing
// else, it is fused into that chain: Send is called on the chain's
// goroutine, saving a channel hand-off per batch, and blocking there is the
// same backpressure.
type sinkNode[T any] struct {
	n     *node
	s     sink.Sink[T]
	in    *inport[T]
	from  []producer[T]
	fused bool
}

func (s *sinkNode[T]) fuse() {
	q := soleFeeder(s.in, s.from)
	if q == nil {
		return
	}
	q.outs, q.sink, s.fused = nil, s, true
	s.n.c.queue = q.n.c.queue
}

func (s *sinkNode[T]) start(r *run) {
	if s.fused {
		return
	}
	r.goTracked(&r.rest, s.n.c, func() {
		for e := range s.in.ch {
			s.deliver(r, e)
		}
		s.finish(r)
	})
}

// deliver hands one batch to the sink.
func (s *sinkNode[T]) deliver(r *run, e envelope[T]) {
	c := s.n.c
	b := e.b
	countIn(c, len(b.Items), e.bytes)
	if r.hardCtx.Err() != nil {
		b.Done(context.Cause(r.hardCtx))
		return
	}
	if err := safeCall(c.name, func() error { return s.s.Send(c.ctx, b) }); err != nil {
		if !r.notStarted(c, err) {
			c.failed(ferry.Failing, err)
		}
		return
	}
	c.ok()
}

// finish closes the sink once its input has ended.
func (s *sinkNode[T]) finish(r *run) {
	c := s.n.c
	closeCtx, cancel := context.WithTimeout(c.ctx, r.opts.drain)
	defer cancel()
	if err := safeCall(c.name, func() error { return s.s.Close(closeCtx) }); err != nil {
		c.failed(ferry.Failing, err)
		r.fail(fmt.Errorf("sink %q: close: %w", c.name, err))
	}
}

// mailbox carries target sets where only the latest matters: a put replaces
// a set that was not taken yet.
type mailbox struct {
	mu sync.Mutex
	ch chan []labels.Labels
}

func newMailbox() *mailbox { return &mailbox{ch: make(chan []labels.Labels, 1)} }

func (m *mailbox) put(ts []labels.Labels) {
	m.mu.Lock()
	defer m.mu.Unlock()
	select {
	case <-m.ch:
	default:
	}
	m.ch <- ts
}

// targetProducer is implemented by nodes that produce Targets.
type targetProducer interface {
	addTargetConsumer(*mailbox)
}

type targetOuts []*mailbox

func (o *targetOuts) addTargetConsumer(m *mailbox) { *o = append(*o, m) }

// publish gives every consumer the set; each gets its own slice.
func (o targetOuts) publish(c *component, ts []labels.Labels) {
	c.batchesOut.Add(1)
	c.itemsOut.Store(uint64(len(ts)))
	c.targets.Store(&ts)
	for i, m := range o {
		if i > 0 {
			ts = append([]labels.Labels(nil), ts...)
		}
		m.put(ts)
	}
}

// discovererNode runs a Discoverer.
type discovererNode struct {
	n    *node
	d    discovery.Discoverer
	outs targetOuts
}

func (d *discovererNode) addTargetConsumer(m *mailbox) { d.outs.addTargetConsumer(m) }

func (d *discovererNode) start(r *run) {
	c := d.n.c
	up := make(chan []labels.Labels)
	stop := make(chan struct{})
	r.goTracked(&r.rest, c, func() {
		for {
			select {
			case ts := <-up:
				c.ok()
				d.outs.publish(c, ts)
			case <-stop:
				return
			}
		}
	})
	r.goTracked(&r.rest, c, func() {
		defer close(stop)
		r.supervise(r.discCtx, c, func(ctx context.Context) error { return d.d.Run(ctx, up) })
	})
}

// merged returns the union of the latest sets of several inputs.
func merged(latest [][]labels.Labels) []labels.Labels {
	if len(latest) == 1 {
		return latest[0]
	}
	var out []labels.Labels
	for _, ts := range latest {
		out = append(out, ts...)
	}
	return out
}

// watchInputs calls fn with the union of the inputs' latest sets each time
// one of them changes, until ctx is done.
func watchInputs(ctx context.Context, in []*mailbox, fn func([]labels.Labels)) {
	latest := make([][]labels.Labels, len(in))
	if len(in) == 1 {
		for {
			select {
			case ts := <-in[0].ch:
				fn(ts)
			case <-ctx.Done():
				return
			}
		}
	}
	// Several inputs: a goroutine per input keeps only that input's latest
	// set (vals) and says which input changed on one wake-up channel, so
	// that fn always sees the newest union and never a stale set.
	wake := make(chan int, len(in))
	var wg sync.WaitGroup
	vals := make([]chan []labels.Labels, len(in))
	for i, m := range in {
		vals[i] = make(chan []labels.Labels, 1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case ts := <-m.ch:
					select {
					case <-vals[i]:
					default:
					}
					vals[i] <- ts
					// The wake-up waits while fn is busy; it must not
					// outlive ctx, or the wait below never ends.
					select {
					case wake <- i:
					case <-ctx.Done():
						return
					}
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	defer wg.Wait()
	for {
		select {
		case i := <-wake:
			select {
			case ts := <-vals[i]:
				latest[i] = ts
				fn(merged(latest))
			default:
			}
		case <-ctx.Done():
			return
		}
	}
}

// relabelNode applies relabel rules to target sets.
type relabelNode struct {
	n     *node
	rules []relabel.Rule
	r     *relabel.Rules
	in    []*mailbox
	from  []*node // the producers of in
	outs  targetOuts
}

// inputNames returns the label names the targets reaching rn can carry, and
// false unless every input says.
func (rn *relabelNode) inputNames() (relabel.Names, bool) {
	if len(rn.from) == 0 {
		return nil, false
	}
	var all relabel.Names
	for _, n := range rn.from {
		names, ok := targetNames(n)
		if !ok {
			return nil, false
		}
		all = append(all, names...)
	}
	return all, true
}

// targetNames returns the label names the targets of n can carry, and false
// when that is not known: a discoverer that is neither a relabel.Producer
// nor a discovery.Static, or a relabel step after one, or whose rules add
// names not known in advance.
func targetNames(n *node) (relabel.Names, bool) {
	switch impl := n.impl.(type) {
	case *discovererNode:
		if isNil(impl.d) {
			return nil, false
		}
		switch d := impl.d.(type) {
		case relabel.Producer:
			return d.TargetLabels(), true
		case discovery.Static:
			return staticNames(d), true
		case *discovery.Static:
			return staticNames(*d), true
		}
	case *relabelNode:
		if impl.r == nil {
			return nil, false
		}
		in, ok := impl.inputNames()
		if !ok {
			return nil, false
		}
		w, ok := impl.r.Writes()
		if !ok {
			return nil, false
		}
		return append(in, w...), true
	}
	return nil, false
}

func staticNames(s discovery.Static) relabel.Names {
	var out relabel.Names
	seen := map[string]bool{}
	for _, t := range s {
		t.Range(func(l labels.Label) {
			if !seen[l.Name] {
				seen[l.Name] = true
				out = append(out, l.Name)
			}
		})
	}
	return out
}

// Validate compiles the rules; Build calls it.
func (rn *relabelNode) Validate() error {
	r, err := relabel.New(rn.rules...)
	rn.r = r
	return err
}

func (rn *relabelNode) addTargetConsumer(m *mailbox) { rn.outs.addTargetConsumer(m) }

func (rn *relabelNode) start(r *run) {
	c := rn.n.c
	c.ok()
	r.goTracked(&r.rest, c, func() {
		watchInputs(r.discCtx, rn.in, func(ts []labels.Labels) {
			c.batchesIn.Add(1)
			c.itemsIn.Store(uint64(len(ts)))
			rn.outs.publish(c, rn.r.Targets(ts))
		})
	})
}

// targetFeed merges the target inputs of a TargetSource and keeps the
// latest union, to hand it again to the source after a restart.
type targetFeed struct {
	in  []*mailbox
	out *mailbox

	mu  sync.Mutex
	cur []labels.Labels
	ok  bool
}

func (f *targetFeed) loop(ctx context.Context) {
	watchInputs(ctx, f.in, func(ts []labels.Labels) {
		f.mu.Lock()
		f.cur, f.ok = ts, true
		f.mu.Unlock()
		f.out.put(ts)
	})
}

// resend offers the current set again, for a restarted source.
func (f *targetFeed) resend() {
	f.mu.Lock()
	cur, ok := f.cur, f.ok
	f.mu.Unlock()
	if ok {
		f.out.put(append([]labels.Labels(nil), cur...))
	}
}
