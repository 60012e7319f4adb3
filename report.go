package ferry

import (
	"context"
	"log/slog"
)

// Health is how a component is doing, as the pipeline shows it.
type Health int

// The health states, from best to worst.
const (
	// HealthUnknown: the component has not reported and has not yet run.
	HealthUnknown Health = iota
	// Healthy: working as configured.
	Healthy
	// Degraded: working, but with trouble: retries, drops, a slow peer.
	Degraded
	// Failing: not working; the pipeline restarts it with backoff where
	// that can help.
	Failing
)

// String returns the health's name: "healthy", "degraded" or "failing".
func (h Health) String() string {
	switch h {
	case Healthy:
		return "healthy"
	case Degraded:
		return "degraded"
	case Failing:
		return "failing"
	}
	return "unknown"
}

// Reporter is how a running component tells its pipeline what happened to
// it. A component that implements Starter receives its Reporter in Start
// and keeps it; for the others, the pipeline also puts it in the context of
// every Run, Process, Send and Close call it makes, where ReporterFrom
// retrieves it. Every method is safe for concurrent use and cheap enough for
// a hot path.
type Reporter interface {
	// Logger returns the component's logger, carrying its name and kind.
	Logger() *slog.Logger
	// SetHealth records the component's own view of its health. err is the
	// cause of anything but Healthy, and may be nil.
	SetHealth(h Health, err error)
	// Dropped counts n items dropped for good for the given reason, a short
	// constant string such as "rate_limited" or "too_large". Items that were
	// delivered cut short are counted too, under a reason that ends in
	// "_truncated", since part of them was dropped.
	Dropped(reason string, n int)
	// Retried counts one retry of a failed attempt.
	Retried()
}

// ReasonRetriesExhausted is the Dropped reason of items a sink gave up on
// after its retries ran out. The sink acknowledges them with an error that
// is not Permanent, so they are lost only if nobody sends them again: a
// source with positions reads them again, and a component that retries them
// itself (buffer.Disk, for the sink it wraps) does not count them as dropped.
const ReasonRetriesExhausted = "retries_exhausted"

type reporterKey struct{}

// WithReporter returns a context that carries r. Pipelines call it; tests of
// a single component can too.
func WithReporter(ctx context.Context, r Reporter) context.Context {
	return context.WithValue(ctx, reporterKey{}, r)
}

// ReporterFrom returns the Reporter in ctx, or one that only logs to
// slog.Default, so that a component used outside a pipeline needs no special
// case.
func ReporterFrom(ctx context.Context) Reporter {
	if r, ok := ctx.Value(reporterKey{}).(Reporter); ok {
		return r
	}
	return nopReporter{}
}

type nopReporter struct{}

func (nopReporter) Logger() *slog.Logger    { return slog.Default() }
func (nopReporter) SetHealth(Health, error) {}
func (nopReporter) Dropped(string, int)     {}
func (nopReporter) Retried()                {}
