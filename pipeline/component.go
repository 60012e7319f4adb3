package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/prometheus/prometheus/model/labels"
)

// Kind says what role a component plays in the graph.
type Kind string

// The kinds of component.
const (
	KindDiscoverer Kind = "discoverer"
	KindRelabel    Kind = "relabel"
	KindSource     Kind = "source"
	KindProcessor  Kind = "processor"
	KindSink       Kind = "sink"
)

// Status is a snapshot of one component of a running pipeline: its health
// and its counters since the pipeline was built.
type Status struct {
	Name   string
	Kind   Kind
	Inputs []string // names of the components feeding this one

	Health    ferry.Health
	LastError string    // the error behind the current health, if any
	Since     time.Time // when Health last changed

	ItemsIn, ItemsOut     uint64 // entries, samples or targets
	BytesIn, BytesOut     uint64 // payload bytes (log lines and metadata; sample size estimates)
	BatchesIn, BatchesOut uint64
	Dropped               map[string]uint64 // items dropped for good, by reason
	Retries               uint64
	Restarts              uint64
	QueueLen, QueueCap    int // batches waiting in the component's input, and the bound

	// LastOK is when a call into the component last succeeded: the last
	// batch a source emitted, a processor processed, a sink accepted.
	LastOK time.Time
	// Lag is, for sources of log entries, how far the newest entry of the
	// last batch was behind the time it was emitted.
	Lag time.Duration
	// Targets is the latest target set of a discoverer or relabel step.
	Targets []labels.Labels
	// Positions are the read positions of a source that reports them
	// (source.PositionReporter), by key.
	Positions map[string]string
}

// component holds the live state behind a Status and is the ferry.Reporter
// handed to the component.
type component struct {
	name   string
	kind   Kind
	inputs []string
	logger *slog.Logger
	queue  func() (int, int)
	ctx    context.Context // for calls into the component: the run's hard context with this reporter

	typ        string      // the Go type of the user's component, for messages
	starter    bool        // it implements ferry.Starter
	notStarted atomic.Bool // a call said it was not started (see run.notStarted)

	itemsIn, itemsOut     atomic.Uint64
	bytesIn, bytesOut     atomic.Uint64
	batchesIn, batchesOut atomic.Uint64
	retries, restarts     atomic.Uint64

	lastOK  atomic.Int64 // unix nanoseconds
	lag     atomic.Int64 // nanoseconds
	targets atomic.Pointer[[]labels.Labels]
	taps    atomic.Pointer[[]*tap]

	mu      sync.Mutex
	health  ferry.Health
	lastErr error
	since   time.Time
	auto    bool // health was set by the pipeline (a failed call), not the component
	drops   map[string]uint64
}

func newComponent(name string, kind Kind, logger *slog.Logger) *component {
	return &component{
		name:   name,
		kind:   kind,
		logger: logger.With("component", name, "kind", string(kind)),
		since:  time.Now(),
		drops:  map[string]uint64{},
	}
}

var _ ferry.Reporter = (*component)(nil)

func (c *component) Logger() *slog.Logger { return c.logger }

func (c *component) SetHealth(h ferry.Health, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.setLocked(h, err, false)
}

func (c *component) setLocked(h ferry.Health, err error, auto bool) {
	if h != c.health {
		c.since = time.Now()
	}
	c.health, c.lastErr, c.auto = h, err, auto
}

func (c *component) Dropped(reason string, n int) {
	if n <= 0 {
		return
	}
	c.mu.Lock()
	c.drops[reason] += uint64(n)
	c.mu.Unlock()
}

func (c *component) Retried() { c.retries.Add(1) }

// failed records an error the pipeline saw from a call into the component.
func (c *component) failed(h ferry.Health, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.setLocked(h, err, true)
}

// ok records a successful call: it clears a state the pipeline set, and
// marks a component that never reported as healthy. A health the component
// reported itself stays until it reports again.
func (c *component) ok() {
	c.lastOK.Store(time.Now().UnixNano())
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.auto || c.health == ferry.HealthUnknown {
		c.setLocked(ferry.Healthy, nil, true)
	}
}

func (c *component) status() Status {
	s := Status{
		Name:       c.name,
		Kind:       c.kind,
		Inputs:     c.inputs,
		ItemsIn:    c.itemsIn.Load(),
		ItemsOut:   c.itemsOut.Load(),
		BytesIn:    c.bytesIn.Load(),
		BytesOut:   c.bytesOut.Load(),
		BatchesIn:  c.batchesIn.Load(),
		BatchesOut: c.batchesOut.Load(),
		Retries:    c.retries.Load(),
		Restarts:   c.restarts.Load(),
	}
	if c.queue != nil {
		s.QueueLen, s.QueueCap = c.queue()
	}
	if t := c.lastOK.Load(); t != 0 {
		s.LastOK = time.Unix(0, t)
	}
	s.Lag = time.Duration(c.lag.Load())
	if ts := c.targets.Load(); ts != nil {
		s.Targets = *ts
	}
	c.mu.Lock()
	s.Health, s.Since = c.health, c.since
	if c.lastErr != nil {
		s.LastError = c.lastErr.Error()
	}
	s.Dropped = maps.Clone(c.drops)
	c.mu.Unlock()
	return s
}

// countIn and countOut update the item, byte and batch counters for a batch
// crossing the component's input or output. Bytes are measured once where a
// batch leaves a component and travel with it to the next one.
func countIn(c *component, items, bytes int) {
	c.batchesIn.Add(1)
	c.itemsIn.Add(uint64(items))
	c.bytesIn.Add(uint64(bytes))
}

func countOut(c *component, items, bytes int) {
	c.batchesOut.Add(1)
	c.itemsOut.Add(uint64(items))
	c.bytesOut.Add(uint64(bytes))
}

func payloadBytes[T any](items []T) int {
	n := 0
	switch v := any(items).(type) {
	case []ferry.Entry:
		for i := range v {
			n += v[i].Size()
		}
	case []ferry.Sample:
		for i := range v {
			n += v[i].Size()
		}
	}
	return n
}

// panicError turns a recovered panic into an error, so that a bug in one
// component shows as that component failing instead of ending the program.
func panicError(name string, r any) error {
	return fmt.Errorf("%s: panic: %v", name, r)
}

// observeLag records how far behind the newest entry of a batch is.
func observeLag[T any](c *component, items []T) {
	es, ok := any(items).([]ferry.Entry)
	if !ok || len(es) == 0 {
		return
	}
	newest := es[len(es)-1].Timestamp
	if newest.IsZero() {
		return
	}
	c.lag.Store(int64(time.Since(newest)))
}
