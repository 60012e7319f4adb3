// Package debugui serves the debug page of a pipeline.Pipeline, the way
// net/http/pprof serves profiles: the component graph coloured by health,
// one page per component with its counters, targets, read positions and
// state (a disk buffer's backlog: see pipeline.StateReporter), a
// live tail of what a component passes on, a JSON API behind all of it, and
// readiness and liveness endpoints.
//
// A program with a mux of its own mounts Handler anywhere on it. A program
// without one makes one call, which also serves /metrics and stops with its
// context:
//
//	p, err := b.Build()
//	...
//	go debugui.ListenAndServe(ctx, "127.0.0.1:12345", p, nil)
//	err = p.Run(ctx)
//
// The page reads only what package pipeline exports for it (Components,
// Ready, Positions, State and Tap), so the pipeline carries no HTML and a program
// that does not import this package does not link it. Everything that came
// from outside the program is redacted before it is shown.
package debugui
