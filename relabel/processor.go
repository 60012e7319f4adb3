package relabel

import (
	"context"
	"sync"

	"github.com/ferrydev/ferry"
	"github.com/prometheus/prometheus/model/labels"
)

// DefaultCacheSize is the number of distinct label sets a Processor
// remembers the result for when its CacheSize is zero.
const DefaultCacheSize = 4096

// Processor applies Rules to the labels of every item of a batch and drops
// the items the rules drop. It implements process.Processor.
//
// Relabeling depends only on the input labels, and a stream's entries share
// one label set, so the processor remembers the result per distinct input
// set: in the steady state an item costs a hash and a comparison and
// allocates nothing. The memory is bounded by CacheSize entries; when full,
// it is cleared.
type Processor[T any] struct {
	rules  *Rules
	labels func(*T) *labels.Labels
	size   int

	mu    sync.Mutex
	cache map[uint64][]cached
	n     int
	lb    *labels.Builder
}

type cached struct {
	in, out labels.Labels
	keep    bool
}

// NewProcessor returns a Processor for items of type T whose labels field is
// returned by field. cacheSize bounds the result cache (0 means
// DefaultCacheSize, negative disables it).
func NewProcessor[T any](r *Rules, field func(*T) *labels.Labels, cacheSize int) *Processor[T] {
	if cacheSize == 0 {
		cacheSize = DefaultCacheSize
	}
	return &Processor[T]{rules: r, labels: field, size: cacheSize, lb: labels.NewBuilder(labels.EmptyLabels())}
}

// Entries returns a Processor that relabels the stream labels of log entries.
func Entries(r *Rules) *Processor[ferry.Entry] {
	return NewProcessor(r, func(e *ferry.Entry) *labels.Labels { return &e.Labels }, 0)
}

// Samples returns a Processor that relabels the series labels of samples, as
// Prometheus's metric_relabel_configs and write_relabel_configs do.
func Samples(r *Rules) *Processor[ferry.Sample] {
	return NewProcessor(r, func(s *ferry.Sample) *labels.Labels { return &s.Labels }, 0)
}

// Process relabels b in place; dropped items are removed from it.
func (p *Processor[T]) Process(_ context.Context, b ferry.Batch[T]) (ferry.Batch[T], error) {
	if p.rules.Len() == 0 {
		return b, nil
	}
	p.mu.Lock()
	n := 0
	for i := range b.Items {
		l := p.labels(&b.Items[i])
		out, keep := p.apply(*l)
		if !keep {
			continue
		}
		*l = out
		if n != i {
			b.Items[n] = b.Items[i]
		}
		n++
	}
	p.mu.Unlock()
	if n < len(b.Items) {
		clear(b.Items[n:])
		b.Items = b.Items[:n]
	}
	return b, nil
}

func (p *Processor[T]) apply(in labels.Labels) (labels.Labels, bool) {
	if p.size < 0 {
		return p.compute(in)
	}
	h := in.Hash()
	for _, c := range p.cache[h] {
		if labels.Equal(c.in, in) {
			return c.out, c.keep
		}
	}
	out, keep := p.compute(in)
	if p.cache == nil || p.n >= p.size {
		p.cache = make(map[uint64][]cached, min(p.size, 1024))
		p.n = 0
	}
	p.cache[h] = append(p.cache[h], cached{in: in, out: out, keep: keep})
	p.n++
	return out, keep
}

func (p *Processor[T]) compute(in labels.Labels) (labels.Labels, bool) {
	p.lb.Reset(in)
	if !p.rules.ProcessBuilder(p.lb) {
		return labels.EmptyLabels(), false
	}
	return p.lb.Labels(), true
}
