package debugui

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/ferrydev/ferry/pipeline"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ShutdownTimeout bounds how long Serve waits, once its context is done,
// for requests in progress to finish before it closes their connections.
// Live tails end at once: their requests' contexts derive from Serve's.
const ShutdownTimeout = 2 * time.Second

// Mux returns a handler that serves Handler(p) at / and what g gathers at
// /metrics, in the Prometheus exposition formats. A nil g serves a new
// registry with p, the Go runtime collector and the process collector
// registered.
func Mux(p *pipeline.Pipeline, g prometheus.Gatherer) http.Handler {
	if g == nil {
		reg := prometheus.NewRegistry()
		reg.MustRegister(p, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		g = reg
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	mux.Handle("/", Handler(p))
	return mux
}

// ListenAndServe listens on the TCP address addr and serves Mux(p, g) until
// ctx is done, like Serve. It returns the error of Listen, or what Serve
// returns.
//
//	go debugui.ListenAndServe(ctx, "127.0.0.1:12345", p, nil)
func ListenAndServe(ctx context.Context, addr string, p *pipeline.Pipeline, g prometheus.Gatherer) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return Serve(ctx, ln, p, g)
}

// Serve serves Mux(p, g) on ln until ctx is done, then shuts the server
// down: live tails end at once, other requests in progress get
// ShutdownTimeout to finish. It closes ln. It returns nil after a shutdown
// caused by ctx, and otherwise the error that stopped the server (the
// listener failed). Listening first and serving later, with Serve, lets a
// program know the address before it builds its pipeline (to scrape its
// own /metrics, say).
func Serve(ctx context.Context, ln net.Listener, p *pipeline.Pipeline, g prometheus.Gatherer) error {
	base, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	srv := &http.Server{
		Handler:           Mux(p, g),
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return base },
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	cancel() // ends live tails
	sctx, scancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer scancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
