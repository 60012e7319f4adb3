package loki

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/internal/retry"
)

// pushBatch is what one push request carries: entries of one tenant, by
// stream, and the upstream acknowledgements it holds a share of.
type pushBatch struct {
	tenant  string
	streams []*streamBuf
	index   map[*stream]int
	bytes   int // payload bytes (ferry.Entry.Size) of the entries
	n       int // entries
	created time.Time
	acks    []*ferry.Ack
	spare   []*streamBuf // streamBufs of earlier use, for reuse
}

func (pb *pushBatch) add(s *stream, e entry, size int) {
	i, ok := pb.index[s]
	if !ok {
		i = len(pb.streams)
		var sb *streamBuf
		if n := len(pb.spare); n > 0 {
			sb, pb.spare = pb.spare[n-1], pb.spare[:n-1]
		} else {
			sb = &streamBuf{}
		}
		sb.s = s
		pb.streams = append(pb.streams, sb)
		pb.index[s] = i
	}
	sb := pb.streams[i]
	sb.entries = append(sb.entries, e)
	pb.bytes += size
	pb.n++
}

// reset empties pb for reuse, dropping every reference to entry data.
func (pb *pushBatch) reset() {
	for _, sb := range pb.streams {
		clear(sb.entries)
		sb.entries = sb.entries[:0]
		sb.s = nil
		pb.spare = append(pb.spare, sb)
	}
	clear(pb.streams)
	pb.streams = pb.streams[:0]
	clear(pb.index)
	clear(pb.acks)
	pb.acks = pb.acks[:0]
	pb.bytes, pb.n = 0, 0
	pb.tenant = ""
}

// tenantQueue holds the sealed batches of one tenant of one endpoint, sent in
// order by one goroutine, so that a tenant that is throttled does not hold
// up the others.
type tenantQueue struct {
	tenant string
	q      []*pushBatch
	wake   chan struct{} // capacity 1
}

// endpoint is one Loki push URL with its own batches, queues and byte budget.
type endpoint struct {
	cfg      *Sink
	url      string
	redacted string // URL without password, for logs and errors
	tenant   string
	headers  map[string]string
	client   *http.Client
	// ownClient is set when the sink built client, and closes its idle
	// connections on Close.
	ownClient bool
	rep       ferry.Reporter
	log       *slog.Logger

	ctx     context.Context // cancelled when Close gives up
	closing chan struct{}   // closed by close
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	mu       sync.Mutex
	open     map[string]*pushBatch
	queues   map[string]*tenantQueue
	buffered int           // bytes in open, queued and in-flight batches
	space    chan struct{} // closed and replaced whenever buffered drops
	free     []*pushBatch
	closed   bool
	healthy  bool
}

func newEndpoint(cfg *Sink, e Endpoint, client *http.Client, rep ferry.Reporter) (*endpoint, error) {
	u, err := parseURL(e.URL)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	ep := &endpoint{
		cfg:      cfg,
		url:      e.URL,
		redacted: u.Redacted(),
		tenant:   e.TenantID,
		headers:  e.Headers,
		client:   client,
		rep:      rep,
		log:      rep.Logger().With("endpoint", u.Redacted()),
		ctx:      ctx,
		cancel:   cancel,
		open:     make(map[string]*pushBatch),
		queues:   make(map[string]*tenantQueue),
		space:    make(chan struct{}),
		closing:  make(chan struct{}),
		healthy:  true,
	}
	ep.wg.Add(1)
	go ep.flushLoop()
	return ep, nil
}

func parseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("loki: invalid endpoint URL: %w", redactErr(err, raw))
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("loki: endpoint URL %s: must be http:// or https:// with a host", u.Redacted())
	}
	return u, nil
}

// redactErr replaces err by one that does not quote raw (which may hold a
// password), keeping only the kind of failure.
func redactErr(err error, raw string) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return errors.New("cannot parse")
}

// add queues items whose streams are resolved in streams (nil: dropped
// already) under ack. It returns a ferry.Permanent error if it dropped
// entries because the buffer was full and the sink drops then, ErrClosed
// if the sink closed, or ctx's error if ctx ended while waiting for room:
// in the last two cases the entries not yet queued are not delivered.
func (ep *endpoint) add(ctx context.Context, items []ferry.Entry, streams []*stream, ack *ferry.Ack, now time.Time) error {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	if ep.closed {
		return ErrClosed
	}
	var dropped int
	var result error
	maxBytes := ep.cfg.maxBuffered()
	for i := range items {
		s := streams[i]
		if s == nil {
			continue
		}
		it := &items[i]
		size := it.Size()
		for ep.buffered > 0 && ep.buffered+size > maxBytes {
			if ep.cfg.DropWhenFull {
				dropped++
				goto next
			}
			// Send what is open now rather than wait for the timer: the
			// room we wait for is only made by sending.
			for _, pb := range ep.open {
				ep.seal(pb)
			}
			ch := ep.space
			ep.mu.Unlock()
			select {
			case <-ch:
			case <-ctx.Done():
				ep.mu.Lock()
				return ctx.Err()
			}
			ep.mu.Lock()
			if ep.closed {
				return ErrClosed
			}
		}
		{
			tenant := s.tenant
			if tenant == "" {
				tenant = ep.tenant
			}
			pb := ep.open[tenant]
			if pb != nil && pb.n > 0 && pb.bytes+size > ep.cfg.batchBytes() {
				ep.seal(pb)
				pb = nil
			}
			if pb == nil {
				pb = ep.newBatch(tenant, now)
				ep.open[tenant] = pb
			}
			if ack != nil && (len(pb.acks) == 0 || pb.acks[len(pb.acks)-1] != ack) {
				ack.Retain(1)
				pb.acks = append(pb.acks, ack)
			}
			ts := it.Timestamp
			if ts.IsZero() {
				ts = now
			}
			pb.add(s, entry{sec: ts.Unix(), nsec: int32(ts.Nanosecond()), line: it.Line, md: it.Metadata}, size)
			ep.buffered += size
		}
	next:
	}
	if dropped > 0 {
		ep.rep.Dropped(ReasonBufferFull, dropped)
		result = ferry.Permanentf("loki: %s: dropped %d entries: buffer of %d bytes full", ep.redacted, dropped, maxBytes)
	}
	return result
}

func (ep *endpoint) newBatch(tenant string, now time.Time) *pushBatch {
	var pb *pushBatch
	if n := len(ep.free); n > 0 {
		pb, ep.free = ep.free[n-1], ep.free[:n-1]
	} else {
		pb = &pushBatch{index: make(map[*stream]int)}
	}
	pb.tenant = tenant
	pb.created = now
	return pb
}

// seal moves the open batch pb to its tenant's queue. ep.mu is held.
func (ep *endpoint) seal(pb *pushBatch) {
	delete(ep.open, pb.tenant)
	if pb.n == 0 {
		ep.free = append(ep.free, pb)
		return
	}
	for _, sb := range pb.streams {
		sb.sortEntries()
	}
	tq := ep.queues[pb.tenant]
	if tq == nil {
		tq = &tenantQueue{tenant: pb.tenant, wake: make(chan struct{}, 1)}
		ep.queues[pb.tenant] = tq
		ep.wg.Add(1)
		go ep.sendLoop(tq)
	}
	tq.q = append(tq.q, pb)
	select {
	case tq.wake <- struct{}{}:
	default:
	}
}

// flushLoop seals batches older than BatchWait.
func (ep *endpoint) flushLoop() {
	defer ep.wg.Done()
	wait := ep.cfg.batchWait()
	tick := max(wait/10, 10*time.Millisecond)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ep.closing:
			return
		case now := <-t.C:
			ep.mu.Lock()
			if ep.closed {
				ep.mu.Unlock()
				return
			}
			for _, pb := range ep.open {
				if now.Sub(pb.created) >= wait {
					ep.seal(pb)
				}
			}
			ep.mu.Unlock()
		}
	}
}

// queueIdleTimeout is how long a tenant's sending goroutine waits for work
// before it exits, so that goroutines follow the live tenants.
var queueIdleTimeout = time.Minute

// sendLoop sends the batches of tq in order until the endpoint is closed and
// tq is empty, or Close gives up.
func (ep *endpoint) sendLoop(tq *tenantQueue) {
	defer ep.wg.Done()
	var buf, zbuf []byte
	idle := time.NewTimer(queueIdleTimeout)
	defer idle.Stop()
	for {
		ep.mu.Lock()
		if len(tq.q) == 0 {
			if ep.closed {
				ep.mu.Unlock()
				return
			}
			ep.mu.Unlock()
			idle.Reset(queueIdleTimeout)
			select {
			case <-tq.wake:
			case <-ep.ctx.Done():
			case <-idle.C:
				// A tenant that stopped sending gives its goroutine back;
				// seal starts a new one if it comes back.
				ep.mu.Lock()
				if len(tq.q) == 0 && ep.queues[tq.tenant] == tq {
					delete(ep.queues, tq.tenant)
					ep.mu.Unlock()
					return
				}
				ep.mu.Unlock()
			}
			idle.Stop()
			if ep.ctx.Err() != nil {
				ep.abandon(tq)
				return
			}
			continue
		}
		pb := tq.q[0]
		tq.q[0] = nil
		tq.q = tq.q[1:]
		ep.mu.Unlock()

		if ep.ctx.Err() != nil {
			ep.finish(pb, ErrClosed)
			ep.abandon(tq)
			return
		}
		var body []byte
		var ctype string
		if ep.cfg.Encoding == JSON {
			buf = appendJSON(buf[:0], pb.streams)
			body, ctype = buf, "application/json"
		} else {
			buf = appendProto(buf[:0], pb.streams)
			zbuf = compress(zbuf, buf)
			body, ctype = zbuf, "application/x-protobuf"
		}
		ep.finish(pb, ep.deliver(pb, body, ctype))
	}
}

// abandon acknowledges everything left in tq with ErrClosed.
func (ep *endpoint) abandon(tq *tenantQueue) {
	ep.mu.Lock()
	q := tq.q
	tq.q = nil
	ep.mu.Unlock()
	for _, pb := range q {
		ep.finish(pb, ErrClosed)
	}
}

// finish reports err to every upstream ack of pb, returns pb's bytes to
// the budget and recycles pb.
func (ep *endpoint) finish(pb *pushBatch, err error) {
	for _, a := range pb.acks {
		a.Done(err)
	}
	ep.mu.Lock()
	ep.buffered -= pb.bytes
	close(ep.space)
	ep.space = make(chan struct{})
	pb.reset()
	ep.free = append(ep.free, pb)
	ep.mu.Unlock()
}

// deliver pushes body, retrying what can be retried. It returns nil when
// Loki accepted it, a ferry.Permanent error when Loki rejected it for good,
// ErrClosed when Close gave up, and a plain error when retries ran out.
func (ep *endpoint) deliver(pb *pushBatch, body []byte, ctype string) error {
	cfg := ep.cfg
	// Exponential from MinBackoff, with full jitter in [d, 2d), capped
	// at MaxBackoff.
	backoff := retry.Backoff{Min: cfg.minBackoff(), Max: cfg.maxBackoff(), Jitter: true}
	for attempt := 0; ; attempt++ {
		status, retryAfter, respBody, err := ep.post(pb.tenant, body, ctype)
		if err == nil && status/100 == 2 {
			if status != http.StatusNoContent {
				ep.log.Debug("loki accepted push with unusual status", "status", status, "tenant", pb.tenant)
			}
			ep.setHealth(true, nil)
			return nil
		}
		if ep.ctx.Err() != nil {
			return ErrClosed
		}
		if err == nil && status != http.StatusTooManyRequests && status/100 != 5 {
			reason := rejectReason(status, respBody)
			ep.rep.Dropped(reason, pb.n)
			ep.log.Warn("loki rejected push; batch dropped",
				"status", status, "reason", reason, "tenant", pb.tenant, "entries", pb.n, "bytes", pb.bytes, "body", respBody)
			return ferry.Permanentf("loki: %s rejected push with status %d: %s", ep.redacted, status, respBody)
		}
		if err == nil {
			err = fmt.Errorf("loki: %s answered status %d: %s", ep.redacted, status, respBody)
		}
		ep.setHealth(false, err)
		if n := cfg.maxRetries(); n >= 0 && attempt >= n {
			ep.rep.Dropped(ReasonRetriesExhausted, pb.n)
			ep.log.Error("giving up on push after retries", "retries", attempt, "tenant", pb.tenant, "entries", pb.n, "err", err)
			return fmt.Errorf("loki: giving up after %d retries: %w", attempt, err)
		}
		wait := backoff.Next()
		if retryAfter > 0 {
			wait = min(retryAfter, cfg.maxBackoff())
		}
		ep.rep.Retried()
		ep.log.Warn("push failed; retrying", "attempt", attempt+1, "wait", wait, "tenant", pb.tenant, "err", err)
		if retry.Sleep(ep.ctx, wait) != nil {
			return ErrClosed
		}
	}
}

func (ep *endpoint) setHealth(ok bool, err error) {
	ep.mu.Lock()
	changed := ep.healthy != ok
	ep.healthy = ok
	ep.mu.Unlock()
	if ok && changed {
		ep.rep.SetHealth(ferry.Healthy, nil)
	} else if !ok {
		ep.rep.SetHealth(ferry.Degraded, err)
	}
}

// rejectReasons map phrases of Loki's validation errors to the reasons
// Loki itself counts them by (loki_discarded_samples_total).
var rejectReasons = []struct{ phrase, reason string }{
	{"timestamp too old", "greater_than_max_sample_age"},
	{"timestamp too new", "too_far_in_future"},
	{"too far behind", "too_far_behind"},
	{"out of order", "out_of_order"},
	{"max entry size", "line_too_long"},
	{"line too long", "line_too_long"},
	{"label names", "max_label_names_per_series"},
	{"at least one label pair", "missing_labels"},
	{"duplicate label", "duplicate_label_names"},
	{"error parsing labels", "invalid_labels"},
	{"structured metadata", "structured_metadata"},
}

// rejectReason names why Loki refused a request: Loki's own reason when a
// 400's body names one, else "http_<status>".
func rejectReason(status int, body string) string {
	if status == http.StatusBadRequest {
		lower := strings.ToLower(body)
		for _, r := range rejectReasons {
			if strings.Contains(lower, r.phrase) {
				return r.reason
			}
		}
	}
	return "http_" + strconv.Itoa(status)
}

// maxErrorBody is how much of an error response is kept for logs and errors.
const maxErrorBody = 1024

// post sends one push request. It returns the status, the Retry-After
// delay (0 if none), the start of the response body for errors, and a
// non-nil error for failures without a response.
func (ep *endpoint) post(tenant string, body []byte, ctype string) (int, time.Duration, string, error) {
	ctx, cancel := context.WithTimeout(ep.ctx, ep.cfg.timeout())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.url, bytes.NewReader(body))
	if err != nil {
		return 0, 0, "", fmt.Errorf("loki: building request for %s: %w", ep.redacted, redactErr(err, ep.url))
	}
	for k, v := range ep.headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("User-Agent", ep.cfg.userAgent())
	if tenant != "" {
		req.Header.Set("X-Scope-OrgID", tenant)
	}
	resp, err := ep.client.Do(req)
	if err != nil {
		// net/http removes passwords from the URL in its errors.
		return 0, 0, "", err
	}
	defer resp.Body.Close()
	var msg string
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody+1))
		if len(b) > maxErrorBody {
			b = append(b[:maxErrorBody], "..."...)
		}
		msg = string(bytes.TrimSpace(b))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, retry.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now()), msg, nil
}

// close seals what is open, waits until every queue is sent or ctx ends,
// and then abandons the rest with ErrClosed.
func (ep *endpoint) close(ctx context.Context) error {
	ep.mu.Lock()
	if !ep.closed {
		ep.closed = true
		close(ep.closing)
		for _, pb := range ep.open {
			ep.seal(pb)
		}
		for _, tq := range ep.queues {
			select {
			case tq.wake <- struct{}{}:
			default:
			}
		}
		// Wake Sends waiting for room: they see closed.
		close(ep.space)
		ep.space = make(chan struct{})
	}
	ep.mu.Unlock()
	done := make(chan struct{})
	go func() { ep.wg.Wait(); close(done) }()
	select {
	case <-done:
		ep.cancel()
		return nil
	case <-ctx.Done():
		ep.cancel()
		<-done
		return fmt.Errorf("loki: %s: flush not finished before the deadline: %w", ep.redacted, ctx.Err())
	}
}
