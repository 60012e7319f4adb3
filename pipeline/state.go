package pipeline

import "log/slog"

// StateReporter is implemented by components with state of their own worth
// showing next to the counters the pipeline keeps for every component: a
// disk buffer's bytes, backlog, oldest record and replay rate, say.
// Pipeline.State returns it, and the debug page of package debugui shows it
// on the component's page and in its JSON.
//
// State returns a snapshot, as attributes in the order to show them; a
// group's attributes are shown under its key. Ints, floats, durations,
// times, bools and strings show as such; other values through their
// String method. State is called from any goroutine, at any time: before
// Start, while Start runs, while batches flow and after Close. It must be
// safe then, cheap (every view of the page calls it) and must not wait
// for the data path. The caller owns the returned slice. Values from
// outside the program (paths, URLs) are redacted before they are shown.
type StateReporter interface {
	State() []slog.Attr
}
