package pipeline

import (
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/ferrydev/ferry"
)

// tap is one subscriber to the items a component passes on.
type tap struct {
	ch    chan string
	every int // sample one batch in every
	seen  int
	max   int // items per sampled batch
}

// Tap subscribes to what the named component passes on, for a live view:
// every sampled item is rendered as one line of text (as sink.Console
// writes it) and offered on the returned channel, which holds at most
// buffer lines; lines that do not fit are skipped, never waited for. One
// batch in every `every` is sampled, and of it at most maxItems items. The
// tap costs nothing while nobody listens. Call stop to unsubscribe; it
// closes the channel.
func (p *Pipeline) Tap(name string, buffer, every, maxItems int) (lines <-chan string, stop func(), err error) {
	var c *component
	for _, n := range p.nodes {
		if n.c.name == name {
			c = n.c
		}
	}
	if c == nil {
		return nil, nil, fmt.Errorf("pipeline: no component %q", name)
	}
	t := &tap{ch: make(chan string, max(buffer, 1)), every: max(every, 1), max: max(maxItems, 1)}
	c.mu.Lock()
	cur := c.taps.Load()
	var next []*tap
	if cur != nil {
		next = slices.Clone(*cur)
	}
	next = append(next, t)
	c.taps.Store(&next)
	c.mu.Unlock()
	stopped := false
	return t.ch, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if stopped {
			return
		}
		stopped = true
		cur := c.taps.Load()
		next := slices.DeleteFunc(slices.Clone(*cur), func(x *tap) bool { return x == t })
		if len(next) == 0 {
			c.taps.Store(nil)
		} else {
			c.taps.Store(&next)
		}
		// Sends happen under c.mu (tapItems), so closing here is safe.
		close(t.ch)
	}, nil
}

// tapItems offers items to the component's taps, if there are any.
func (c *component) tapItems(items any) {
	if c.taps.Load() == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	ts := c.taps.Load()
	if ts == nil {
		return
	}
	for _, t := range *ts {
		t.seen++
		if t.seen%t.every != 0 {
			continue
		}
		for _, line := range renderItems(items, t.max) {
			select {
			case t.ch <- line:
			default:
			}
		}
	}
}

func renderItems(items any, limit int) []string {
	var out []string
	switch v := items.(type) {
	case []ferry.Entry:
		for i := range v[:min(limit, len(v))] {
			e := &v[i]
			out = append(out, e.Timestamp.Format("2006-01-02T15:04:05.000Z07:00")+" "+e.Labels.String()+" "+e.Line)
		}
	case []ferry.Sample:
		for i := range v[:min(limit, len(v))] {
			s := &v[i]
			val := strconv.FormatFloat(s.V, 'g', -1, 64)
			if math.IsNaN(s.V) {
				val = "NaN"
			}
			out = append(out, s.Labels.String()+" "+val+" @"+strconv.FormatInt(s.T, 10))
		}
	}
	return out
}
