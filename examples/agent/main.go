// Command agent is the program a Ferry user starts from: it collects logs
// and metrics and prints them, and each flag adds a part of what Promtail
// or Alloy do.
//
// With no flags it reads its standard input when that is a pipe or a file,
// and otherwise prints a short built-in demo stream, all to the console.
// It also scrapes its own metrics endpoint and prints the samples; when
// its input ends it stops (after a demo, once a batch of samples has shown,
// which is why a demo that ends scrapes itself every second):
//
//	go run ./examples/agent
//	journalctl -f | go run ./examples/agent -format json
//
// Flags add Docker and file logs, Loki delivery, scraping and remote write:
//
//	go run ./examples/agent -docker -positions /var/lib/ferry/positions.json \
//		-loki.url http://loki:3100/loki/api/v1/push \
//		-scrape localhost:9100 -remote-write.url http://prometheus:9090/api/v1/write
//
// -docker.label key=value follows only the containers with that label.
//
// The debug page (component graph, health, live tail) and /metrics are on
// http://127.0.0.1:12345/ unless -debug.addr says otherwise. Self-scraping
// (-self-scrape, on by default) scrapes that /metrics over HTTP; when the
// debug page is not served, it reads the same metrics in process.
//
// Build it with CGO_ENABLED=0 go build: it needs no C, and the static
// binary runs in an image without a C library. Memory: the agent runs with
// GOGC=50 unless the environment sets GOGC (see defaultGCPercent for why
// and when to change it). Following 20 containers its resident memory then
// peaks at about 19 MB, some 13 MB of it pages of its binary; built with
// cgo, at about 21 MB (FERRY_FOOTPRINT=1 go test -run Footprint -v
// ./examples/agent; FERRY_FOOTPRINT_CGO=1 for the cgo build).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/pipeline"
	"github.com/ferrydev/ferry/positions"
	"github.com/ferrydev/ferry/relabel"
	"github.com/ferrydev/ferry/sink"
	"github.com/ferrydev/ferry/source"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/prometheus/model/labels"
)

// defaultGCPercent is the agent's GOGC unless the environment sets one.
//
// Following 20 containers, the agent's live heap is about 1 MB, and Go's
// default (GOGC=100) lets the heap reach its floor of 4 MB before a
// collection, so that the heap holds mostly garbage (peak RSS 22.0–22.5
// MB, 8.5–8.8 MB of it anonymous). GOGC=50 halves that floor and the
// growth over the live heap (peak 20.7–20.9 MB, 6.7–7.0 MB anonymous). The
// price is twice as many collections, each of a small heap: at the log
// rates of a node agent this is a few milliseconds of CPU a second at
// most. Under heavy load (thousands of lines a second, many scrape
// targets) the GC's share of CPU grows with it: set GOGC=100 or higher
// there, and GOMEMLIMIT to the memory the agent may use (its container's
// limit less some headroom) so that it collects harder only near it.
const defaultGCPercent = 50

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "agent:", err)
		os.Exit(1)
	}
}

type config struct {
	logLevel   slog.Level
	logFormat  string
	output     string
	demoLines  int
	demoPeriod time.Duration
	drain      time.Duration
	job        string
	debug      debugFlag    // -debug.addr, in debug.go
	collect    collectFlags // Docker, files, Loki, scraping, remote write, in collect.go
}

func parseFlags(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	fs.TextVar(&c.logLevel, "log.level", slog.LevelInfo, "log level: debug, info, warn, error")
	fs.StringVar(&c.logFormat, "log.format", "logfmt", "log format: logfmt or json")
	fs.StringVar(&c.output, "format", "text", "console output: text or json")
	fs.IntVar(&c.demoLines, "demo.lines", 12, "lines of the built-in demo stream (0: without end)")
	fs.DurationVar(&c.demoPeriod, "demo.period", 200*time.Millisecond, "time between demo lines")
	fs.DurationVar(&c.drain, "drain", 10*time.Second, "how long to wait for delivery on shutdown")
	fs.StringVar(&c.job, "job", "agent", "value of the job label")
	c.debug.register(fs)
	c.collect.register(fs)
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	return c, nil
}

// run builds the agent from its flags and runs it until ctx is done or its
// input (stdin or the demo) ends.
func run(ctx context.Context, args []string, stdin *os.File, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args)
	if err != nil {
		return err
	}
	logger := newLogger(cfg, stderr)

	// Listen before building, so that self-scraping knows where /metrics is.
	ln, err := listenDebug(cfg.debug, logger)
	if err != nil {
		return err
	}
	var selfAddr string
	if ln != nil {
		defer ln.Close() // in case the build fails; the server closes it otherwise
		selfAddr = ln.Addr().String()
	}

	b := pipeline.New(pipeline.WithLogger(logger), pipeline.WithDrainTimeout(cfg.drain))
	reg := prometheus.NewRegistry()

	var pf *positions.File
	if cfg.collect.positions != "" {
		if pf, err = positions.Open(cfg.collect.positions, positions.Options{}); err != nil {
			return err
		}
	}
	logs := cfg.collect.addLogs(b, pf)
	var input *ending[ferry.Entry] // stdin or the demo: the agent stops when it ends
	demoMode := false
	switch {
	case cfg.collect.logSources():
	case isData(stdin):
		input = &ending[ferry.Entry]{Source: &source.Reader{
			R:      stdin,
			Labels: labels.FromStrings(relabel.JobLabel, cfg.job, "source", "stdin"),
		}, ended: make(chan struct{})}
		logs = append(logs, pipeline.FromSource(b, "stdin", input))
	default:
		demoMode = true
		input = &ending[ferry.Entry]{Source: &demo{lines: cfg.demoLines, period: cfg.demoPeriod, job: cfg.job}, ended: make(chan struct{})}
		logs = append(logs, pipeline.FromSource(b, "demo", input))
	}

	logs = []pipeline.Stream[ferry.Entry]{pipeline.Relabel(b, "labels", []relabel.Rule{
		relabel.Set("agent", "ferry"),
	}, logs...)}
	name, logSink := cfg.collect.logSink(&sink.Console[ferry.Entry]{W: stdout, JSON: cfg.output == "json"})
	pipeline.To(b, name, logSink, logs...)
	// A demo that ends scrapes itself every second, so that samples show
	// before it ends; otherwise every -scrape.interval.
	selfInterval := cfg.collect.scrapeInterval
	if demoMode && cfg.demoLines > 0 {
		selfInterval = demoSelfScrapeInterval
	}
	samplesTaken, err := cfg.collect.addMetrics(b, reg, selfAddr, selfInterval,
		&sink.Console[ferry.Sample]{W: stdout, JSON: cfg.output == "json"}, logger)
	if err != nil {
		return err
	}

	p, err := b.Build()
	if err != nil {
		return err
	}
	reg.MustRegister(p, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	stopDebug := serveDebug(ln, p, reg, logger)
	defer stopDebug()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if input != nil {
		var wait <-chan struct{}
		if demoMode && cfg.collect.selfScrape {
			wait = samplesTaken
		}
		go stopAfter(ctx, cancel, input.ended, wait, logger)
	}
	logger.Info("agent starting", "components", len(p.Components()))
	if err := p.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	logger.Info("agent stopped")
	return nil
}

const (
	// demoSelfScrapeInterval is the self-scrape interval of a demo that
	// ends: short, so that a batch of samples shows before it does.
	demoSelfScrapeInterval = time.Second
	// demoSamplesWait is how long the agent waits for that batch after
	// the demo ended.
	demoSamplesWait = 5 * time.Second
)

// stopAfter cancels the agent's run once its input has ended and, when
// samples is not nil, its first batch of samples was taken (or
// demoSamplesWait passed without one), so that Run drains and returns
// although scrapes never end.
func stopAfter(ctx context.Context, cancel context.CancelFunc, ended, samples <-chan struct{}, logger *slog.Logger) {
	select {
	case <-ended:
	case <-ctx.Done():
		return
	}
	if samples != nil {
		t := time.NewTimer(demoSamplesWait)
		defer t.Stop()
		select {
		case <-samples:
		case <-t.C:
			logger.Warn("no samples since the demo ended; stopping", "waited", demoSamplesWait)
		case <-ctx.Done():
		}
	}
	cancel()
}

// ending is a source that closes ended once its Source has finished.
type ending[T any] struct {
	source.Source[T]
	ended chan struct{}
}

// Start starts the wrapped source, if it has a start of its own.
func (e *ending[T]) Start(ctx context.Context, r ferry.Reporter) error {
	if s, ok := e.Source.(ferry.Starter); ok {
		return s.Start(ctx, r)
	}
	return nil
}

func (e *ending[T]) Run(ctx context.Context, out chan<- ferry.Batch[T]) error {
	err := e.Source.Run(ctx, out)
	if err == nil {
		close(e.ended)
	}
	return err
}

func newLogger(cfg config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.logLevel}
	if cfg.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// isData reports whether f (standard input) is a pipe or a file rather than
// a terminal or /dev/null.
func isData(f *os.File) bool {
	if f == nil {
		return false
	}
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	return fi.Mode()&(os.ModeNamedPipe) != 0 || fi.Mode().IsRegular()
}
