// Package remotewrite delivers samples to a Prometheus remote-write
// receiver (Prometheus with --web.enable-remote-write-receiver, Mimir,
// Thanos, VictoriaMetrics, …), as Prometheus's remote_write and Alloy's
// prometheus.remote_write do.
//
// A Sink is configured by its fields; Validate checks them (pipeline.Build
// calls it), Start builds the HTTP client and starts the shards (a pipeline
// calls it; a direct user calls it before the first Send), and Close flushes.
//
// Sink speaks remote write 1.0 (prometheus.WriteRequest) or 2.0
// (io.prometheus.write.v2.Request, with a symbol table), snappy-compressed.
// Samples go through a sharded queue like Prometheus's: every series is
// hashed to one shard, so its samples are sent in order, one request at a
// time per shard (a scraped series by its target, so that a target's
// samples travel together); the number of shards adapts to the throughput between
// MinShards and MaxShards, but does not grow past a count that did not
// deliver faster than the one before it; a shard sends when it holds
// MaxSamplesPerSend samples or its oldest sample waited BatchSendDeadline.
// The queue is bounded (Capacity samples per shard): when it is full, Send
// blocks, and that backpressure stops the sources.
//
// 5xx answers, 429 (honouring Retry-After) and network errors are retried
// with exponential backoff, without limit, until the sink is closed. Other
// 4xx answers drop the request: the samples are counted through the
// ferry.Reporter's Dropped with the reason "http_<status>", and their
// batches are acknowledged with a ferry.Permanent error. An upstream batch
// is acknowledged only when every one of its samples was accepted or
// dropped for good.
package remotewrite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/httpconf"
	"github.com/ferrydev/ferry/internal/httpclient"
	"github.com/ferrydev/ferry/internal/labelsenc"
	"github.com/ferrydev/ferry/internal/lifecycle"
	"github.com/ferrydev/ferry/internal/retry"
	"github.com/ferrydev/ferry/relabel"
	"github.com/ferrydev/ferry/sink"
)

// Version selects the remote-write protocol.
type Version int

const (
	// V1 is remote write 1.0: prometheus.WriteRequest,
	// Content-Type application/x-protobuf. It is the zero value.
	V1 Version = iota
	// V2 is remote write 2.0: io.prometheus.write.v2.Request with a symbol
	// table.
	V2
)

// String returns the version number, "1.0" or "2.0".
func (v Version) String() string {
	if v == V2 {
		return "2.0"
	}
	return "1.0"
}

// Defaults of the Sink's zero fields, those of Prometheus's queue_config. A
// zero field means its default; a negative one is a configuration error.
const (
	DefaultTimeout           = 30 * time.Second
	DefaultMinShards         = 1
	DefaultMaxShards         = 50
	DefaultCapacity          = 10000
	DefaultMaxSamplesPerSend = 2000
	DefaultBatchSendDeadline = 5 * time.Second
	DefaultMinBackoff        = 30 * time.Millisecond
	DefaultMaxBackoff        = 5 * time.Second
	DefaultUserAgent         = "Ferry/0.1"
	// DefaultReshardInterval is how often the shard count is reconsidered.
	DefaultReshardInterval = 10 * time.Second
)

// Errors the sink acknowledges batches with.
var (
	// ErrClosed is the outcome of batches sent to, or still held by, a
	// closed sink.
	ErrClosed = fmt.Errorf("remotewrite: sink %w", ferry.ErrClosed)
	// ErrNotStarted is the outcome of batches sent before Start. It is not
	// permanent: the data was not delivered and may be sent again.
	ErrNotStarted = fmt.Errorf("remotewrite: Send before Start: %w", ferry.ErrNotStarted)
	// ErrNotV2Receiver means a 2.0 request was answered 2xx without any
	// X-Prometheus-Remote-Write-*-Written header: the receiver decoded it as
	// an empty 1.0 request and stored nothing.
	ErrNotV2Receiver = errors.New("remotewrite: receiver does not support remote write 2.0")
)

// Sink sends samples to one remote-write endpoint. Only URL is required;
// every other zero field means the default named after it. Fields must not
// be changed after Start.
type Sink struct {
	// URL of the receiver, e.g. http://prometheus:9090/api/v1/write.
	URL string
	// Version of the protocol; V1 by default.
	Version Version
	// NoFallback keeps a V2 sink on 2.0 when the receiver answers 415 or
	// shows that it does not understand 2.0; such requests are then
	// dropped. By default the sink falls back to 1.0 for good, as the 2.0
	// specification allows.
	NoFallback bool

	// HTTPClient configures the client built when Client is nil: TLS with
	// client certificates, basic auth or an Authorization header (a
	// bearer token, or its file re-read for every request), proxy,
	// redirects, HTTP/2; the zero value is the default. A Prometheus
	// http_client_config converts with httpconf/promconfig (OAuth2 too).
	// Its secrets are never logged.
	HTTPClient httpconf.Config
	// Client, when set, is used instead of one built from HTTPClient.
	Client *http.Client
	// Headers are added to every request. They cannot override the
	// protocol's own headers (Content-Type, Content-Encoding,
	// X-Prometheus-Remote-Write-Version, User-Agent).
	Headers map[string]string
	// UserAgent is sent in User-Agent; DefaultUserAgent by default.
	UserAgent string
	// Timeout bounds one request; DefaultTimeout by default.
	Timeout time.Duration

	// ExternalLabels are added to every series that lacks them, before
	// WriteRelabel runs, as Prometheus's external_labels.
	ExternalLabels labels.Labels
	// WriteRelabel rules run on every sample before it is queued; samples
	// they drop count as delivered. Validate checks them.
	WriteRelabel []relabel.Rule
	// Metadata, when set, supplies the TYPE/HELP/UNIT of metric families:
	// 1.0 requests carry it in WriteRequest.metadata for every family in the
	// request, 2.0 requests with every series. scrape.Scraper.Metadata fits.
	Metadata MetadataFunc

	// MinShards and MaxShards bound the number of shards (1 and 50).
	MinShards, MaxShards int
	// Capacity is the number of samples each shard buffers (10000).
	Capacity int
	// MaxSamplesPerSend is the largest number of samples in one request
	// (2000, Prometheus's default). Larger requests cost less CPU a sample
	// when the receiver takes them: Snappy finds more of each page in the
	// similar pages before it (5000 took 9-12 % less CPU than 2000 at 1000
	// node_exporter targets; see BENCHMARKS.md).
	MaxSamplesPerSend int
	// BatchSendDeadline is the longest a sample waits for a request to fill
	// up (5s).
	BatchSendDeadline time.Duration
	// MinBackoff and MaxBackoff bound the pause between retries (30ms, 5s).
	// Each retry doubles the pause; a Retry-After header replaces it.
	MinBackoff, MaxBackoff time.Duration
	// ReshardInterval is how often the shard count is reconsidered
	// (DefaultReshardInterval).
	ReshardInterval time.Duration

	life   lifecycle.State // Start sets the fields below it
	client *http.Client
	procs  []*relabel.Processor[ferry.Sample]
	rep    ferry.Reporter
	log    *slog.Logger
	useV1  atomic.Bool // a V2 sink fell back to 1.0

	mu      sync.RWMutex // guards shards and spread; Send holds it for reading
	shards  []*shard
	spread  map[uint64]struct{} // targets keyed by series (spread.go)
	closing chan struct{}
	hardCtx context.Context // cancelled when Close's deadline passes
	hardEnd context.CancelFunc
	reshWG  sync.WaitGroup

	samplesIn     atomic.Int64
	samplesOut    atomic.Int64
	sendNanos     atomic.Int64
	lastRetry     atomic.Int64  // unix nanos
	healthy       atomic.Bool   // last reported health was Healthy
	pressure      chan struct{} // a shard's queue was full: reconsider the shard count now
	slicePool     sync.Pool
	rates         targetRates
	spreadScratch sync.Pool // *spreadScratch
	noSpread      bool      // benchmarks: every target on one shard, as before
}

var _ sink.Sink[ferry.Sample] = (*Sink)(nil)

// Validate reports configuration errors: an empty or invalid URL, an
// unknown Version, negative sizes or durations, MinBackoff above
// MaxBackoff, an HTTPClient configuration that is invalid or names a file
// that cannot be read (CA, certificate, key, credentials, password), invalid
// ExternalLabels or WriteRelabel rules. pipeline.Build calls it; Start
// calls it too.
func (s *Sink) Validate() error {
	var errs []error
	if s.URL == "" {
		errs = append(errs, errors.New("remotewrite: URL is empty"))
	} else if u, err := url.Parse(s.URL); err != nil {
		errs = append(errs, fmt.Errorf("remotewrite: invalid URL: %w", err))
	} else if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("remotewrite: URL %q: want http:// or https:// and a host", u.Redacted()))
	}
	if s.Version != V1 && s.Version != V2 {
		errs = append(errs, fmt.Errorf("remotewrite: unknown version %d", s.Version))
	}
	if s.Timeout < 0 || s.MinShards < 0 || s.MaxShards < 0 || s.Capacity < 0 || s.MaxSamplesPerSend < 0 ||
		s.BatchSendDeadline < 0 || s.MinBackoff < 0 || s.MaxBackoff < 0 || s.ReshardInterval < 0 {
		errs = append(errs, errors.New("remotewrite: Timeout, MinShards, MaxShards, Capacity, MaxSamplesPerSend, BatchSendDeadline, MinBackoff, MaxBackoff and ReshardInterval must not be negative"))
	}
	if lo, hi := orDefault(s.MinBackoff, DefaultMinBackoff), orDefault(s.MaxBackoff, DefaultMaxBackoff); lo > hi {
		errs = append(errs, fmt.Errorf("remotewrite: MinBackoff %v is larger than MaxBackoff %v", lo, hi))
	}
	if s.Client == nil {
		if err := s.HTTPClient.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("remotewrite: HTTP client configuration: %w", err))
		}
	}
	if _, err := s.processors(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// processors compiles ExternalLabels and WriteRelabel.
func (s *Sink) processors() ([]*relabel.Processor[ferry.Sample], error) {
	var procs []*relabel.Processor[ferry.Sample]
	var rules []relabel.Rule
	s.ExternalLabels.Range(func(l labels.Label) {
		// An empty value matches ^$, so the label is set only where
		// the series lacks it; "$" is escaped for the expansion.
		rules = append(rules, relabel.Replace([]string{l.Name}, "", l.Name, escapeDollar(l.Value)))
	})
	if len(rules) > 0 {
		r, err := relabel.New(rules...)
		if err != nil {
			return nil, fmt.Errorf("remotewrite: external labels: %w", err)
		}
		procs = append(procs, relabel.Samples(r))
	}
	if len(s.WriteRelabel) > 0 {
		r, err := relabel.New(s.WriteRelabel...)
		if err != nil {
			return nil, fmt.Errorf("remotewrite: WriteRelabel: %w", err)
		}
		procs = append(procs, relabel.Samples(r))
	}
	return procs, nil
}

// Start validates the configuration, builds the HTTP client (unless Client
// is set) and starts the shards and the goroutine that adapts their count.
// They report through r, and log with r.Logger(), until Close. ctx bounds
// the start only. Start is a no-op on a started sink and fails with
// ErrClosed after Close.
func (s *Sink) Start(ctx context.Context, r ferry.Reporter) error {
	return s.life.Start(ErrClosed, func() error {
		if err := s.Validate(); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		procs, err := s.processors()
		if err != nil {
			return err
		}
		client := s.Client
		if client == nil {
			if client, err = httpclient.New(s.HTTPClient, httpclient.Options{}); err != nil {
				return fmt.Errorf("remotewrite: http client: %w", err)
			}
		}
		if r == nil {
			r = ferry.NopReporter()
		}
		s.rep, s.log, s.client, s.procs = r, r.Logger(), client, procs
		s.closing = make(chan struct{})
		s.pressure = make(chan struct{}, 1)
		s.hardCtx, s.hardEnd = context.WithCancel(context.Background())
		s.shards = s.newShards(s.minShards())
		s.reshWG.Add(1)
		go s.reshardLoop(orDefault(s.ReshardInterval, DefaultReshardInterval))
		return nil
	})
}

func escapeDollar(v string) string {
	var b []byte
	for i := 0; i < len(v); i++ {
		if v[i] == '$' {
			if b == nil {
				b = append(b, v[:i]...)
			}
			b = append(b, '$', '$')
			continue
		}
		if b != nil {
			b = append(b, v[i])
		}
	}
	if b == nil {
		return v
	}
	return string(b)
}

func orDefault[T int | time.Duration](v, d T) T {
	if v <= 0 {
		return d
	}
	return v
}

func (s *Sink) minShards() int { return orDefault(s.MinShards, DefaultMinShards) }
func (s *Sink) maxShards() int {
	return max(orDefault(s.MaxShards, DefaultMaxShards), s.minShards())
}
func (s *Sink) maxPerSend() int { return orDefault(s.MaxSamplesPerSend, DefaultMaxSamplesPerSend) }

// Send queues the samples of b. It blocks while the shards a sample belongs
// to are full, and returns early with ctx's error or ErrClosed; b's outcome
// is reported through b's Ack once every queued sample was delivered or
// dropped (see sink.Sink). Before Start it acknowledges b with
// ErrNotStarted, after Close with ErrClosed.
func (s *Sink) Send(ctx context.Context, b ferry.Batch[ferry.Sample]) error {
	if err := s.life.Err(ErrNotStarted, ErrClosed); err != nil {
		b.Done(err)
		return err
	}
	for _, p := range s.procs {
		var err error
		if b, err = p.Process(ctx, b); err != nil {
			b.Done(err)
			return err
		}
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	select {
	case <-s.closing:
		b.Done(ErrClosed)
		return ErrClosed
	default:
	}
	s.samplesIn.Add(int64(len(b.Items)))
	shards := s.shards
	var taken int
	var err error
	if len(shards) == 1 {
		taken, err = s.routeOne(ctx, shards, b.Items, b.Ack)
	} else {
		taken, err = s.route(ctx, shards, b.Items, b.Ack)
	}
	if err != nil {
		s.samplesIn.Add(int64(taken - len(b.Items)))
		b.Done(err)
		return err
	}
	b.Done(nil)
	return nil
}

// routeOne is route for one shard. A batch whose first and last samples
// have one target, as a scrape's has, or none, goes to the shard at once,
// its samples counted as the first one's target's; any other takes route,
// which finds the target of every sample.
func (s *Sink) routeOne(ctx context.Context, shards []*shard, items []ferry.Sample, ack *ferry.Ack) (int, error) {
	if len(items) == 0 {
		return 0, nil
	}
	var keys targetKeys
	key, byTarget := keys.of(items[0].Labels)
	last, lastByTarget := keys.of(items[len(items)-1].Labels)
	if byTarget != lastByTarget || byTarget && last != key {
		return s.route(ctx, shards, items, ack)
	}
	if byTarget {
		s.rates.add(key, len(items))
	}
	return shards[0].add(ctx, s.closing, items, ack)
}

// route queues items on shards: each target's run on its shard, or spread
// over all of them, and consecutive runs bound for one shard at once. It
// returns how many samples it queued.
func (s *Sink) route(ctx context.Context, shards []*shard, items []ferry.Sample, ack *ferry.Ack) (int, error) {
	n := uint64(len(shards))
	var keys targetKeys
	var sh *shard // where items[from:i] go
	from := 0
	for i := 0; i < len(items); {
		key, byTarget := keys.of(items[i].Labels)
		j := i + 1
		for j < len(items) {
			if k, _ := keys.of(items[j].Labels); k != key {
				break
			}
			j++
		}
		if byTarget {
			s.rates.add(key, j-i)
		}
		_, spread := s.spread[key]
		var next *shard // nil: the run is spread
		if !spread {
			next = shards[key%n]
		}
		if next != sh {
			if sh != nil {
				if added, err := sh.add(ctx, s.closing, items[from:i], ack); err != nil {
					return from + added, err
				}
			}
			sh, from = next, i
		}
		if next == nil {
			if added, err := s.addSpread(ctx, shards, items[i:j], ack); err != nil {
				return i + added, err
			}
			from = j
		}
		i = j
	}
	if sh != nil {
		if added, err := sh.add(ctx, s.closing, items[from:], ack); err != nil {
			return from + added, err
		}
	}
	return len(items), nil
}

// targetKeys picks the shard of a series: by the hash of its job and
// instance labels (its target's, for a scraped series) when it has either,
// else by the hash of all its labels. Either way a series always goes to
// the same shard, so its samples are sent in order. Keying by target keeps
// each target's samples together, in the order of its page: a request
// then reads its labels from memory in order and compresses them better
// than one of series strewn over all targets (BenchmarkShardKey, 16
// shards: encoding and compressing at 2.1-2.6 times the rate, into 16 %
// fewer bytes). A target whose samples one shard cannot keep up with is
// spread over all shards by the hash of each series instead (spread.go).
//
// The zero value is ready; it remembers the last target it hashed, as a
// batch's samples mostly share one.
type targetKeys struct {
	job, instance string
	key           uint64
}

var shardSeed = maphash.MakeSeed()

// target returns the job and instance labels of ls, in one pass over the
// names up to "job" where the encoding can be read in place.
func target(ls labels.Labels) (job, instance string) {
	raw, ok := labelsenc.Raw(ls)
	if !ok {
		return ls.Get(model.JobLabel), ls.Get(model.InstanceLabel)
	}
	for i := 0; i < len(raw); {
		n := int(raw[i])
		if n == 0xff || raw[i+1+n] == 0xff {
			// A length of 255 or more takes more bytes: Get reads it.
			return ls.Get(model.JobLabel), ls.Get(model.InstanceLabel)
		}
		name := raw[i+1 : i+1+n]
		i += 1 + n
		value := raw[i+1 : i+1+int(raw[i])]
		i += 1 + len(value)
		switch {
		case name == model.InstanceLabel:
			instance = value
		case name == model.JobLabel:
			return value, instance
		case n > 0 && name[0] > 'j':
			return "", instance // the names are sorted: there is no job
		}
	}
	return "", instance
}

// of returns the key of ls, and whether it is its target's.
func (k *targetKeys) of(ls labels.Labels) (key uint64, byTarget bool) {
	job, instance := target(ls)
	if job == "" && instance == "" {
		return ls.Hash(), false
	}
	if job != k.job || instance != k.instance {
		var h maphash.Hash
		h.SetSeed(shardSeed)
		h.WriteString(job)
		h.WriteByte(0xff)
		h.WriteString(instance)
		k.job, k.instance, k.key = job, instance, h.Sum64()
	}
	return k.key, true
}

// Close stops accepting samples, sends what the shards hold and waits for
// it until ctx is done; batches not delivered by then are acknowledged with
// an error (ErrClosed or the last send error). Close is safe without
// Start; a later Close returns the first one's error.
func (s *Sink) Close(ctx context.Context) error {
	return s.life.Close(func(started bool) error {
		if !started {
			return nil
		}
		close(s.closing)
		stop := context.AfterFunc(ctx, s.hardEnd)
		defer stop()
		s.mu.Lock()
		shards := s.shards
		s.shards = nil
		s.mu.Unlock()
		drain(shards)
		s.hardEnd()
		s.reshWG.Wait()
		if s.Client == nil && s.client != nil {
			// The client is ours: its idle keep-alive connections (a goroutine
			// pair and an FD each) would outlive the sink.
			s.client.CloseIdleConnections()
		}
		if ctx.Err() != nil {
			return fmt.Errorf("remotewrite: close: %w", ctx.Err())
		}
		return nil
	})
}

// drain stops every shard: each sends what it holds, then exits.
func drain(shards []*shard) {
	for _, sh := range shards {
		sh.mu.Lock()
		sh.stopped = true
		sh.mu.Unlock()
		close(sh.stop)
	}
	for _, sh := range shards {
		<-sh.exited
	}
}

func (s *Sink) getSlice() []ferry.Sample {
	if v, ok := s.slicePool.Get().(*[]ferry.Sample); ok {
		return (*v)[:0]
	}
	return make([]ferry.Sample, 0, s.maxPerSend())
}

func (s *Sink) putSlice(b []ferry.Sample) {
	clear(b)
	b = b[:0]
	s.slicePool.Put(&b)
}

// shard is one ordered queue with its sending goroutine.
type shard struct {
	s *Sink

	mu      sync.Mutex
	pending []ferry.Sample
	acks    []*ferry.Ack
	first   time.Time // when the oldest pending sample arrived
	stopped bool

	queue  chan sendBatch
	stop   chan struct{}
	exited chan struct{}
	enc    encoder
}

type sendBatch struct {
	samples []ferry.Sample
	acks    []*ferry.Ack
}

func (s *Sink) newShards(n int) []*shard {
	per := s.maxPerSend()
	depth := max(orDefault(s.Capacity, DefaultCapacity)/per, 1)
	out := make([]*shard, n)
	for i := range out {
		sh := &shard{
			s:       s,
			pending: s.getSlice(),
			queue:   make(chan sendBatch, depth),
			stop:    make(chan struct{}),
			exited:  make(chan struct{}),
		}
		out[i] = sh
		go sh.run()
	}
	return out
}

// add appends samples that all belong to this shard and returns how many
// it took. It blocks while the shard's queue is full; a sample it took stays
// queued (and holds its ack) even when it then fails on ctx or closing.
func (sh *shard) add(ctx context.Context, closing <-chan struct{}, smps []ferry.Sample, ack *ferry.Ack) (int, error) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.stopped {
		return 0, ErrClosed
	}
	if ack != nil && (len(sh.acks) == 0 || sh.acks[len(sh.acks)-1] != ack) {
		ack.Retain(1)
		sh.acks = append(sh.acks, ack)
	}
	limit := sh.s.maxPerSend()
	for i := range smps {
		if len(sh.pending) == 0 {
			sh.first = time.Now()
		}
		sh.pending = append(sh.pending, smps[i])
		if len(sh.pending) < limit {
			continue
		}
		if len(sh.queue) == cap(sh.queue) {
			select {
			case sh.s.pressure <- struct{}{}:
			default:
			}
		}
		select {
		case sh.queue <- sendBatch{samples: sh.pending, acks: sh.acks}:
			sh.pending, sh.acks = sh.s.getSlice(), nil
			if ack != nil && i+1 < len(smps) {
				ack.Retain(1)
				sh.acks = append(sh.acks, ack)
			}
		case <-ctx.Done():
			return i + 1, ctx.Err()
		case <-closing:
			return i + 1, ErrClosed
		}
	}
	return len(smps), nil
}

// takeIfDue hands out the pending samples if they waited long enough (or
// force is set) and nothing older is queued, so that order is kept.
//
// Without force it only tries the lock: add holds it while it waits for room
// in the queue, which this shard's goroutine must keep emptying.
func (sh *shard) takeIfDue(force bool) (sendBatch, bool) {
	if force {
		sh.mu.Lock()
	} else if !sh.mu.TryLock() {
		return sendBatch{}, false
	}
	defer sh.mu.Unlock()
	if len(sh.pending) == 0 || len(sh.queue) > 0 {
		return sendBatch{}, false
	}
	if !force && time.Since(sh.first) < orDefault(sh.s.BatchSendDeadline, DefaultBatchSendDeadline) {
		return sendBatch{}, false
	}
	b := sendBatch{samples: sh.pending, acks: sh.acks}
	sh.pending, sh.acks = sh.s.getSlice(), nil
	return b, true
}

func (sh *shard) run() {
	defer close(sh.exited)
	deadline := orDefault(sh.s.BatchSendDeadline, DefaultBatchSendDeadline)
	tick := time.NewTicker(max(deadline/4, time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case b := <-sh.queue:
			sh.deliver(b)
		case <-tick.C:
			if b, ok := sh.takeIfDue(false); ok {
				sh.deliver(b)
			}
		case <-sh.stop:
			for {
				select {
				case b := <-sh.queue:
					sh.deliver(b)
					continue
				default:
				}
				break
			}
			if b, ok := sh.takeIfDue(true); ok {
				sh.deliver(b)
			}
			return
		}
	}
}

func (sh *shard) deliver(b sendBatch) {
	err := sh.s.sendWithRetry(sh.s.hardCtx, &sh.enc, b.samples)
	for _, a := range b.acks {
		a.Done(err)
	}
	sh.s.putSlice(b.samples)
}

func (s *Sink) degraded(err error) {
	s.healthy.Store(false)
	s.rep.SetHealth(ferry.Degraded, err)
}

// httpError is a non-2xx answer.
type httpError struct {
	status     int
	body       string
	retryAfter time.Duration
}

// Error describes the answer, with the start of the response body.
func (e *httpError) Error() string {
	if e.body == "" {
		return fmt.Sprintf("remotewrite: server returned HTTP status %d %s", e.status, http.StatusText(e.status))
	}
	return fmt.Sprintf("remotewrite: server returned HTTP status %d %s: %s", e.status, http.StatusText(e.status), e.body)
}

func (e *httpError) retryable() bool {
	return e.status >= 500 || e.status == http.StatusTooManyRequests
}

// sendWithRetry encodes samples and posts them until they are accepted,
// dropped for good (returns a ferry.Permanent error) or ctx ends.
func (s *Sink) sendWithRetry(ctx context.Context, enc *encoder, samples []ferry.Sample) error {
	if len(samples) == 0 {
		return nil
	}
	v2 := s.Version == V2 && !s.useV1.Load()
	body := enc.encode(samples, v2, s.Metadata)
	defer enc.release()
	backoff := retry.Backoff{Min: orDefault(s.MinBackoff, DefaultMinBackoff), Max: orDefault(s.MaxBackoff, DefaultMaxBackoff)}
	log := s.log
	for attempt := 0; ; attempt++ {
		start := time.Now()
		err := s.post(ctx, body, v2, attempt)
		if err == nil {
			s.sendNanos.Add(int64(time.Since(start)))
			s.samplesOut.Add(int64(len(samples)))
			if !s.healthy.Swap(true) {
				s.rep.SetHealth(ferry.Healthy, nil)
			}
			return nil
		}
		var he *httpError
		isHTTP := errors.As(err, &he)
		if v2 && (errors.Is(err, ErrNotV2Receiver) || (isHTTP && he.status == http.StatusUnsupportedMediaType)) {
			if !s.NoFallback {
				if s.useV1.CompareAndSwap(false, true) {
					log.Warn("remote write receiver does not accept 2.0, falling back to 1.0", "url", s.URL, "err", err)
				}
				v2 = false
				body = enc.encode(samples, false, s.Metadata)
				attempt = -1
				continue
			}
			reason := "unsupported_v2"
			if isHTTP {
				reason = "http_415"
			}
			s.rep.Dropped(reason, len(samples))
			s.degraded(err)
			log.Error("remote write dropped samples", "url", s.URL, "samples", len(samples), "err", err)
			return ferry.Permanent(err)
		}
		if isHTTP && !he.retryable() {
			s.rep.Dropped("http_"+strconv.Itoa(he.status), len(samples))
			s.degraded(err)
			log.Error("remote write dropped samples", "url", s.URL, "samples", len(samples), "err", err)
			return ferry.Permanent(err)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%w: %w", ErrClosed, err)
		}
		sleep := backoff.Next()
		if isHTTP && he.retryAfter > 0 {
			sleep = he.retryAfter
		}
		s.rep.Retried()
		s.degraded(err)
		s.lastRetry.Store(time.Now().UnixNano())
		log.Warn("remote write failed, retrying", "url", s.URL, "samples", len(samples), "attempt", attempt+1, "backoff", sleep, "err", err)
		if retry.Sleep(ctx, sleep) != nil {
			return fmt.Errorf("%w: %w", ErrClosed, err)
		}
	}
}

func (s *Sink) post(ctx context.Context, body []byte, v2 bool, attempt int) error {
	ctx, cancel := context.WithTimeout(ctx, orDefault(s.Timeout, DefaultTimeout))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL, bytes.NewReader(body))
	if err != nil {
		return ferry.Permanent(err)
	}
	for k, v := range s.Headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Encoding", "snappy")
	if v2 {
		req.Header.Set("Content-Type", "application/x-protobuf;proto=io.prometheus.write.v2.Request")
		req.Header.Set("X-Prometheus-Remote-Write-Version", "2.0.0")
	} else {
		req.Header.Set("Content-Type", "application/x-protobuf")
		req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	}
	ua := s.UserAgent
	if ua == "" {
		ua = DefaultUserAgent
	}
	req.Header.Set("User-Agent", ua)
	if attempt > 0 {
		req.Header.Set("Retry-Attempt", strconv.Itoa(attempt))
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		if v2 && !writtenAny(resp.Header) {
			return ErrNotV2Receiver
		}
		return nil
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	he := &httpError{status: resp.StatusCode, body: string(bytes.TrimSpace(msg))}
	if he.retryable() {
		he.retryAfter = retry.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	return he
}

// writtenAny reports whether a 2.0 response says anything was written.
func writtenAny(h http.Header) bool {
	for _, k := range []string{
		"X-Prometheus-Remote-Write-Samples-Written",
		"X-Prometheus-Remote-Write-Histograms-Written",
		"X-Prometheus-Remote-Write-Exemplars-Written",
	} {
		if n, ok := parseCount(h.Get(k)); ok && n > 0 {
			return true
		}
	}
	return false
}

func parseCount(v string) (int64, bool) {
	if v == "" {
		return 0, false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// reshardLoop adapts the shard count, as Prometheus's queue manager does:
// shards needed = seconds per sample sent × (samples in per second + backlog
// to clear within one interval), with 30 % tolerance, never while retrying.
// A full shard queue, which blocks the sink's callers, does not wait for the
// interval: after at least a second (or the interval, if shorter) the count
// is reconsidered at once and grows by half at least. It shrinks only after
// a whole interval.
//
// Unlike Prometheus, it judges each growth at the next reconsideration: if
// the delivery rate did not rise by 15 %, the receiver, not the shard
// count, is the limit (it takes a request at a time, or shares a saturated
// CPU), and the count before the growth becomes a ceiling until the rate
// rises by 15 % over what it was then. More shards would only make each
// request slower, which the formula answers with more shards still, each
// with its queue and request buffers.
//
// At each reconsideration it also decides which targets are spread
// (spreading.update), from the samples each sent in the interval; a change
// replaces the shards as a new count does.
func (s *Sink) reshardLoop(every time.Duration) {
	defer s.reshWG.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	var lastIn, lastOut, lastNanos int64
	last := time.Now()
	r := resharder{every: every, min: s.minShards(), max: s.maxShards()}
	spread := spreading{}
	for {
		pressed := false
		select {
		case <-t.C:
		case <-s.pressure:
			if time.Since(last) < min(time.Second, every) {
				continue
			}
			pressed = true
		case <-s.closing:
			return
		}
		elapsed := time.Since(last)
		last = time.Now()
		sent := s.rates.take()
		in, out, nanos := s.samplesIn.Load(), s.samplesOut.Load(), s.sendNanos.Load()
		dIn, dOut, dNanos := in-lastIn, out-lastOut, nanos-lastNanos
		lastIn, lastOut, lastNanos = in, out, nanos
		if time.Since(time.Unix(0, s.lastRetry.Load())) < 2*every || dOut == 0 {
			continue
		}
		s.mu.RLock()
		cur := len(s.shards)
		s.mu.RUnlock()
		n, resize := r.decide(reshardInterval{elapsed, dIn, dOut, dNanos, in - out, cur, pressed})
		if !s.noSpread && spread.update(sent, float64(dNanos)/float64(dOut)/1e9, elapsed.Seconds(), every) {
			// Whether more shards help has changed: a ceiling found
			// while a target could use one shard only says nothing now.
			r.ceiling = 0
			// With one shard which targets are spread does not matter:
			// the next growth takes the new set along.
			resize = resize || n > 1
		}
		if !resize {
			continue
		}
		s.reshard(n, spread.set())
		// The next interval starts with the new shards: Send waited while
		// the old ones drained, and an interval that saw the wait would
		// take it for a lull and shrink the count it just grew.
		t.Reset(every)
		last = time.Now()
		s.rates.take()
		lastIn, lastOut, lastNanos = s.samplesIn.Load(), s.samplesOut.Load(), s.sendNanos.Load()
	}
}

// reshardInterval is what reshardLoop saw over one interval.
type reshardInterval struct {
	elapsed           time.Duration
	dIn, dOut, dNanos int64 // samples queued, samples sent, nanoseconds spent sending
	backlog           int64 // samples queued and not sent
	cur               int   // shards now
	pressed           bool  // a full queue asked for the reconsideration
}

// resharder is the decision of reshardLoop, apart from its clock, so that
// it can be tested with made-up intervals.
type resharder struct {
	every    time.Duration
	min, max int

	judge       bool    // the last reshard was a growth, not judged yet
	from        int     // the shard count before it
	before      float64 // the delivery rate before it
	ceiling     int     // 0, or the most shards worth having
	ceilingRate float64 // the delivery rate with it
}

// decide returns the shard count to reshard to after the interval o, and
// whether to reshard at all.
func (r *resharder) decide(o reshardInterval) (int, bool) {
	outRate := float64(o.dOut) / o.elapsed.Seconds()
	if r.judge {
		r.judge = false
		if outRate < 1.15*r.before {
			r.ceiling, r.ceilingRate = r.from, max(r.before, outRate)
		}
	}
	if r.ceiling > 0 && outRate >= 1.15*r.ceilingRate {
		r.ceiling = 0 // the receiver got faster
	}
	perSample := float64(o.dNanos) / float64(o.dOut) / 1e9
	rate := float64(o.dIn) / o.elapsed.Seconds()
	desired := int(math.Ceil(perSample * (rate + float64(max(o.backlog, 0))/r.every.Seconds()) * 1.2))
	cur := o.cur
	if o.pressed {
		desired = max(desired, cur+(cur+1)/2)
	}
	if r.ceiling > 0 {
		desired = min(desired, r.ceiling)
	}
	desired = min(max(desired, r.min), r.max)
	shrink := float64(desired) <= 0.7*float64(cur)
	grow := float64(desired) >= 1.3*float64(cur) || (o.pressed && desired > cur)
	if cur == 0 || desired == cur || !(grow || shrink && o.elapsed >= r.every/2) {
		return cur, false
	}
	r.judge, r.from, r.before = grow, cur, outRate
	return desired, true
}

// reshard replaces the shards by n new ones, and the spread targets by
// spread. The old shards are drained first, so that no series is sent out
// of order.
func (s *Sink) reshard(n int, spread map[uint64]struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.closing:
		return
	default:
	}
	s.log.Info("remote write resharding", "url", s.URL, "from", len(s.shards), "to", n, "spread_targets", len(spread))
	drain(s.shards)
	s.shards, s.spread = s.newShards(n), spread
}

// ProtocolVersion returns the protocol the sink sends: Version, or V1
// after a V2 sink fell back because the receiver only speaks 1.0.
func (s *Sink) ProtocolVersion() Version {
	if s.useV1.Load() {
		return V1
	}
	return s.Version
}

// NumShards returns the current number of shards (0 before Start and after
// Close).
func (s *Sink) NumShards() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.shards)
}
