package pipeline_test

import "log/slog"

// quiet returns a logger that discards everything, for tests that provoke
// warnings on purpose.
func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }
