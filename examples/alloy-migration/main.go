// Command alloy-migration is, in Go, the Alloy configuration a team runs on
// a Docker host after migrating from Promtail:
//
//	logging { level = "info"  format = "logfmt" }
//	discovery.docker "containers" { host = "unix:///var/run/docker.sock"  refresh_interval = "5s" }
//	discovery.relabel "containers" { ... container and service labels ... }
//	loki.source.docker "containers" { ... forward_to = [loki.write.default.receiver] }
//	loki.write "default" { endpoint { url = "http://loki:3100/loki/api/v1/push" } }
//	prometheus.scrape "alloy"      { targets = [{ __address__ = "localhost:12345" }] ... }
//	prometheus.scrape "prometheus" { targets = [{ __address__ = "prometheus:9090" }] ... }
//	prometheus.remote_write "default" { endpoint { url = "http://prometheus:9090/api/v1/write" } }
//
// with the same defaults, each changeable by a flag (see -help). The debug
// page, Alloy's UI, is served on 127.0.0.1:12345. docs/migration.md walks
// through it block by block.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/ferrydev/ferry/discovery"
	"github.com/ferrydev/ferry/discovery/docker"
	"github.com/ferrydev/ferry/pipeline"
	"github.com/ferrydev/ferry/pipeline/debugui"
	"github.com/ferrydev/ferry/positions"
	"github.com/ferrydev/ferry/relabel"
	"github.com/ferrydev/ferry/scrape"
	"github.com/ferrydev/ferry/sink/loki"
	"github.com/ferrydev/ferry/sink/remotewrite"
	"github.com/ferrydev/ferry/source/dockerlogs"
	"github.com/ferrydev/ferry/source/gather"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

func main() {
	var (
		logLevel  slog.Level
		filters   []docker.Filter
		logFormat = flag.String("log.format", "logfmt", "log format: logfmt or json")
		dockerURL = flag.String("docker.host", "unix:///var/run/docker.sock", "Docker engine address")
		lokiURL   = flag.String("loki.url", "http://loki:3100/loki/api/v1/push", "Loki push URL")
		promAddr  = flag.String("prometheus.addr", "prometheus:9090", "address of the Prometheus server to scrape")
		writeURL  = flag.String("remote-write.url", "http://prometheus:9090/api/v1/write", "remote-write URL")
		interval  = flag.Duration("scrape.interval", time.Minute, "scrape interval")
		httpAddr  = flag.String("server.http.listen-addr", "127.0.0.1:12345", "address of the debug page and /metrics")
		dataDir   = flag.String("storage.path", "data-ferry", "directory of the positions file")
	)
	flag.TextVar(&logLevel, "log.level", slog.LevelInfo, "log level: debug, info, warn, error")
	flag.Func("docker.filter", "container list filter name=value, e.g. label=env=prod (repeatable)", func(s string) error {
		name, value, ok := strings.Cut(s, "=")
		if !ok {
			return errors.New("want name=value")
		}
		filters = append(filters, docker.Filter{Name: name, Values: []string{value}})
		return nil
	})
	flag.Parse()

	// logging
	opts := &slog.HandlerOptions{Level: logLevel}
	logger := slog.New(slog.NewTextHandler(os.Stderr, opts))
	if *logFormat == "json" {
		logger = slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	fail := func(err error) { logger.Error("alloy-migration", "err", err); os.Exit(1) }
	if err := os.MkdirAll(*dataDir, 0o755); err != nil {
		fail(err)
	}
	pos, err := positions.Open(filepath.Join(*dataDir, "positions.json"), positions.Options{})
	if err != nil {
		fail(err)
	}
	reg := prometheus.NewRegistry()
	b := pipeline.New(pipeline.WithLogger(logger))

	// discovery.docker "containers" and discovery.relabel "containers";
	// unlike Alloy, also read containers that exited before they were seen.
	containers := pipeline.Discover(b, "discovery.docker.containers", &docker.Discoverer{
		Host: *dockerURL, RefreshInterval: 5 * time.Second, Filters: filters, IncludeStopped: true,
	})
	containers = pipeline.RelabelTargets(b, "discovery.relabel.containers", []relabel.Rule{
		relabel.Replace([]string{docker.LabelContainerName}, "/(.*)", "container", "$1"),
		relabel.Replace([]string{docker.LabelContainerLabelPrefix + "com_docker_compose_service"}, "(.*)", "service", "$1"),
	}, containers)

	// loki.source.docker "containers" -> loki.write "default"
	logs := pipeline.FromTargets(b, "loki.source.docker.containers", &dockerlogs.Source{
		Host: *dockerURL, PositionsFile: pos,
	}, containers)
	pipeline.To(b, "loki.write.default", &loki.Sink{URL: *lokiURL}, logs)

	// prometheus.scrape "alloy" (without HTTP) and "prometheus" -> prometheus.remote_write "default"
	self := pipeline.FromSource(b, "prometheus.scrape.alloy", &gather.Source{
		Gatherer: reg, Interval: *interval, Job: "prometheus.scrape.alloy",
	})
	scraper := &scrape.Scraper{Job: "prometheus.scrape.prometheus", Interval: *interval}
	promTargets := pipeline.Discover(b, "prometheus.targets", discovery.Addresses([]string{*promAddr}))
	metrics := pipeline.FromTargets(b, "prometheus.scrape.prometheus", scraper, promTargets)
	pipeline.To(b, "prometheus.remote_write.default", &remotewrite.Sink{
		URL: *writeURL, Metadata: scraper.Metadata,
	}, self, metrics)

	p, err := b.Build()
	if err != nil {
		fail(err)
	}
	reg.MustRegister(p, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Alloy's UI: the pipeline's debug page, and /metrics, until ctx ends.
	go func() {
		if err := debugui.ListenAndServe(ctx, *httpAddr, p, reg); err != nil {
			fail(fmt.Errorf("debug page: %w", err))
		}
	}()
	logger.Info("running", "debug_page", "http://"+*httpAddr+"/")
	err = p.Run(ctx)
	if err != nil {
		fail(err)
	}
}
