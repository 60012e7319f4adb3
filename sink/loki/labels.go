package loki

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
)

// stream is what the sink knows about one distinct label set: its rendered
// Loki label string, its tenant, and whether Loki would accept it. It is
// computed once per label set and shared by every entry of the stream.
type stream struct {
	key    string        // {a="b", c="d"}, the stream selector Loki parses
	lbls   labels.Labels // labels sent: external labels merged, "__" labels removed
	json   []byte        // lbls as a JSON object, for the JSON encoding
	tenant string        // from the tenant label; "" means the endpoint's tenant
	err    error         // why Loki would reject this stream; nil when valid
}

// maxCachedStreams bounds the stream cache. When it is full the cache is
// emptied and rebuilt from the streams that still arrive, so memory follows
// the live cardinality and not every label set ever seen.
const maxCachedStreams = 1 << 16

type cacheEntry struct {
	lbls labels.Labels
	s    *stream
}

// streamCache maps entry label sets to streams.
type streamCache struct {
	mu    sync.Mutex
	byH   map[uint64]cacheEntry
	byKey map[string]*stream // tenant + "\xff" + key → canonical stream
	b     labels.Builder
	sb    strings.Builder
	lim   limits
}

type limits struct {
	external       labels.Labels
	tenantLabel    string
	maxNames       int
	maxNameLength  int
	maxValueLength int
	json           bool
}

func newStreamCache(l limits) *streamCache {
	return &streamCache{
		byH:   make(map[uint64]cacheEntry),
		byKey: make(map[string]*stream),
		lim:   l,
	}
}

// resolve fills out[i] with the stream of items' labels. It holds the cache
// lock once for the whole batch; consecutive entries with equal labels (the
// common case) cost one comparison.
func (c *streamCache) resolve(get func(i int) labels.Labels, n int, out []*stream) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var prev labels.Labels
	var prevS *stream
	for i := 0; i < n; i++ {
		ls := get(i)
		if prevS != nil && labels.Equal(ls, prev) {
			out[i] = prevS
			continue
		}
		h := ls.Hash()
		ce, ok := c.byH[h]
		if !ok || !labels.Equal(ce.lbls, ls) {
			s := c.build(ls)
			if !ok {
				if len(c.byH) >= maxCachedStreams {
					clear(c.byH)
					clear(c.byKey)
				}
				c.byH[h] = cacheEntry{lbls: ls, s: s}
			}
			ce.s = s
		}
		prev, prevS = ls, ce.s
		out[i] = ce.s
	}
}

// build computes the stream of label set ls: external labels added where ls
// lacks them, the tenant taken from the tenant label, every label whose name
// starts with "__" removed, the rest sorted, validated and rendered.
func (c *streamCache) build(ls labels.Labels) *stream {
	c.b.Reset(ls)
	c.lim.external.Range(func(l labels.Label) {
		if c.b.Get(l.Name) == "" {
			c.b.Set(l.Name, l.Value)
		}
	})
	tenant := ""
	if c.lim.tenantLabel != "" {
		tenant = c.b.Get(c.lim.tenantLabel)
	}
	c.b.Range(func(l labels.Label) {
		if strings.HasPrefix(l.Name, "__") {
			c.b.Del(l.Name)
		}
	})
	final := c.b.Labels()

	c.sb.Reset()
	c.sb.WriteByte('{')
	n := 0
	final.Range(func(l labels.Label) {
		if n > 0 {
			c.sb.WriteString(", ")
		}
		n++
		c.sb.WriteString(l.Name)
		c.sb.WriteByte('=')
		c.sb.WriteString(strconv.Quote(l.Value))
	})
	c.sb.WriteByte('}')
	key := c.sb.String()

	ck := tenant + "\xff" + key
	if s, ok := c.byKey[ck]; ok {
		return s
	}
	s := &stream{key: key, lbls: final, tenant: tenant}
	s.err = c.lim.validate(final, key)
	if c.lim.json {
		s.json = appendLabelsJSON(nil, final)
	}
	c.byKey[ck] = s
	return s
}

// validate checks ls against the limits Loki enforces by default, so that a
// stream Loki would reject is reported with a clear reason before sending
// rather than as one opaque 400 for a whole batch.
func (l *limits) validate(ls labels.Labels, key string) error {
	n := ls.Len()
	if n == 0 {
		return fmt.Errorf("loki: stream has no labels left after removing those starting with \"__\"; Loki requires at least one")
	}
	if l.maxNames > 0 && n > l.maxNames {
		return fmt.Errorf("loki: stream %s has %d labels, more than the limit of %d", key, n, l.maxNames)
	}
	var err error
	ls.Range(func(lb labels.Label) {
		if err != nil {
			return
		}
		switch {
		case !model.LegacyValidation.IsValidLabelName(lb.Name):
			err = fmt.Errorf("loki: stream %s: label name %q is invalid: it must match [a-zA-Z_][a-zA-Z0-9_]*", key, lb.Name)
		case l.maxNameLength > 0 && len(lb.Name) > l.maxNameLength:
			err = fmt.Errorf("loki: stream %s: label name %.32q... is %d bytes long, more than the limit of %d", key, lb.Name, len(lb.Name), l.maxNameLength)
		case l.maxValueLength > 0 && len(lb.Value) > l.maxValueLength:
			err = fmt.Errorf("loki: stream %.64s...: value of label %q is %d bytes long, more than the limit of %d", key, lb.Name, len(lb.Value), l.maxValueLength)
		case !utf8.ValidString(lb.Value):
			err = fmt.Errorf("loki: stream %s: value of label %q is not valid UTF-8", key, lb.Name)
		}
	})
	return err
}
