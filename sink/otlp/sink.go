// Package otlp exports log entries and samples over OTLP/HTTP, as the
// OpenTelemetry Collector's otlphttp exporter does: to a Collector, to
// Loki's /otlp endpoint, to Prometheus 3's /api/v1/otlp, to VictoriaLogs,
// or to Ferry's own source/otlp.
//
// A LogsSink posts ExportLogsServiceRequest bodies to a logs URL (such as
// http://collector:4318/v1/logs); a MetricsSink posts
// ExportMetricsServiceRequest bodies to a metrics URL. Both encode
// protobuf straight from ferry.Entry and ferry.Sample with protowire (no
// intermediate messages), optionally gzip-compressed.
//
// # Batching
//
// Items are gathered into a request until it holds BatchSize items or
// BatchBytes bytes (of lines and metadata, or of labels), or its first item
// waited BatchWait. Sealed requests wait in a queue of QueueSize; when the
// queue is full, Send blocks: that is the backpressure that stops the
// sources. Concurrency requests are sent at a time (default 1, which keeps
// the order of requests).
//
// # Delivery and acknowledgement
//
// A 2xx answer delivers a request. If its ExportServiceResponse has a
// partial_success with rejected items, they are counted as dropped (reason
// "partial_success") and the request's batches are acknowledged with a
// ferry.Permanent error naming the rejection. 429, 502, 503 and 504 (the
// OTLP specification's retryable codes) and network errors are retried with
// exponential backoff and jitter between MinBackoff and MaxBackoff, waiting
// as long as Retry-After says when it is there (up to MaxBackoff), at most
// MaxRetries times: then the request is counted as "retries_exhausted" and
// acknowledged with a plain error, so that sources may read it again. Any
// other status drops the request for good: counted as "http_<status>",
// acknowledged with a ferry.Permanent error. Close flushes what is held
// within its context's deadline and acknowledges the rest with ErrClosed.
package otlp

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
	"sync"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/httpconf"
	"github.com/ferrydev/ferry/internal/httpclient"
	"github.com/ferrydev/ferry/internal/lifecycle"
	"github.com/ferrydev/ferry/internal/retry"
	"github.com/klauspost/compress/gzip"
	"google.golang.org/protobuf/encoding/protowire"
)

// Defaults of the Config fields left at zero.
const (
	DefaultBatchSize   = 2000
	DefaultBatchBytes  = 1 << 20
	DefaultBatchWait   = time.Second
	DefaultTimeout     = 10 * time.Second
	DefaultMinBackoff  = 500 * time.Millisecond
	DefaultMaxBackoff  = 30 * time.Second
	DefaultMaxRetries  = 10
	DefaultQueueSize   = 4
	DefaultConcurrency = 1
	DefaultUserAgent   = "Ferry"
)

// Reasons the sinks pass to ferry.Reporter.Dropped, besides
// "http_<status>" for requests the receiver refused.
const (
	ReasonPartialSuccess   = "partial_success"
	ReasonRetriesExhausted = ferry.ReasonRetriesExhausted
)

// ErrClosed is the outcome of items the sink gave up on because it was
// closed before they were delivered. It is not permanent: a source may
// read them again.
var ErrClosed = fmt.Errorf("otlp: sink %w before delivery", ferry.ErrClosed)

// ErrNotStarted is returned (and given as the batch's outcome) by Send
// before Start.
var ErrNotStarted = fmt.Errorf("otlp: Send before Start: %w", ferry.ErrNotStarted)

// Config is what both sinks are configured by. Its zero value with a URL
// is ready to use; every zero field takes its default.
type Config struct {
	// URL of the OTLP/HTTP endpoint, with its path: such as
	// http://collector:4318/v1/logs, http://loki:3100/otlp/v1/logs or
	// http://prometheus:9090/api/v1/otlp/v1/metrics.
	URL string
	// Headers are added to every request. They cannot replace
	// Content-Type, Content-Encoding and User-Agent.
	Headers map[string]string
	// HTTPClient configures the client built when Client is nil: TLS with
	// client certificates, basic auth or an Authorization header (a
	// bearer token, or its file re-read for every request), proxy,
	// redirects, HTTP/2; the zero value is the default. A Prometheus
	// http_client_config converts with httpconf/promconfig (OAuth2 too).
	// Its secrets are never logged.
	HTTPClient httpconf.Config
	// Client, when set, is used instead of one built from HTTPClient.
	Client *http.Client
	// Gzip compresses request bodies.
	Gzip bool
	// BatchSize is the most items in one request (default 2000).
	BatchSize int
	// BatchBytes is the most item bytes in one request (default 1 MiB); a
	// larger item travels alone.
	BatchBytes int
	// BatchWait is how long an item may wait for its request to fill
	// (default 1s).
	BatchWait time.Duration
	// Timeout of one HTTP attempt (default 10s).
	Timeout time.Duration
	// MinBackoff and MaxBackoff bound the wait between retries (defaults
	// 500ms and 30s); MaxRetries is how many retries a request gets
	// (default 10; negative retries until Close).
	MinBackoff time.Duration
	MaxBackoff time.Duration
	MaxRetries int
	// QueueSize is how many sealed requests wait to be sent before Send
	// blocks (default 4).
	QueueSize int
	// Concurrency is how many requests are sent at a time (default 1).
	Concurrency int
	// UserAgent header (default "Ferry").
	UserAgent string
}

func orDefault[T int | time.Duration | string](v, d T) T {
	var zero T
	if v == zero {
		return d
	}
	return v
}

func (c *Config) validate(kind string) error {
	var errs []error
	if c.URL == "" {
		errs = append(errs, fmt.Errorf("otlp: %s sink: no URL", kind))
	} else if u, err := url.Parse(c.URL); err != nil {
		errs = append(errs, fmt.Errorf("otlp: %s sink: invalid URL", kind))
	} else if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		errs = append(errs, fmt.Errorf("otlp: %s sink: URL %s must be http:// or https:// with a host", kind, u.Redacted()))
	}
	if c.BatchSize < 0 || c.BatchBytes < 0 || c.BatchWait < 0 || c.Timeout < 0 || c.MinBackoff < 0 || c.MaxBackoff < 0 || c.QueueSize < 0 || c.Concurrency < 0 {
		errs = append(errs, fmt.Errorf("otlp: %s sink: sizes and durations must not be negative", kind))
	}
	if orDefault(c.MinBackoff, DefaultMinBackoff) > orDefault(c.MaxBackoff, DefaultMaxBackoff) {
		errs = append(errs, fmt.Errorf("otlp: %s sink: MinBackoff is larger than MaxBackoff", kind))
	}
	if c.Client == nil {
		if err := c.HTTPClient.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("otlp: %s sink: HTTP client configuration: %w", kind, err))
		}
	}
	return errors.Join(errs...)
}

func (c *Config) client(kind string) (*http.Client, bool, error) {
	if c.Client != nil {
		return c.Client, false, nil
	}
	hc, err := httpclient.New(c.HTTPClient, httpclient.Options{})
	if err != nil {
		return nil, false, fmt.Errorf("otlp: %s sink: HTTP client configuration: %w", kind, err)
	}
	return hc, true, nil
}

// codec is what differs between the logs and the metrics exporter.
type codec[T any] interface {
	// size is the byte size of an item, for BatchBytes.
	size(*T) int
	// newEncoder returns an encoder for one sending goroutine.
	newEncoder() encoder[T]
}

// encoder appends the protobuf request of items to dst; it keeps scratch
// space between calls and is used by one goroutine.
type encoder[T any] interface {
	encode(dst []byte, items []T, now time.Time) []byte
}

// request is one sealed request: items and the acks it holds a share of.
type request[T any] struct {
	items []T
	acks  []*ferry.Ack
	bytes int
	first time.Time
}

// exporter batches and sends items of one kind.
type exporter[T any] struct {
	cfg       *Config
	kind      string
	codec     codec[T]
	client    *http.Client
	ownClient bool
	rep       ferry.Reporter
	log       *slog.Logger
	url       string
	redacted  string

	queue   chan *request[T]
	ctx     context.Context // cancelled when Close gives up
	cancel  context.CancelFunc
	closing chan struct{}
	// producers counts the goroutines that may put requests in queue
	// (the flush loop, Sends); senders the goroutines that take them.
	producers sync.WaitGroup
	senders   sync.WaitGroup

	life lifecycle.State
	mu   sync.Mutex
	open *request[T]
	free []*request[T]
}

func (e *exporter[T]) start(cfg *Config, kind string, c codec[T], rep ferry.Reporter) error {
	if err := cfg.validate(kind); err != nil {
		return err
	}
	if rep == nil {
		rep = ferry.NopReporter()
	}
	return e.life.Start(ErrClosed, func() error {
		client, own, err := cfg.client(kind)
		if err != nil {
			return err
		}
		u, _ := url.Parse(cfg.URL)
		e.cfg, e.kind, e.codec = cfg, kind, c
		e.client, e.ownClient = client, own
		e.rep, e.log = rep, rep.Logger().With("endpoint", u.Redacted())
		e.url, e.redacted = cfg.URL, u.Redacted()
		e.queue = make(chan *request[T], orDefault(cfg.QueueSize, DefaultQueueSize))
		e.ctx, e.cancel = context.WithCancel(context.Background())
		e.closing = make(chan struct{})
		for range orDefault(cfg.Concurrency, DefaultConcurrency) {
			e.senders.Go(e.sendLoop)
		}
		e.producers.Go(e.flushLoop)
		return nil
	})
}

// send queues the items of b; it blocks while the queue is full.
func (e *exporter[T]) send(ctx context.Context, b ferry.Batch[T]) error {
	// Checked under e.mu, which close takes before it stops the loops:
	// a Send let through has registered in producers by then.
	e.mu.Lock()
	if err := e.life.Err(ErrNotStarted, ErrClosed); err != nil {
		e.mu.Unlock()
		b.Done(err)
		return err
	}
	if len(b.Items) == 0 {
		e.mu.Unlock()
		b.Done(nil)
		return nil
	}
	maxItems := orDefault(e.cfg.BatchSize, DefaultBatchSize)
	maxBytes := orDefault(e.cfg.BatchBytes, DefaultBatchBytes)
	var sealed []*request[T]
	now := time.Now()
	for i := range b.Items {
		it := &b.Items[i]
		size := e.codec.size(it)
		r := e.open
		if r != nil && len(r.items) > 0 && (len(r.items) >= maxItems || r.bytes+size > maxBytes) {
			sealed = append(sealed, r)
			r, e.open = nil, nil
		}
		if r == nil {
			r = e.newRequest(now)
			e.open = r
		}
		if b.Ack != nil && (len(r.acks) == 0 || r.acks[len(r.acks)-1] != b.Ack) {
			b.Ack.Retain(1)
			r.acks = append(r.acks, b.Ack)
		}
		r.items = append(r.items, *it)
		r.bytes += size
	}
	if r := e.open; r != nil && (len(r.items) >= maxItems || r.bytes >= maxBytes) {
		sealed = append(sealed, r)
		e.open = nil
	}
	if len(sealed) > 0 {
		e.producers.Add(1)
		defer e.producers.Done()
	}
	e.mu.Unlock()
	// The items are copied into requests: b's own share is done.
	b.Done(nil)
	for i, r := range sealed {
		select {
		case e.queue <- r:
		case <-ctx.Done():
			for _, r := range sealed[i:] {
				e.finish(r, ctx.Err())
			}
			return ctx.Err()
		}
	}
	return nil
}

func (e *exporter[T]) newRequest(now time.Time) *request[T] {
	if n := len(e.free); n > 0 {
		r := e.free[n-1]
		e.free = e.free[:n-1]
		r.first = now
		return r
	}
	return &request[T]{first: now}
}

// flushLoop seals the open request once its first item waited BatchWait.
func (e *exporter[T]) flushLoop() {
	wait := orDefault(e.cfg.BatchWait, DefaultBatchWait)
	t := time.NewTicker(max(wait/10, 5*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-e.closing:
			return
		case now := <-t.C:
			e.mu.Lock()
			r := e.open
			if r == nil || now.Sub(r.first) < wait {
				e.mu.Unlock()
				continue
			}
			e.open = nil
			e.mu.Unlock()
			// The send loops take requests until close has waited for
			// this loop, so this ends.
			e.queue <- r
		}
	}
}

// sendLoop sends queued requests until the queue is closed.
func (e *exporter[T]) sendLoop() {
	var buf, zbuf []byte
	var zw *gzip.Writer
	var zb bytes.Buffer
	enc := e.codec.newEncoder()
	for r := range e.queue {
		if e.ctx.Err() != nil {
			e.finish(r, ErrClosed)
			continue
		}
		buf = enc.encode(buf[:0], r.items, time.Now())
		body := buf
		encoding := ""
		if e.cfg.Gzip {
			zb.Reset()
			if zw == nil {
				zw = gzip.NewWriter(&zb)
			} else {
				zw.Reset(&zb)
			}
			zw.Write(buf)
			zw.Close()
			zbuf = append(zbuf[:0], zb.Bytes()...)
			body, encoding = zbuf, "gzip"
		}
		e.finish(r, e.deliver(len(r.items), body, encoding))
	}
}

// finish reports err to every ack of r and recycles r.
func (e *exporter[T]) finish(r *request[T], err error) {
	for _, a := range r.acks {
		a.Done(err)
	}
	clear(r.items)
	r.items = r.items[:0]
	clear(r.acks)
	r.acks = r.acks[:0]
	r.bytes = 0
	e.mu.Lock()
	if len(e.free) < 2*orDefault(e.cfg.QueueSize, DefaultQueueSize) {
		e.free = append(e.free, r)
	}
	e.mu.Unlock()
}

// deliver posts body, retrying what can be retried. It returns nil when
// the receiver accepted everything, a ferry.Permanent error when it
// rejected items for good, ErrClosed when Close gave up, and a plain error
// when retries ran out.
func (e *exporter[T]) deliver(n int, body []byte, encoding string) error {
	cfg := e.cfg
	maxB := orDefault(cfg.MaxBackoff, DefaultMaxBackoff)
	backoff := retry.Backoff{Min: orDefault(cfg.MinBackoff, DefaultMinBackoff), Max: maxB, Jitter: true}
	for attempt := 0; ; attempt++ {
		status, retryAfter, resp, err := e.post(body, encoding)
		if err == nil && status/100 == 2 {
			rejected, msg := partialSuccess(resp)
			if rejected > 0 {
				e.rep.Dropped(ReasonPartialSuccess, int(min(rejected, int64(n))))
				e.log.Warn("otlp: receiver rejected part of a request", "rejected", rejected, "items", n, "message", msg)
				e.rep.SetHealth(ferry.Degraded, fmt.Errorf("otlp: %s rejected %d items: %s", e.redacted, rejected, msg))
				return ferry.Permanentf("otlp: %s rejected %d of %d items: %s", e.redacted, rejected, n, msg)
			}
			e.rep.SetHealth(ferry.Healthy, nil)
			return nil
		}
		if e.ctx.Err() != nil {
			return ErrClosed
		}
		if err == nil && !retryable(status) {
			reason := "http_" + strconv.Itoa(status)
			e.rep.Dropped(reason, n)
			e.log.Warn("otlp: receiver refused a request; dropped", "status", status, "items", n, "body", errorText(resp))
			return ferry.Permanentf("otlp: %s answered %d: %s", e.redacted, status, errorText(resp))
		}
		if err == nil {
			err = fmt.Errorf("otlp: %s answered %d: %s", e.redacted, status, errorText(resp))
		}
		e.rep.SetHealth(ferry.Degraded, err)
		if m := orDefault(cfg.MaxRetries, DefaultMaxRetries); m >= 0 && attempt >= m {
			e.rep.Dropped(ReasonRetriesExhausted, n)
			e.log.Error("otlp: giving up on a request after retries", "retries", attempt, "items", n, "err", err)
			return fmt.Errorf("otlp: giving up after %d retries: %w", attempt, err)
		}
		wait := backoff.Next()
		if retryAfter > 0 {
			wait = min(retryAfter, maxB)
		}
		e.rep.Retried()
		e.log.Warn("otlp: request failed; retrying", "attempt", attempt+1, "wait", wait, "err", err)
		if retry.Sleep(e.ctx, wait) != nil {
			return ErrClosed
		}
	}
}

// retryable reports whether the OTLP specification says to retry status.
func retryable(status int) bool {
	switch status {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// maxResponse is how much of a response body is read.
const maxResponse = 64 << 10

// post sends one request and returns the status, the Retry-After delay,
// the response body (its start), and an error for failures without a
// response.
func (e *exporter[T]) post(body []byte, encoding string) (int, time.Duration, []byte, error) {
	ctx, cancel := context.WithTimeout(e.ctx, orDefault(e.cfg.Timeout, DefaultTimeout))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url, bytes.NewReader(body))
	if err != nil {
		return 0, 0, nil, fmt.Errorf("otlp: building request for %s: %w", e.redacted, err)
	}
	for k, v := range e.cfg.Headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("User-Agent", orDefault(e.cfg.UserAgent, DefaultUserAgent))
	if encoding != "" {
		req.Header.Set("Content-Encoding", encoding)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return 0, 0, nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	return resp.StatusCode, retry.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now()), b, nil
}

// errorText returns the start of an error response for messages: the
// message of a google.rpc.Status in protobuf, or the text.
func errorText(b []byte) string {
	if num, typ, n := protowire.ConsumeTag(b); n > 0 && num == 1 && typ == protowire.VarintType {
		if _, m := protowire.ConsumeVarint(b[n:]); m > 0 {
			rest := b[n+m:]
			if num, typ, n := protowire.ConsumeTag(rest); n > 0 && num == 2 && typ == protowire.BytesType {
				if msg, m := protowire.ConsumeBytes(rest[n:]); m > 0 {
					return string(msg)
				}
			}
		}
	}
	const max = 1024
	if len(b) > max {
		b = b[:max]
	}
	return string(bytes.ToValidUTF8(bytes.TrimSpace(b), []byte("?")))
}

// partialSuccess reads the partial_success of an Export*ServiceResponse:
// field 1, a message whose field 1 is the rejected count and field 2 the
// error message. A body that is not such a message (JSON, text) reads as
// no rejection.
func partialSuccess(b []byte) (int64, string) {
	var rejected int64
	var msg string
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, ""
		}
		b = b[n:]
		if num == 1 && typ == protowire.BytesType {
			ps, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return 0, ""
			}
			b = b[n:]
			for len(ps) > 0 {
				num, typ, n := protowire.ConsumeTag(ps)
				if n < 0 {
					return 0, ""
				}
				ps = ps[n:]
				switch {
				case num == 1 && typ == protowire.VarintType:
					v, n := protowire.ConsumeVarint(ps)
					if n < 0 {
						return 0, ""
					}
					rejected = int64(v)
					ps = ps[n:]
				case num == 2 && typ == protowire.BytesType:
					v, n := protowire.ConsumeBytes(ps)
					if n < 0 {
						return 0, ""
					}
					msg = string(v)
					ps = ps[n:]
				default:
					n := protowire.ConsumeFieldValue(num, typ, ps)
					if n < 0 {
						return 0, ""
					}
					ps = ps[n:]
				}
			}
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return 0, ""
		}
		b = b[n:]
	}
	return rejected, msg
}

// close stops taking items, sends what is open and queued until ctx
// ends, and then abandons the rest with ErrClosed.
func (e *exporter[T]) close(ctx context.Context) error {
	return e.life.Close(func(started bool) error {
		if !started {
			return nil
		}
		e.mu.Lock()
		close(e.closing)
		e.mu.Unlock()
		// At the deadline, stop delivering: the send loops then finish
		// every request with ErrClosed at once, so the waits below end.
		stop := context.AfterFunc(ctx, e.cancel)
		defer stop()
		e.producers.Wait()
		e.mu.Lock()
		r := e.open
		e.open = nil
		e.mu.Unlock()
		if r != nil {
			e.queue <- r
		}
		close(e.queue)
		e.senders.Wait()
		e.cancel()
		if e.ownClient {
			e.client.CloseIdleConnections()
		}
		if ctx.Err() != nil {
			return fmt.Errorf("otlp: %s: flush not finished before the deadline: %w", e.redacted, ctx.Err())
		}
		return nil
	})
}
