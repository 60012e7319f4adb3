// Package loki delivers log entries to Grafana Loki, or any receiver of the
// Loki push API (VictoriaLogs, Alloy's loki.source.api, Ferry's own
// source/lokipush), as snappy-compressed protobuf or as JSON.
//
// A Sink is configured by its fields and needs no constructor: the zero
// value plus a URL works,
//
//	s := &loki.Sink{URL: "http://loki:3100/loki/api/v1/push"}
//
// Validate checks the configuration (pipeline.Build calls it); Start builds
// the HTTP clients and starts the goroutines (a pipeline calls it; a direct
// user calls it before the first Send); Close flushes. Every zero field
// means its default; a negative one is a configuration error unless its
// documentation gives it a meaning.
//
// # Batching
//
// Entries are grouped per endpoint and per tenant into push requests of at
// most BatchBytes bytes of lines and metadata, sent when full or when the
// oldest entry waited BatchWait. Inside a request, entries are grouped by
// stream; the entries of one stream are sent in timestamp order (ties keep
// their arrival order), and the requests of one tenant are sent one after
// the other, so a stream's entries never overtake each other.
//
// # Streams and labels
//
// The stream of an entry is its label set, plus ExternalLabels it does not
// have, minus every label whose name starts with "__". The tenant is the
// value of the TenantLabel label (default "__tenant_id__") when present, the
// endpoint's TenantID otherwise. Each distinct label set is rendered and
// validated once and cached; entries of a stream Loki would reject (no
// labels, too many, invalid names, too long) are dropped, counted with
// reason "invalid_labels", and their batch acknowledged with a permanent
// error naming the problem.
//
// # Delivery and acknowledgement
//
// A 2xx answer delivers a request. 429, 5xx and network errors are retried
// with exponential backoff and jitter (MinBackoff to MaxBackoff, MaxRetries
// times), waiting as long as the Retry-After header says when there is one.
// Any other status drops the request for good: it is logged with the start
// of the response body, counted by reason (Loki's own reason, such as
// "greater_than_max_sample_age" or "line_too_long", when a 400's body names
// one, "http_<status>" otherwise) and its upstream batches acknowledged with
// a ferry.Permanent error. Loki stores the valid entries of a request it
// answers 400 to; the sink cannot tell which, and counts the whole request. When retries run out, the
// request is dropped, counted as "retries_exhausted" and acknowledged with
// a plain error, so that sources may read the data again.
//
// An upstream batch is acknowledged once every entry of it was delivered or
// dropped, at every endpoint; its entries may travel in several requests.
//
// # Backpressure
//
// Each endpoint holds at most MaxBufferedBytes of entries (open, queued and
// in flight). When that is reached Send blocks until a request completes,
// or, with DropWhenFull, drops the entries that do not fit (counted as
// "buffer_full", acknowledged with a permanent error).
package loki

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/httpconf"
	"github.com/ferrydev/ferry/internal/httpclient"
	"github.com/ferrydev/ferry/internal/lifecycle"
	"github.com/ferrydev/ferry/relabel"
	"github.com/ferrydev/ferry/sink"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
)

// Defaults of the Sink fields left at zero. They are those of Promtail and
// Alloy's loki.write, and Loki's default limits.
const (
	DefaultBatchBytes          = 1 << 20
	DefaultBatchWait           = time.Second
	DefaultMinBackoff          = 500 * time.Millisecond
	DefaultMaxBackoff          = 5 * time.Minute
	DefaultMaxRetries          = 10
	DefaultTimeout             = 10 * time.Second
	DefaultMaxBufferedBytes    = 16 << 20
	DefaultTenantLabel         = relabel.TenantLabel
	DefaultMaxLabelNames       = 15
	DefaultMaxLabelNameLength  = 1024
	DefaultMaxLabelValueLength = 2048
	DefaultUserAgent           = "Ferry"
)

// Reasons the sink passes to ferry.Reporter.Dropped, besides
// "http_<status>" for requests Loki rejected.
const (
	ReasonInvalidLabels    = "invalid_labels"
	ReasonBufferFull       = "buffer_full"
	ReasonRetriesExhausted = ferry.ReasonRetriesExhausted
)

// ErrClosed is the outcome of entries the sink gave up on because it was
// closed before they were delivered. It is not permanent: a source may read
// them again.
var ErrClosed = fmt.Errorf("loki: sink %w before delivery", ferry.ErrClosed)

// ErrNotStarted is the outcome of batches sent before Start. It is not
// permanent: the entries were not delivered and may be read again.
var ErrNotStarted = fmt.Errorf("loki: Send before Start: %w", ferry.ErrNotStarted)

// Encoding is the body format of push requests.
type Encoding int

const (
	// Protobuf is a snappy-compressed PushRequest, as Promtail and Alloy send.
	Protobuf Encoding = iota
	// JSON is Loki's JSON push format, uncompressed.
	JSON
)

// Endpoint is one push URL with its own tenant, headers and HTTP client.
type Endpoint struct {
	// URL of the push API, such as http://loki:3100/loki/api/v1/push.
	URL string
	// TenantID is sent as X-Scope-OrgID for entries without a tenant label;
	// empty sends no header.
	TenantID string
	// Headers are added to every request. They cannot replace the headers
	// the sink sets: Content-Type, User-Agent, X-Scope-OrgID.
	Headers map[string]string
	// HTTPClient configures the client built when Client is nil: TLS with
	// client certificates, basic auth or an Authorization header (a
	// bearer token, or its file re-read for every request), proxy,
	// redirects, HTTP/2; the zero value is the default. A Prometheus or
	// Promtail http_client_config converts with httpconf/promconfig
	// (OAuth2 too). Its secrets are never logged.
	HTTPClient httpconf.Config
	// Client, when set, is used instead of one built from HTTPClient.
	Client *http.Client
}

// Sink sends log entries to one or more Loki endpoints. Its zero value with
// a URL is ready to use once started; every zero field takes its default.
// Fields must not change after Start.
type Sink struct {
	// URL, TenantID, Headers, HTTPClient and Client describe the first
	// endpoint, as in Endpoint. URL may be empty when Endpoints is not.
	URL        string
	TenantID   string
	Headers    map[string]string
	HTTPClient httpconf.Config
	Client     *http.Client

	// Endpoints are further endpoints. Every entry goes to every endpoint;
	// each has its own batches, queue and buffer, so a slow one does not
	// stall the others beyond its buffer.
	Endpoints []Endpoint

	// Encoding of request bodies: Protobuf (default) or JSON.
	Encoding Encoding
	// BatchBytes is the most bytes of lines and metadata in one request
	// (default 1 MiB). A larger entry travels alone.
	BatchBytes int
	// BatchWait is how long an entry may wait for its request to fill
	// (default 1s).
	BatchWait time.Duration
	// Timeout of one HTTP attempt (default 10s).
	Timeout time.Duration
	// UserAgent header (default "Ferry").
	UserAgent string

	// TenantLabel names the label whose value is the tenant of an entry
	// (default "__tenant_id__"). Like every "__" label it is not sent.
	TenantLabel string
	// ExternalLabels are added to every stream that lacks them.
	ExternalLabels labels.Labels

	// MinBackoff and MaxBackoff bound the wait between retries (defaults
	// 500ms and 5m); MaxRetries is how many retries a request gets (default
	// 10; negative retries until Close). A Retry-After header replaces the
	// computed wait, up to MaxBackoff.
	MinBackoff time.Duration
	MaxBackoff time.Duration
	MaxRetries int

	// MaxBufferedBytes bounds the entry bytes each endpoint holds (default
	// 16 MiB). When full, Send blocks, or drops with DropWhenFull.
	MaxBufferedBytes int
	// DropWhenFull makes Send drop (and count) entries that do not fit
	// instead of blocking.
	DropWhenFull bool

	// Limits checked before sending, Loki's defaults when zero; negative
	// disables a check.
	MaxLabelNames       int
	MaxLabelNameLength  int
	MaxLabelValueLength int

	// Set by Start; read-only afterwards.
	cache   *streamCache
	eps     []*endpoint
	rep     ferry.Reporter
	log     *slog.Logger
	scratch sync.Pool // *[]*stream

	life lifecycle.State
}

var _ sink.Sink[ferry.Entry] = (*Sink)(nil)

func orDefault[T int | time.Duration](v, d T) T {
	if v == 0 {
		return d
	}
	return v
}

func (s *Sink) batchBytes() int           { return orDefault(s.BatchBytes, DefaultBatchBytes) }
func (s *Sink) batchWait() time.Duration  { return orDefault(s.BatchWait, DefaultBatchWait) }
func (s *Sink) timeout() time.Duration    { return orDefault(s.Timeout, DefaultTimeout) }
func (s *Sink) minBackoff() time.Duration { return orDefault(s.MinBackoff, DefaultMinBackoff) }
func (s *Sink) maxBackoff() time.Duration { return orDefault(s.MaxBackoff, DefaultMaxBackoff) }
func (s *Sink) maxRetries() int           { return orDefault(s.MaxRetries, DefaultMaxRetries) }
func (s *Sink) maxBuffered() int          { return orDefault(s.MaxBufferedBytes, DefaultMaxBufferedBytes) }
func limit(v, d int) int                  { return orDefault(v, d) }
func (s *Sink) userAgent() string {
	if s.UserAgent == "" {
		return DefaultUserAgent
	}
	return s.UserAgent
}

func (s *Sink) endpoints() []Endpoint {
	var eps []Endpoint
	if s.URL != "" {
		eps = append(eps, Endpoint{URL: s.URL, TenantID: s.TenantID, Headers: s.Headers, HTTPClient: s.HTTPClient, Client: s.Client})
	}
	return append(eps, s.Endpoints...)
}

// Validate reports configuration errors: no endpoint, an invalid URL,
// negative sizes or durations, invalid external labels, an HTTPClient
// configuration that is invalid or names a file that cannot be read (CA,
// certificate, key, credentials, password).
// pipeline.Build calls it; Start calls it too.
func (s *Sink) Validate() error {
	var errs []error
	eps := s.endpoints()
	if len(eps) == 0 {
		errs = append(errs, errors.New("loki: no endpoint: set URL or Endpoints"))
	}
	for i, e := range eps {
		if e.URL == "" {
			errs = append(errs, fmt.Errorf("loki: endpoint %d has no URL", i))
			continue
		}
		if _, err := parseURL(e.URL); err != nil {
			errs = append(errs, err)
		}
		if e.Client == nil {
			if err := e.HTTPClient.Validate(); err != nil {
				errs = append(errs, fmt.Errorf("loki: endpoint %d: HTTP client configuration: %w", i, err))
			}
		}
	}
	if s.BatchBytes < 0 || s.BatchWait < 0 || s.Timeout < 0 || s.MinBackoff < 0 || s.MaxBackoff < 0 || s.MaxBufferedBytes < 0 {
		errs = append(errs, errors.New("loki: BatchBytes, BatchWait, Timeout, MinBackoff, MaxBackoff and MaxBufferedBytes must not be negative"))
	}
	if s.minBackoff() > s.maxBackoff() {
		errs = append(errs, fmt.Errorf("loki: MinBackoff %v is larger than MaxBackoff %v", s.minBackoff(), s.maxBackoff()))
	}
	s.ExternalLabels.Range(func(l labels.Label) {
		if !model.LegacyValidation.IsValidLabelName(l.Name) {
			errs = append(errs, fmt.Errorf("loki: external label name %q is invalid: it must match [a-zA-Z_][a-zA-Z0-9_]*", l.Name))
		}
	})
	return errors.Join(errs...)
}

func newClient(e Endpoint) (*http.Client, error) {
	if e.Client != nil {
		return e.Client, nil
	}
	c, err := httpclient.New(e.HTTPClient, httpclient.Options{})
	if err != nil {
		return nil, fmt.Errorf("loki: HTTP client configuration: %w", err)
	}
	return c, nil
}

// Start validates the configuration, builds the HTTP clients (for the
// endpoints without a Client) and starts each endpoint's goroutines. They
// report through r, and log with r.Logger(), until Close. ctx bounds the
// start only. Start is a no-op on a started sink and fails with ErrClosed
// after Close.
func (s *Sink) Start(ctx context.Context, r ferry.Reporter) error {
	return s.life.Start(ErrClosed, func() error {
		if err := s.Validate(); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if r == nil {
			r = ferry.NopReporter()
		}
		tl := s.TenantLabel
		if tl == "" {
			tl = DefaultTenantLabel
		}
		cache := newStreamCache(limits{
			external:       s.ExternalLabels,
			tenantLabel:    tl,
			maxNames:       limit(s.MaxLabelNames, DefaultMaxLabelNames),
			maxNameLength:  limit(s.MaxLabelNameLength, DefaultMaxLabelNameLength),
			maxValueLength: limit(s.MaxLabelValueLength, DefaultMaxLabelValueLength),
			json:           s.Encoding == JSON,
		})
		var eps []*endpoint
		for _, e := range s.endpoints() {
			c, err := newClient(e)
			if err == nil {
				var ep *endpoint
				ep, err = newEndpoint(s, e, c, r)
				if err == nil {
					ep.ownClient = e.Client == nil
					eps = append(eps, ep)
					continue
				}
			}
			for _, ep := range eps {
				ep.cancel()
				ep.wg.Wait()
			}
			return err
		}
		s.cache, s.eps, s.rep, s.log = cache, eps, r, r.Logger()
		return nil
	})
}

// Send queues the entries of b for delivery to every endpoint and returns;
// it blocks only while an endpoint's buffer is full (unless DropWhenFull).
// b is acknowledged once all its entries were delivered or dropped. Entries
// with a zero Timestamp are given the time of Send. Send returns ctx's
// error if ctx ended while it waited for room, ErrClosed after Close, and
// ErrNotStarted before Start; b is acknowledged with that error in each
// case.
func (s *Sink) Send(ctx context.Context, b ferry.Batch[ferry.Entry]) error {
	if err := s.life.Err(ErrNotStarted, ErrClosed); err != nil {
		b.Done(err)
		return err
	}
	if len(b.Items) == 0 {
		b.Done(nil)
		return nil
	}
	now := time.Now()

	sp, _ := s.scratch.Get().(*[]*stream)
	if sp == nil {
		sp = new([]*stream)
	}
	streams := slices.Grow((*sp)[:0], len(b.Items))[:len(b.Items)]
	items := b.Items
	s.cache.resolve(func(i int) labels.Labels { return items[i].Labels }, len(items), streams)

	var dropErr error
	dropped := 0
	for i, st := range streams {
		if st.err != nil {
			if dropErr == nil {
				dropErr = st.err
			}
			dropped++
			streams[i] = nil
		}
	}
	if dropped > 0 {
		s.rep.Dropped(ReasonInvalidLabels, dropped)
		s.log.Warn("loki: entries dropped: invalid stream labels", "entries", dropped, "err", dropErr)
		dropErr = ferry.Permanent(fmt.Errorf("%d entries dropped: %w", dropped, dropErr))
	}

	b.Ack.Retain(len(s.eps) - 1)
	var sendErr error
	for _, ep := range s.eps {
		err := ep.add(ctx, items, streams, b.Ack, now)
		if err == nil {
			err = dropErr
		}
		if err != nil && !ferry.IsPermanent(err) {
			sendErr = err
		}
		b.Ack.Done(err)
	}
	clear(streams)
	*sp = streams[:0]
	s.scratch.Put(sp)
	return sendErr
}

// Close stops accepting entries, sends everything held within ctx's
// deadline, and acknowledges what could not be sent by then with ErrClosed.
// It is safe without Start; a later Close returns the first one's error.
func (s *Sink) Close(ctx context.Context) error {
	return s.life.Close(func(started bool) error {
		if !started {
			return nil
		}
		var wg sync.WaitGroup
		errs := make([]error, len(s.eps))
		for i, ep := range s.eps {
			wg.Go(func() {
				errs[i] = ep.close(ctx)
				if ep.ownClient {
					// The client is ours: its idle keep-alive connections
					// (a goroutine pair and an FD each) would outlive the sink.
					ep.client.CloseIdleConnections()
				}
			})
		}
		wg.Wait()
		return errors.Join(errs...)
	})
}
