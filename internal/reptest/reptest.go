// Package reptest holds Reporter, a ferry.Reporter that records what a
// component reports, for tests.
package reptest

import (
	"bytes"
	"log/slog"
	"maps"
	"slices"
	"sync"

	"github.com/ferrydev/ferry"
)

// Reporter records drops by reason, retries, every health change with its
// error, and log records (as text). Its zero value is ready to use, and it
// is safe for concurrent use, also by goroutines that outlive the test.
type Reporter struct {
	mu      sync.Mutex
	dropped map[string]int
	retries int
	health  []ferry.Health
	errs    []error // the non-nil errors of SetHealth, in order
	lastErr error   // the error of the last SetHealth
	logs    bytes.Buffer
	log     *slog.Logger
}

var _ ferry.Reporter = (*Reporter)(nil)

// Logger returns a logger whose records, at every level, Logs returns.
func (r *Reporter) Logger() *slog.Logger {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.log == nil {
		r.log = slog.New(slog.NewTextHandler(lockedWriter{r}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return r.log
}

// lockedWriter appends to the Reporter's log under its lock.
type lockedWriter struct{ r *Reporter }

func (w lockedWriter) Write(p []byte) (int, error) {
	w.r.mu.Lock()
	defer w.r.mu.Unlock()
	return w.r.logs.Write(p)
}

// SetHealth records h and err.
func (r *Reporter) SetHealth(h ferry.Health, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.health = append(r.health, h)
	r.lastErr = err
	if err != nil {
		r.errs = append(r.errs, err)
	}
}

// Dropped adds n to the drops of reason.
func (r *Reporter) Dropped(reason string, n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.dropped == nil {
		r.dropped = map[string]int{}
	}
	r.dropped[reason] += n
}

// Retried counts one retry.
func (r *Reporter) Retried() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.retries++
}

// Drops returns the items dropped for reason so far.
func (r *Reporter) Drops(reason string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.dropped[reason]
}

// AllDrops returns a copy of the drops by reason.
func (r *Reporter) AllDrops() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.dropped)
}

// Retries returns the retries counted so far.
func (r *Reporter) Retries() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.retries
}

// Health returns the last health set and its error; ferry.HealthUnknown
// before any.
func (r *Reporter) Health() (ferry.Health, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.health) == 0 {
		return ferry.HealthUnknown, nil
	}
	return r.health[len(r.health)-1], r.lastErr
}

// Healths returns every health set so far, in order.
func (r *Reporter) Healths() []ferry.Health {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.health)
}

// Errors returns the non-nil errors set with a health so far, in order.
func (r *Reporter) Errors() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.errs)
}

// Logs returns what was logged so far, as text records.
func (r *Reporter) Logs() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.logs.String()
}
