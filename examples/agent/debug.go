package main

import (
	"context"
	"flag"
	"log/slog"
	"net"

	"github.com/ferrydev/ferry/pipeline"
	"github.com/ferrydev/ferry/pipeline/debugui"
	"github.com/prometheus/client_golang/prometheus"
)

// defaultDebugAddr is where the debug page is served unless -debug.addr
// says otherwise: loopback only, the port Alloy's UI uses.
const defaultDebugAddr = "127.0.0.1:12345"

// debugFlag is -debug.addr. It remembers whether it was set, because a
// taken default port only earns a warning, while an address the user asked
// for must work.
type debugFlag struct {
	addr string
	set  bool
}

func (f *debugFlag) String() string { return f.addr }

func (f *debugFlag) Set(s string) error { f.addr, f.set = s, true; return nil }

func (f *debugFlag) register(fs *flag.FlagSet) {
	f.addr = defaultDebugAddr
	fs.Var(f, "debug.addr", "address of the debug page (pipeline graph, health, live tail) and /metrics; empty disables")
}

// listenDebug listens on -debug.addr, before the pipeline is built, so
// that self-scraping knows the address of /metrics. It returns a nil
// listener when the debug page is off, or when the default port is taken
// (with a warning); an address the user asked for must work.
func listenDebug(f debugFlag, logger *slog.Logger) (net.Listener, error) {
	if f.addr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", f.addr)
	if err != nil && !f.set {
		logger.Warn("debug page not served", "err", err)
		return nil, nil
	}
	return ln, err
}

// serveDebug serves on ln the pipeline's debug page at / and what reg
// gathers (the pipeline's metrics, the Go runtime's and the process's) at
// /metrics, with debugui.Serve. It returns a function that stops the
// server, ending live tails at once. A nil ln serves nothing.
func serveDebug(ln net.Listener, p *pipeline.Pipeline, reg prometheus.Gatherer, logger *slog.Logger) (stop func()) {
	if ln == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := debugui.Serve(ctx, ln, p, reg); err != nil {
			logger.Error("debug server failed", "err", err)
		}
	}()
	logger.Info("debug page listening", "addr", "http://"+ln.Addr().String()+"/")
	return func() {
		cancel()
		<-done
	}
}
