package scrape

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"log/slog"
	"math"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"
	"github.com/prometheus/prometheus/model/value"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/internal/gunzip"
	"github.com/ferrydev/ferry/internal/labelsenc"
	"github.com/ferrydev/ferry/source"
)

// Errors a scrape fails with; the returned errors wrap them with details.
var (
	ErrBodySizeLimit  = errors.New("body size limit exceeded")
	ErrSampleLimit    = errors.New("sample limit exceeded")
	ErrLabelLimit     = errors.New("label limit exceeded")
	ErrContentType    = errors.New("unsupported Content-Type")
	ErrHTTPStatus     = errors.New("unexpected HTTP status")
	errParserPanicked = errors.New("parser panicked")
)

// The automatic series names.
const (
	upName             = "up"
	durationName       = "scrape_duration_seconds"
	scrapedName        = "scrape_samples_scraped"
	postRelabelName    = "scrape_samples_post_metric_relabeling"
	seriesAddedName    = "scrape_series_added"
	cacheEvictAfter    = 10 // scrapes a series may be absent before its cache entry goes
	metadataEvery      = 10 // metadata is recorded from the first scrape and every tenth
	maxReportedSamples = 1 << 20
)

var reportNames = []string{upName, durationName, scrapedName, postRelabelName, seriesAddedName}

// seriesKey is the key of a series in a loop's cache: the hash of its bytes
// in the page, with hash/maphash under a seed chosen when the process
// starts. That hash is about three times faster than xxhash on series of
// 10 to 80 bytes (5 against 14 ns), and a target cannot write two series
// that collide on purpose, as it could with a hash everyone can compute.
func seriesKey(series []byte) uint64 { return maphash.Bytes(keySeed, series) }

var keySeed = maphash.MakeSeed()

// cacheEntry is what a scrape loop remembers about one series, found by
// the 64-bit hash of its bytes in the page (seriesKey; a collision among one
// target's series is as unlikely as Prometheus's own series-hash collisions): where
// its final labels are held in loop.held, so that a series seen
// before costs no label parsing or relabeling, and whether the last
// successful scrape and the current one delivered it, from which staleness
// follows.
//
// It is kept small (16 bytes, no pointers) and stored by value in
// loop.entries, so that a target's cache is a few large objects, not one
// per series, and nothing the collector has to trace. To fit, the length
// of the labels takes 16 bits (a longer one is stored in held, see span)
// and the mark 8 bits: it is compared with the low byte of loop.iter, and no
// entry is older than 2*cacheEvictAfter scrapes (evict), far below 256.
type cacheEntry struct {
	key   uint64 // the hash of the series' bytes in the page
	off   uint32 // where its labels start in loop.held (see span)
	n     uint16 // their length, or longLabels
	mark  uint8  // the low byte of the last scrape (loop.iter) that parsed it
	flags entryFlags
}

// longLabels in cacheEntry.n says that the labels are 64 KiB or more:
// held[off:off+4] holds their length, little-endian, and they follow.
const longLabels = math.MaxUint16

type entryFlags uint8

const (
	used     entryFlags = 1 << iota // the slot holds an entry
	keep                            // relabeling kept the series
	explicit                        // carried its own timestamp when last seen
	bad                             // violates a label limit, see loop.errs
	promText                        // made from the Prometheus text format, see skimText
	prev                            // delivered by the last scrape, which succeeded
	now                             // delivered by the current scrape
)

func (ce *cacheEntry) has(f entryFlags) bool { return ce.flags&f != 0 }

// loop scrapes one target.
type loop struct {
	s      *Scraper
	t      target
	cancel context.CancelFunc
	rep    ferry.Reporter // the Scraper's, from Start
	log    *slog.Logger

	statusMu sync.Mutex
	status   TargetStatus

	// Owned by the loop's goroutine.
	index   seriesIndex // page-bytes hash of a series -> its slot in entries
	entries []cacheEntry
	free    []int32        // unused slots of entries
	held    []byte         // the labels of the entries (see hold)
	sorted  []labels.Label // scratch for hold
	// targetLabels are t.labels, for merge.
	targetLabels []labels.Label
	dead         int              // bytes of held no entry uses
	errs         map[uint64]error // the label-limit violations of bad entries, by page-bytes hash
	iter         uint32           // the current scrape (0 is skipped when it wraps)
	report       []labels.Labels  // labels of the automatic series
	lb           *labels.Builder
	scratch      labels.Labels // the labels of the series relabel resolves
	st           *labels.SymbolTable
	lastLen      int

	// Two spellings of one series in a page (labels in another order, or
	// made equal by metric relabeling) must be delivered once. finals holds
	// the sorted label hashes of the kept entries, fresh those of entries
	// made by the current scrape; only once two entries share a label hash
	// is the loop aliased, and then every scrape records what it delivered
	// in dedup. A page without such twins pays nothing per sample for this.
	// finals is built when a scrape makes a new entry and dropped after a
	// scrape that made none: a target whose series stay the same holds no
	// label hashes (8 bytes a series) after its first scrape.
	finals   []uint64
	finalsOK bool // finals is built
	made     int  // entries made by the current scrape
	fresh    map[uint64]struct{}
	aliased  bool
	dedup    map[uint64]struct{}

	req         *http.Request // the scrapes' request, without a context (see request)
	textCtype   string        // the Content-Type of the last page in the text format (see parser)
	textCtypeOK bool

	noSkim  bool // tests: textparse reads every line (see skimText)
	allMeta bool // tests: every scrape records metadata
}

// Buffers shared by all loops: only scrapes in progress hold one.
var (
	bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}
	// rawPool holds gzip bodies, bufPool pages.
	rawPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}
	mapPool = sync.Pool{New: func() any { return map[uint64]struct{}{} }}
)

const maxPooledBuf = 4 << 20

func newLoop(s *Scraper, t target) *loop {
	l := &loop{
		s:   s,
		t:   t,
		rep: s.rep,
		log: s.log,
		lb:  labels.NewBuilder(labels.EmptyLabels()),
		st:  labels.NewSymbolTable(),
	}
	if l.rep == nil { // a loop of a Scraper not started (tests)
		l.rep = ferry.NopReporter()
		l.log = l.rep.Logger()
	}
	for _, name := range reportNames {
		l.lb.Reset(t.labels)
		l.lb.Set(model.MetricNameLabel, name)
		l.report = append(l.report, l.lb.Labels())
	}
	t.labels.Range(func(x labels.Label) { l.targetLabels = append(l.targetLabels, x) })
	l.status = TargetStatus{Labels: t.labels, URL: t.url}
	return l
}

// run scrapes the target until ctx is done, the first time after offset,
// then once an interval on the same phase (a scrape that overruns skips the
// ticks it missed), and calls done once it stopped. No goroutine waits
// between scrapes: its timer (time.AfterFunc) hands each scrape to w, so an
// idle target costs a timer, not a goroutine and its stack. When ctx is
// done while Run goes on, the target went away: every series it had is
// marked stale, as Prometheus does.
func (l *loop) run(runCtx, ctx context.Context, out chan<- ferry.Batch[ferry.Sample], offset time.Duration, w *workers, done func()) {
	var (
		mu      sync.Mutex
		timer   *time.Timer
		busy    bool // a scrape is running; it stops the loop if ctx is done
		scraped bool
		stopped bool
	)
	next := time.Now().Add(offset) // the tick being waited for
	finish := func() {
		if scraped && runCtx.Err() == nil {
			l.sendEndOfRunStaleness(runCtx, out)
		}
		done()
	}
	mu.Lock()
	defer mu.Unlock()
	scrape := func() {
		mu.Lock()
		if stopped {
			mu.Unlock()
			return
		}
		busy, scraped = true, true
		mu.Unlock()
		l.scrapeAndSend(ctx, out, time.Now())
		mu.Lock()
		busy = false
		if ctx.Err() != nil {
			stopped = true
			mu.Unlock()
			finish()
			return
		}
		now := time.Now()
		if late := now.Sub(next); late >= 0 {
			next = next.Add((late/l.t.interval + 1) * l.t.interval)
		}
		timer.Reset(next.Sub(now))
		mu.Unlock()
	}
	timer = time.AfterFunc(offset, func() { w.do(scrape) })
	context.AfterFunc(ctx, func() {
		mu.Lock()
		if busy || stopped {
			mu.Unlock()
			return
		}
		stopped = true
		timer.Stop()
		mu.Unlock()
		finish()
	})
}

func (l *loop) sendEndOfRunStaleness(ctx context.Context, out chan<- ferry.Batch[ferry.Sample]) {
	ts := time.Now().UnixMilli()
	items := l.appendStale(make([]ferry.Sample, 0, l.lastLen), ts, true)
	stale := math.Float64frombits(value.StaleNaN)
	for _, r := range l.report {
		items = append(items, ferry.Sample{Labels: r, T: ts, V: stale})
	}
	_ = source.Send(ctx, out, ferry.Batch[ferry.Sample]{Items: items})
}

// scrapeAndSend performs one scrape and emits its batch.
func (l *loop) scrapeAndSend(ctx context.Context, out chan<- ferry.Batch[ferry.Sample], start time.Time) {
	ts := start.UnixMilli()
	body, gz, ctype, err := l.fetch(ctx)
	if ctx.Err() != nil {
		put(bodyPool(gz), body)
		return // stopping: no verdict on this target
	}
	// What follows is work for the CPU alone: it waits for a slot, so
	// that when the machine falls behind, the scrapes whose answers came
	// in wait with their compressed bodies, not with their pages
	// decompressed and half parsed.
	select {
	case cpuSlots <- struct{}{}:
	case <-ctx.Done():
		put(bodyPool(gz), body)
		return
	}
	// A fresh slice per scrape, not a pooled one: a pooled slice would be
	// pinned by the batch's Ack until the sink delivered it, while a sink
	// that copies samples (remote write) lets a fresh one go at once. It is
	// made here, not before the fetch, so that scrapes waiting on their
	// targets or for a slot hold none.
	items := make([]ferry.Sample, 0, l.lastLen+len(l.report)+16)
	page := body
	if err == nil && gz {
		page, err = l.gunzip(body)
		put(&rawPool, body)
	}
	var pageBytes []byte
	if err == nil {
		pageBytes = page.Bytes()
	}
	items, st, err := l.scrapePage(items, pageBytes, ctype, ts, err)
	if page != nil {
		put(&bufPool, page)
	}
	dur := time.Since(start)
	up := 1.0
	if err != nil {
		up = 0
	}
	items = append(items,
		ferry.Sample{Labels: l.report[0], T: ts, V: up},
		ferry.Sample{Labels: l.report[1], T: ts, V: dur.Seconds()},
		ferry.Sample{Labels: l.report[2], T: ts, V: float64(st.scraped)},
		ferry.Sample{Labels: l.report[3], T: ts, V: float64(st.post)},
		ferry.Sample{Labels: l.report[4], T: ts, V: float64(st.added)},
	)
	l.lastLen = min(len(items), maxReportedSamples)
	<-cpuSlots
	l.statusMu.Lock()
	was := l.status.Health
	l.status.LastScrape, l.status.LastDuration, l.status.LastError, l.status.LastSamples = start, dur, err, st.post
	if err != nil {
		l.status.Health = ferry.Failing
	} else {
		l.status.Health = ferry.Healthy
	}
	if err != nil || l.status.Health != was {
		l.s.healthChanged.Store(true)
	}
	l.statusMu.Unlock()
	if err != nil {
		l.log.Debug("scrape failed", "url", l.t.url, "err", err)
	}
	_ = source.Send(ctx, out, ferry.Batch[ferry.Sample]{Items: items})
}

// commit ends the current scrape: it appends a staleness marker for every
// series of the previous successful scrape that this one did not deliver
// (all of them if it failed), records what it delivered, and forgets
// series not parsed for a while.
func (l *loop) commit(items []ferry.Sample, ts int64, ok bool) []ferry.Sample {
	if !ok {
		clear(l.dedup)
	}
	items = l.appendStale(items, ts, !ok)
	for i := range l.entries {
		ce := &l.entries[i]
		f := ce.flags &^ (prev | now)
		if ok && ce.has(now) {
			f |= prev
		}
		ce.flags = f
	}
	putMap(&l.dedup)
	l.mergeFresh()
	if l.iter%cacheEvictAfter == 0 {
		l.evict()
	}
	if l.made == 0 {
		l.finals, l.finalsOK = nil, false
	} else if l.made == len(l.entries)-len(l.free) && cap(l.held)-len(l.held) > len(l.held)/4 {
		// A first page, which made every entry: presize guessed high, or
		// held grew by appending. Later growth is left as append made it,
		// not compacted after each scrape with a new series (which would
		// copy held and grow it again at the next one); evict compacts
		// what evicted series leave.
		l.compact()
	}
	l.made = 0
	return items
}

// appendStale adds a staleness marker for every series delivered by the
// previous successful scrape and not by the current one, or for all of them.
func (l *loop) appendStale(items []ferry.Sample, ts int64, all bool) []ferry.Sample {
	stale := math.Float64frombits(value.StaleNaN)
	for i := range l.entries {
		ce := &l.entries[i]
		if !ce.has(prev) || ce.has(now) && !all || (ce.has(explicit) && !l.s.TrackTimestampsStaleness) {
			continue
		}
		if l.aliased {
			if _, ok := l.dedup[l.labelsOf(ce).Hash()]; ok {
				continue // delivered now under another spelling
			}
		}
		items = append(items, ferry.Sample{Labels: l.labelsOf(ce), T: ts, V: stale})
	}
	return items
}

// evict forgets the series not parsed for cacheEvictAfter scrapes, and
// gives back the memory of a cache that shrank. None of them can still be
// owed a staleness marker: the last successful scrape (if the last scrape
// did not fail) is more recent than that.
func (l *loop) evict() {
	n := 0
	for i := range l.entries {
		ce := &l.entries[i]
		if !ce.has(used) || uint8(l.iter)-ce.mark < cacheEvictAfter {
			continue
		}
		delete(l.errs, ce.key)
		l.dead += l.size(ce)
		*ce = cacheEntry{}
		l.free = append(l.free, int32(i))
		n++
	}
	if n == 0 {
		return
	}
	if len(l.free) > len(l.entries)/2 {
		entries := make([]cacheEntry, 0, len(l.entries)-len(l.free))
		for i := range l.entries {
			if l.entries[i].has(used) {
				entries = append(entries, l.entries[i])
			}
		}
		l.entries, l.free = entries, nil
	}
	if l.dead > len(l.held)/2 {
		l.compact()
	}
	l.index.rebuild(l.entries, indexSize(len(l.entries)-len(l.free)))
	l.buildFinals()
	l.aliased = false
	for i := 1; i < len(l.finals); i++ {
		if l.finals[i] == l.finals[i-1] {
			l.aliased = true
			break
		}
	}
}

// buildFinals collects the sorted label hashes of the kept entries.
func (l *loop) buildFinals() {
	l.finals = l.finals[:0]
	for i := range l.entries {
		if ce := &l.entries[i]; ce.has(keep) {
			l.finals = append(l.finals, l.labelsOf(ce).Hash())
		}
	}
	slices.Sort(l.finals)
	l.finalsOK = true
}

// mergeFresh adds the label hashes of the entries the scrape made to
// finals.
func (l *loop) mergeFresh() {
	if len(l.fresh) == 0 {
		putMap(&l.fresh)
		return
	}
	if n := len(l.finals) + len(l.fresh); cap(l.finals) < n {
		// Sized to fit: the usual case is a target's whole first page.
		l.finals = append(make([]uint64, 0, n+n/8), l.finals...)
	}
	for h := range l.fresh {
		l.finals = append(l.finals, h)
	}
	slices.Sort(l.finals)
	putMap(&l.fresh)
}

// isTwin reports whether the label hash h is that of a series the cache
// already holds, and records it among the fresh ones. The scrape's first
// call builds finals if needed: the entry being made is not stored yet,
// and no other was made before it.
func (l *loop) isTwin(h uint64) bool {
	if !l.finalsOK {
		l.buildFinals()
	}
	if _, ok := slices.BinarySearch(l.finals, h); ok {
		return true
	}
	if l.fresh == nil {
		l.fresh = mapPool.Get().(map[uint64]struct{})
	}
	if _, ok := l.fresh[h]; ok {
		return true
	}
	l.fresh[h] = struct{}{}
	return false
}

// startDedup makes the loop aliased in the middle of a scrape: what the
// scrape delivered so far is recorded, and so is everything after it.
func (l *loop) startDedup() {
	l.aliased = true
	if l.dedup == nil {
		l.dedup = mapPool.Get().(map[uint64]struct{})
	}
	for i := range l.entries {
		if ce := &l.entries[i]; ce.has(now) {
			l.dedup[l.labelsOf(ce).Hash()] = struct{}{}
		}
	}
}

// putMap returns a scratch set to the pool (unless it grew huge).
func putMap(m *map[uint64]struct{}) {
	if *m == nil {
		return
	}
	if len(*m) <= 1<<16 {
		clear(*m)
		mapPool.Put(*m)
	}
	*m = nil
}

// nextIter starts a scrape: 0 stays reserved for "none".
func (l *loop) nextIter() {
	l.iter++
	if l.iter == 0 {
		l.iter = 1
	}
}

// recordsMeta reports whether this scrape records the metadata of the
// page's families: the first and every metadataEvery-th.
func (l *loop) recordsMeta() bool { return l.iter%metadataEvery == 1 || l.allMeta }

// bodyPool is the pool of the buffer fetch reads a body into: rawPool if
// it is gzip-compressed, bufPool if it is the page.
func bodyPool(gz bool) *sync.Pool {
	if gz {
		return &rawPool
	}
	return &bufPool
}

// put returns b to pool unless it grew huge.
func put(pool *sync.Pool, b *bytes.Buffer) {
	if b != nil && b.Cap() <= maxPooledBuf {
		b.Reset()
		pool.Put(b)
	}
}

// cpuSlots bounds the scrapes of the process that decompress and parse a
// page at a time to a few per CPU: more would not finish sooner. A scrape
// waits for a slot only as long as its context lives.
var cpuSlots = make(chan struct{}, 4*runtime.GOMAXPROCS(0))

// fetch GETs the body into a pooled buffer, as it came (gz says whether
// it is gzip-compressed), and returns it with its Content-Type. The caller
// returns the buffer to bodyPool(gz).
func (l *loop) fetch(ctx context.Context) (_ *bytes.Buffer, gz bool, _ string, _ error) {
	req, err := l.request()
	if err != nil {
		return nil, false, "", err
	}
	ctx, cancel := context.WithTimeout(ctx, l.t.timeout)
	defer cancel()
	// Set by Start before Run made this loop, and not changed since.
	resp, err := l.s.client.Do(req.WithContext(ctx))
	if err != nil {
		return nil, false, "", err
	}
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
	}()
	if resp.StatusCode != http.StatusOK {
		return nil, false, "", fmt.Errorf("%w: server returned HTTP status %s", ErrHTTPStatus, resp.Status)
	}
	gz = strings.EqualFold(resp.Header.Get("Content-Encoding"), "gzip")
	// The limit is on the page; compressed, a page of that size takes at
	// most a little more (gzip's stored blocks), checked by gunzip. A gzip
	// body goes to a buffer of its own pool: those of pages are several
	// times larger, and bodies wait for a CPU slot in them.
	bound := l.s.BodySizeLimit
	if gz {
		bound += bound/64 + 1<<10
	}
	buf, err := l.readBody(bodyPool(gz), resp.Body, bound, "body")
	if err != nil {
		return nil, false, "", err
	}
	return buf, gz, resp.Header.Get("Content-Type"), nil
}

// request returns the GET of the loop's target, made by its first scrape
// and reused by every later one with that scrape's context, as Prometheus
// reuses its scrape request: the URL is parsed and the headers set once a
// target, not once a scrape. The requests share one Header, which neither
// the loop nor the client writes (a RoundTripper must not change the
// request it sends).
func (l *loop) request() (*http.Request, error) {
	if l.req != nil {
		return l.req, nil
	}
	req, err := http.NewRequest(http.MethodGet, l.t.url, nil)
	if err != nil {
		return nil, err
	}
	for k, v := range l.s.Headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Accept", l.s.accept)
	if l.s.DisableCompression {
		req.Header.Set("Accept-Encoding", "identity")
	} else {
		req.Header.Set("Accept-Encoding", "gzip")
	}
	req.Header.Set("User-Agent", defaultStr(l.s.UserAgent, DefaultUserAgent))
	req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", strconv.FormatFloat(l.t.timeout.Seconds(), 'f', -1, 64))
	l.req = req
	return req, nil
}

// readBody reads r into a buffer of pool. With a BodySizeLimit, more than
// bound bytes fail with ErrBodySizeLimit; what names r in other errors.
func (l *loop) readBody(pool *sync.Pool, r io.Reader, bound int64, what string) (*bytes.Buffer, error) {
	limit := l.s.BodySizeLimit
	if limit > 0 {
		r = io.LimitReader(r, bound+1)
	}
	buf := pool.Get().(*bytes.Buffer)
	buf.Reset()
	n, err := buf.ReadFrom(r)
	if err != nil {
		err = fmt.Errorf("reading %s: %w", what, err)
	} else if limit > 0 && n > bound {
		err = fmt.Errorf("%w: more than %d bytes (body_size_limit)", ErrBodySizeLimit, limit)
	}
	if err != nil {
		put(pool, buf)
		return nil, err
	}
	return buf, nil
}

// gunzip decompresses the gzip body raw into a pooled buffer.
func (l *loop) gunzip(raw *bytes.Buffer) (*bytes.Buffer, error) {
	page := bufPool.Get().(*bytes.Buffer)
	page.Reset()
	out, err := gunzip.Append(page.AvailableBuffer(), raw.Bytes(), int(l.s.BodySizeLimit))
	if err != nil {
		put(&bufPool, page)
		if errors.Is(err, gunzip.ErrTooLarge) {
			return nil, fmt.Errorf("%w: more than %d bytes (body_size_limit)", ErrBodySizeLimit, l.s.BodySizeLimit)
		}
		return nil, fmt.Errorf("gzip: %w", err)
	}
	// The page takes the slice gunzip wrote, grown or not.
	*page = *bytes.NewBuffer(out)
	return page, nil
}

type stats struct {
	scraped, post, added int
	dups                 int // series given twice in the page, dropped
}

// scrapePage is what a scrape does after fetching: parse page (unless the
// fetch failed with fetchErr), count what was dropped, then commit. A
// failed scrape contributes no samples, only staleness markers for every
// series of the last successful one, and st.post and st.added are 0.
func (l *loop) scrapePage(items []ferry.Sample, page []byte, ctype string, ts int64, fetchErr error) (_ []ferry.Sample, st stats, err error) {
	l.nextIter()
	err = fetchErr
	if err == nil {
		items, st, err = l.append(items, page, ctype, ts)
	}
	if st.dups > 0 {
		l.rep.Dropped("duplicate_series", st.dups)
	}
	switch {
	case errors.Is(err, ErrSampleLimit):
		l.rep.Dropped("sample_limit", st.post)
	case errors.Is(err, ErrLabelLimit):
		l.rep.Dropped("label_limit", st.post)
	}
	if err != nil {
		// Drop what a partial parse produced, so that every earlier
		// series gets a marker.
		clear(items)
		items = items[:0]
		st.post, st.added = 0, 0
	}
	return l.commit(items, ts, err == nil), st, err
}

// append parses page into samples appended to items. On error the caller
// discards them.
func (l *loop) append(items []ferry.Sample, page []byte, ctype string, ts int64) (_ []ferry.Sample, st stats, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", errParserPanicked, r)
		}
	}()
	p, err := l.parser(page, ctype)
	if err != nil {
		return items, st, err
	}
	_, text := p.(*textparse.PromParser)
	text = text || p == nil
	if _, proto := p.(*textparse.ProtobufParser); !proto {
		// The text parsers take a NUL byte for the end of the page: what
		// follows would vanish without an error, and a page of garbage
		// that starts with one would pass as an empty page.
		if i := bytes.IndexByte(page, 0); i >= 0 {
			return items, st, fmt.Errorf("parsing page: NUL byte at offset %d", i)
		}
		if len(l.entries) == 0 {
			items = l.presize(items, page)
		}
	}
	if l.aliased && l.dedup == nil {
		l.dedup = mapPool.Get().(map[uint64]struct{})
	}
	if text && !l.noSkim {
		if items, p, err = l.skimText(items, page, ts, &st); p == nil || err != nil {
			return items, st, err
		}
	} else if p == nil {
		p = textparse.NewPromParser(page, l.st, false)
	}
	next := int32(0) // see slot
	for {
		e, err := p.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return items, st, fmt.Errorf("parsing page: %w", err)
		}
		switch e {
		case textparse.EntryType:
			if l.recordsMeta() {
				name, typ := p.Type()
				l.s.meta.update(name, metaType, typ, nil)
			}
			continue
		case textparse.EntryHelp:
			if l.recordsMeta() {
				name, help := p.Help()
				l.s.meta.update(name, metaHelp, "", help)
			}
			continue
		case textparse.EntryUnit:
			if l.recordsMeta() {
				name, unit := p.Unit()
				l.s.meta.update(name, metaUnit, "", unit)
			}
			continue
		case textparse.EntrySeries:
		default:
			continue // comments; native histograms are not carried yet
		}
		met, tp, v := p.Series()
		key := seriesKey(met)
		i, ok := l.slot(next, key)
		if !ok {
			i, _ = l.newEntry(p, met, key, typeNotKnown)
		}
		next = i + 1
		var pt int64
		if tp != nil {
			pt = *tp
		}
		if items, err = l.take(items, i, pt, tp != nil, v, ts, &st); err != nil {
			return items, st, err
		}
	}
	return items, st, nil
}

// parser returns textparse's parser of page, given its Content-Type, or
// nil for a page in the Prometheus text format with the Content-Type of the
// last such page: the loop knows its format without parsing the media type
// again, and skimText reads such a page without a parser (it makes one for
// what it leaves).
func (l *loop) parser(page []byte, ctype string) (textparse.Parser, error) {
	if l.textCtypeOK && ctype == l.textCtype {
		return nil, nil
	}
	fallback := ""
	if l.s.FallbackProtocol != "" {
		fallback = mediaTypes[l.s.FallbackProtocol]
		if i := strings.IndexByte(fallback, ';'); i >= 0 {
			fallback = fallback[:i]
		}
	}
	p, perr := textparse.New(page, ctype, l.st, textparse.ParserOptions{
		IgnoreNativeHistograms: true,
		FallbackContentType:    fallback,
	})
	if p == nil {
		if perr == nil {
			perr = fmt.Errorf("Content-Type %q", ctype)
		}
		return nil, fmt.Errorf("%w: %w", ErrContentType, perr)
	}
	if _, text := p.(*textparse.PromParser); text {
		l.textCtype, l.textCtypeOK = ctype, true
	}
	return p, nil
}

// take records that the page gave the series of entries[i] the value v,
// with the timestamp pt if hasTS (else the scrape's, ts), and appends its
// sample to items unless the series is dropped, repeated or over a limit.
func (l *loop) take(items []ferry.Sample, i int32, pt int64, hasTS bool, v float64, ts int64, st *stats) ([]ferry.Sample, error) {
	st.scraped++
	hasTS = hasTS && !l.s.IgnoreTimestamps
	t := ts
	if hasTS {
		t = pt
	}
	ce := &l.entries[i]
	if ce.mark == uint8(l.iter) {
		st.dups++
		return items, nil // the same series twice in one page: keep the first
	}
	ce.mark = uint8(l.iter)
	if !ce.has(keep) {
		return items, nil
	}
	if ce.has(bad) {
		return items, l.errs[ce.key]
	}
	if l.aliased {
		h := l.labelsOf(ce).Hash()
		if _, dup := l.dedup[h]; dup {
			st.dups++
			return items, nil // another spelling of a series already delivered
		}
		l.dedup[h] = struct{}{}
	}
	if hasTS {
		ce.flags |= explicit
	} else {
		ce.flags &^= explicit
	}
	ce.flags |= now
	if !ce.has(prev) {
		st.added++
	}
	st.post++
	if lim := l.s.SampleLimit; lim > 0 && st.post > lim {
		return items, fmt.Errorf("%w: more than %d samples (sample_limit)", ErrSampleLimit, lim)
	}
	return append(items, ferry.Sample{Labels: l.labelsOf(ce), T: t, V: v}), nil
}

// presize sizes an empty cache, and items, for the series a target's
// first text page holds: a new target's first scrape does not grow them
// step by step (garbage, when hundreds of targets start at once; and the
// samples of the scrape would keep each slice held grew through), and the
// cache holds little spare capacity.
func (l *loop) presize(items []ferry.Sample, page []byte) []ferry.Sample {
	n, text := seriesLines(page)
	n = min(n, maxPresize)
	if lim := l.s.SampleLimit; lim > 0 {
		n = min(n, lim+1)
	}
	if n <= cap(l.entries) {
		return items
	}
	l.entries = make([]cacheEntry, 0, n)
	size := 16
	for size*3 < n*4 {
		size *= 2 // as full as add lets it be: most pages do not grow
	}
	l.index.rebuild(l.entries, size)
	// held: the page's own labels take as many bytes encoded as in the
	// text (see seriesLines), and each series has the target's labels.
	tl := len(labelsenc.Append(nil, l.t.labels))
	l.held = make([]byte, 0, text+n*tl)
	return slices.Grow(items, n+len(l.report))
}

// maxPresize bounds what presize takes from a page, which may be hostile.
const maxPresize = 1 << 16

// seriesLines counts the lines of a text page that are neither blank nor
// comments, the number of samples if every series is well-formed, and the
// bytes their labels take encoded (see labelsenc) if they are spelt
// plainly: a series name{a="b",c="d"} (the text up to the last '}', or to
// the first space) becomes the label __name__ (10 bytes more than the name)
// and labels of 2 bytes less each than a="b" with its comma, the last one
// having none and the braces 2 more.
func seriesLines(page []byte) (n, size int) {
	for len(page) > 0 {
		line := page
		if i := bytes.IndexByte(page, '\n'); i >= 0 {
			line, page = page[:i], page[i+1:]
		} else {
			page = nil
		}
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		n++
		if i := bytes.LastIndexByte(line, '}'); i >= 0 {
			k := bytes.Count(line[:i], []byte(`="`))
			size += i + 1 + 10 - 2*k - min(k, 1)
		} else if i := bytes.IndexByte(line, ' '); i >= 0 {
			size += i + 10
		} else {
			size += len(line) + 10
		}
	}
	return n, size
}

// newEntry resolves the labels of a new series (target labels attached,
// HonorLabels deciding conflicts, metric relabeling applied, limits
// checked) and stores them under key, its page-bytes hash. It returns the
// slot. The series is p's current one, whose bytes are met; with p nil,
// met are the bytes of a series skimText found, and newEntry makes the
// entry only if they have the plain form (plainLabels), reporting false
// otherwise. typ is the type of the last TYPE line before the series, or
// typeNotKnown.
func (l *loop) newEntry(p textparse.Parser, met []byte, key uint64, typ model.MetricType) (int32, bool) {
	ce := cacheEntry{key: key, flags: used, mark: uint8(l.iter) - 1} // not parsed by this scrape yet
	// On the stack: the strings stored in it take no write barriers.
	var buf [32]labels.Label
	pairs, plain := buf[:0], false
	if _, text := p.(*textparse.PromParser); text || p == nil {
		ce.flags |= promText
		pairs, plain = plainLabels(pairs, met, typ)
	}
	switch {
	case plain:
	case p == nil:
		return 0, false
	default:
		p.Labels(&l.scratch)
		l.scratch.Range(func(x labels.Label) { pairs = append(pairs, x) })
	}
	ls, ok, err := l.merge(&ce, pairs)
	if !ok {
		if plain {
			l.scratch = labels.New(pairs...)
		}
		ls, err = l.relabel(&ce)
	}
	if !ls.IsEmpty() || err != nil {
		ce.flags |= keep
		if err == nil {
			err = l.checkLimits(ls)
		}
		if err != nil {
			ce.flags |= bad
			if l.errs == nil {
				l.errs = map[uint64]error{}
			}
			l.errs[key] = err
		}
		if !ls.IsEmpty() && l.isTwin(ls.Hash()) && !l.aliased {
			l.startDedup()
		}
	}
	l.made++
	var i int32
	if n := len(l.free); n > 0 {
		i, l.free = l.free[n-1], l.free[:n-1]
		l.entries[i] = ce
	} else {
		i = int32(len(l.entries))
		l.entries = append(l.entries, ce)
	}
	l.index.add(l.entries, i)
	return i, true
}

// relabel resolves the labels of l.scratch, the new series' labels,
// with a labels.Builder: target labels attached, HonorLabels deciding
// conflicts, metric relabeling applied. It holds and returns the result,
// or empty labels if a rule dropped the series.
func (l *loop) relabel(ce *cacheEntry) (labels.Labels, error) {
	lb := l.lb
	lb.Reset(l.scratch)
	if l.s.HonorLabels {
		l.t.labels.Range(func(tl labels.Label) {
			if lb.Get(tl.Name) == "" {
				lb.Set(tl.Name, tl.Value)
			}
		})
	} else {
		l.t.labels.Range(func(tl labels.Label) {
			if v := lb.Get(tl.Name); v != "" {
				name := "exported_" + tl.Name
				for lb.Get(name) != "" || l.t.labels.Has(name) {
					name = "exported_" + name
				}
				lb.Set(name, v)
			}
			lb.Set(tl.Name, tl.Value)
		})
	}
	if !l.s.metricRules.ProcessBuilder(lb) {
		return labels.EmptyLabels(), nil
	}
	return l.hold(ce, lb)
}

// merge is newEntry's common case, without a labels.Builder: no metric
// relabeling, and none of pairs (the series' labels, in name order) named
// as a target label, so that HonorLabels decides nothing. It holds the
// union of pairs and the target's labels in name order, without the
// labels of empty value (which the builder would delete), and returns
// them; it holds nothing and reports false when the case is not that one,
// for relabel to resolve the labels.
func (l *loop) merge(ce *cacheEntry, pairs []labels.Label) (_ labels.Labels, ok bool, _ error) {
	if l.s.metricRules.Len() > 0 {
		return labels.EmptyLabels(), false, nil
	}
	off := len(l.held)
	held, tl, j := l.held, l.targetLabels, 0
	for _, x := range pairs {
		for j < len(tl) && tl[j].Name < x.Name {
			held = appendNonEmpty(held, tl[j])
			j++
		}
		if j < len(tl) && tl[j].Name == x.Name {
			l.held = held[:off]
			return labels.EmptyLabels(), false, nil
		}
		held = appendNonEmpty(held, x)
	}
	for ; j < len(tl); j++ {
		held = appendNonEmpty(held, tl[j])
	}
	l.held = held
	ls, err := l.seal(ce, off)
	return ls, true, err
}

// appendNonEmpty appends the encoding of x to b unless its value is empty.
func appendNonEmpty(b []byte, x labels.Label) []byte {
	if x.Value == "" {
		return b
	}
	return labelsenc.AppendLabel(b, x)
}

// checkLimits checks ls against the Scraper's label limits.
func (l *loop) checkLimits(ls labels.Labels) error {
	if l.s.LabelLimit <= 0 && l.s.LabelNameLengthLimit <= 0 && l.s.LabelValueLengthLimit <= 0 {
		return nil
	}
	name := ls.Get(model.MetricNameLabel)
	if lim := l.s.LabelLimit; lim > 0 && ls.Len() > lim {
		return fmt.Errorf("%w: label_limit exceeded (metric: %.50s, number of labels: %d, limit: %d)", ErrLabelLimit, name, ls.Len(), lim)
	}
	var err error
	ls.Range(func(lab labels.Label) {
		if err != nil {
			return
		}
		if lim := l.s.LabelNameLengthLimit; lim > 0 && len(lab.Name) > lim {
			err = fmt.Errorf("%w: label_name_length_limit exceeded (metric: %.50s, label name: %.50s, length: %d, limit: %d)", ErrLabelLimit, name, lab.Name, len(lab.Name), lim)
		}
		if lim := l.s.LabelValueLengthLimit; lim > 0 && len(lab.Value) > lim && err == nil {
			err = fmt.Errorf("%w: label_value_length_limit exceeded (metric: %.50s, label name: %.50s, value: %.50q, length: %d, limit: %d)", ErrLabelLimit, name, lab.Name, lab.Value, len(lab.Value), lim)
		}
	})
	return err
}

// hold stores the labels lb built, the final labels of ce, in held and
// returns them (a view of held).
//
// A loop keeps the final labels of its series as bytes, not as one
// labels.Labels a series: all of them in one slice, each series a range of
// it (cacheEntry.off and n), in the encoding that the default labels
// implementation views as a labels.Labels without a copy (labelsenc). One
// slice a target instead of a string a series saves the size-class
// rounding and the string header of each, and leaves the cache with no
// pointers for the garbage collector to trace: at 1000 targets of 550
// series that is some 12 MB and half a million objects fewer. hold encodes
// the labels straight from lb: the labels.Labels that lb.Labels would
// allocate would be garbage once held has it.
func (l *loop) hold(ce *cacheEntry, lb *labels.Builder) (labels.Labels, error) {
	sorted := l.sorted[:0]
	lb.Range(func(x labels.Label) { sorted = append(sorted, x) })
	slices.SortFunc(sorted, func(a, b labels.Label) int { return strings.Compare(a.Name, b.Name) })
	off := len(l.held)
	for _, x := range sorted {
		l.held = labelsenc.AppendLabel(l.held, x)
	}
	clear(sorted) // the strings may be parts of the page
	l.sorted = sorted[:0]
	return l.seal(ce, off)
}

// seal makes the labels appended to held from off those of ce, and
// returns them (a view of held).
func (l *loop) seal(ce *cacheEntry, off int) (labels.Labels, error) {
	n := len(l.held) - off
	if n >= longLabels {
		// Rare: the length goes in front of the labels.
		l.held = append(l.held, 0, 0, 0, 0)
		copy(l.held[off+4:], l.held[off:off+n])
		binary.LittleEndian.PutUint32(l.held[off:], uint32(n))
	}
	if len(l.held) > math.MaxUint32 {
		l.held = l.held[:off]
		return labels.EmptyLabels(), fmt.Errorf("%w: the labels of the target's series exceed 4 GiB", ErrLabelLimit)
	}
	ce.off, ce.n = uint32(off), uint16(min(n, longLabels))
	return l.labelsOf(ce), nil
}

// labelsOf returns the final labels of ce, a view of held: held is only
// appended to, and a copy replaces it when it grows or is compacted, so
// the labels of samples still on their way stay as they were.
func (l *loop) labelsOf(ce *cacheEntry) labels.Labels {
	start, end := l.span(ce)
	return labelsenc.View(l.held[start:end:end])
}

// span returns where the labels of ce are in held.
func (l *loop) span(ce *cacheEntry) (start, end int) {
	start = int(ce.off)
	if ce.n != longLabels {
		return start, start + int(ce.n)
	}
	return start + 4, start + 4 + int(binary.LittleEndian.Uint32(l.held[start:]))
}

// size returns the bytes of held that ce takes.
func (l *loop) size(ce *cacheEntry) int {
	_, end := l.span(ce)
	return end - int(ce.off)
}

// compact copies the held labels of the entries in use to a new slice of
// their size; views of the old one stay valid.
func (l *loop) compact() {
	n := 0
	for i := range l.entries {
		if ce := &l.entries[i]; ce.has(used) {
			n += l.size(ce)
		}
	}
	held := make([]byte, 0, n)
	for i := range l.entries {
		ce := &l.entries[i]
		if !ce.has(used) {
			continue
		}
		off := len(held)
		held = append(held, l.held[ce.off:int(ce.off)+l.size(ce)]...)
		ce.off = uint32(off)
	}
	l.held, l.dead = held, 0
}
