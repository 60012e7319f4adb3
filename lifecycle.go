package ferry

import (
	"context"
	"errors"
)

// Starter is implemented by components that hold resources: goroutines,
// connections, open files, listeners. It gives starting a place of its own,
// so that Send and Run stay the hot path and a start that fails is reported
// once, by the caller of Start, rather than as a failed batch.
//
// The lifecycle of every component is the same:
//
//  1. Validate() error (optional): checks the configuration and nothing
//     else; pipeline.Builder.Build calls it and reports every error before
//     anything runs. An error about configuration never reaches an
//     acknowledgement.
//  2. Start(ctx, r): opens what the component needs and starts its
//     goroutines. r is the component's Reporter (never nil: the pipeline
//     gives the component's own, a direct caller may give NopReporter);
//     the component keeps it for its whole life, together with r.Logger().
//     ctx bounds the start only; work started here runs until Close. A
//     pipeline calls Start once per Run, before the component's first Run
//     or Send, and fails the Run if it returns an error.
//  3. Run (sources, discoverers) or Send (sinks, processors): the hot path.
//  4. Close(ctx): flushes within ctx's deadline and frees what Start took.
//     It is safe without Start and safe twice.
//
// A component used outside a pipeline calls Start itself before use.
//
// A component that wraps another (to watch or change its Run or Send)
// must implement Starter too and call the wrapped component's Start:
// otherwise the wrapped component is never started and refuses to run. A
// pipeline that sees a component say ErrNotStarted stops and names the
// component and its type.
type Starter interface {
	Start(ctx context.Context, r Reporter) error
}

// NopReporter returns a Reporter that logs to slog.Default and counts
// nothing, for components started outside a pipeline.
func NopReporter() Reporter { return nopReporter{} }

// ErrNotStarted is what a component's Run or Send reports when it was
// called before Start. Components wrap it with their name; test for it with
// errors.Is. It is not permanent: the data it refuses may be sent again.
var ErrNotStarted = errors.New("not started: call Start first (a pipeline calls it)")

// ErrClosed is what a component's Run or Send reports after Close, and the
// outcome of data a component gave up because it was closed before it
// could deliver it. Components wrap it with their name; test for it with
// errors.Is. It is not permanent: the data it refuses may be sent again.
var ErrClosed = errors.New("closed")
