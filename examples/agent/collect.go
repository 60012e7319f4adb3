package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/discovery"
	"github.com/ferrydev/ferry/discovery/docker"
	"github.com/ferrydev/ferry/discovery/file"
	"github.com/ferrydev/ferry/pipeline"
	"github.com/ferrydev/ferry/positions"
	"github.com/ferrydev/ferry/relabel"
	"github.com/ferrydev/ferry/scrape"
	"github.com/ferrydev/ferry/sink"
	"github.com/ferrydev/ferry/sink/loki"
	"github.com/ferrydev/ferry/sink/remotewrite"
	"github.com/ferrydev/ferry/source/dockerlogs"
	"github.com/ferrydev/ferry/source/filetail"
	"github.com/ferrydev/ferry/source/gather"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
)

// collectFlags are the flags that add collection and delivery to the
// agent: each turns on one part of what Promtail or Alloy do.
type collectFlags struct {
	docker         bool
	dockerHost     string
	dockerRefresh  time.Duration
	dockerLabel    string
	files          string
	positions      string
	lokiURL        string
	lokiTenant     string
	scrapeTargets  string
	scrapeInterval time.Duration
	selfScrape     bool
	remoteWriteURL string
}

func (c *collectFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&c.docker, "docker", false, "discover Docker containers and follow their logs")
	fs.StringVar(&c.dockerHost, "docker.host", "", "Docker daemon address (default: DOCKER_HOST, else the local socket)")
	fs.StringVar(&c.dockerLabel, "docker.label", "", "follow only the containers with this label (key or key=value; empty: all)")
	fs.DurationVar(&c.dockerRefresh, "docker.refresh", 5*time.Second, "full refresh of the container list, on top of the events stream")
	fs.StringVar(&c.files, "files", "", "comma-separated globs of log files to tail, e.g. /var/log/**/*.log")
	fs.StringVar(&c.positions, "positions", "", "positions file for Docker and file logs (empty: positions in memory only)")
	fs.StringVar(&c.lokiURL, "loki.url", "", "Loki push URL, e.g. http://loki:3100/loki/api/v1/push (empty: logs to the console)")
	fs.StringVar(&c.lokiTenant, "loki.tenant", "", "X-Scope-OrgID sent to Loki")
	fs.StringVar(&c.scrapeTargets, "scrape", "", "comma-separated host:port targets to scrape for Prometheus metrics")
	fs.DurationVar(&c.scrapeInterval, "scrape.interval", 15*time.Second, "scrape interval")
	fs.BoolVar(&c.selfScrape, "self-scrape", true, "scrape the agent's own /metrics into the metrics stream: over HTTP from the debug server, in process when that is off (every -scrape.interval; every second in a demo that ends)")
	fs.StringVar(&c.remoteWriteURL, "remote-write.url", "", "Prometheus remote-write URL, e.g. http://prometheus:9090/api/v1/write (empty: samples to the console)")
}

// logSources reports whether flags ask for log sources of their own
// (instead of stdin or the demo).
func (c *collectFlags) logSources() bool { return c.docker || c.files != "" }

// containerRules are the relabel rules of the Alloy migration config.
func containerRules() []relabel.Rule {
	return []relabel.Rule{
		relabel.Replace([]string{docker.LabelContainerName}, "/(.*)", "container", "$1"),
		relabel.Replace([]string{docker.LabelContainerLabelPrefix + "com_docker_compose_service"}, "(.+)", "service", "$1"),
	}
}

// addLogs adds the Docker and file log sources the flags ask for.
func (c *collectFlags) addLogs(b *pipeline.Builder, pf *positions.File) []pipeline.Stream[ferry.Entry] {
	var logs []pipeline.Stream[ferry.Entry]
	if c.docker {
		d := &docker.Discoverer{Host: c.dockerHost, RefreshInterval: c.dockerRefresh, IncludeStopped: true}
		if c.dockerLabel != "" {
			d.Filters = []docker.Filter{{Name: "label", Values: []string{c.dockerLabel}}}
		}
		containers := pipeline.Discover(b, "discovery.docker", d)
		targets := pipeline.RelabelTargets(b, "discovery.relabel", containerRules(), containers)
		logs = append(logs, pipeline.FromTargets(b, "loki.source.docker", &dockerlogs.Source{Host: c.dockerHost, PositionsFile: pf}, targets))
	}
	if c.files != "" {
		var patterns []file.Pattern
		for _, g := range strings.Split(c.files, ",") {
			if g = strings.TrimSpace(g); g != "" {
				patterns = append(patterns, file.Pattern{Path: g, Labels: labels.FromStrings(relabel.JobLabel, "files")})
			}
		}
		matches := pipeline.Discover(b, "local.file_match", &file.Discoverer{Patterns: patterns})
		logs = append(logs, pipeline.FromTargets(b, "loki.source.file", &filetail.Source{PositionsFile: pf}, matches))
	}
	return logs
}

// logSink returns where logs go: Loki, or the console.
func (c *collectFlags) logSink(console sink.Sink[ferry.Entry]) (string, sink.Sink[ferry.Entry]) {
	if c.lokiURL == "" {
		return "console", console
	}
	return "loki.write", &loki.Sink{URL: c.lokiURL, TenantID: c.lokiTenant}
}

// addMetrics adds scraping and self-scraping, and their delivery to remote
// write or the console. Self-scraping scrapes selfAddr, the debug server,
// over HTTP, or reads reg in process when selfAddr is empty, every
// selfInterval. The channel returned is closed once the metrics sink has
// taken its first batch; it is nil when there are no metrics.
func (c *collectFlags) addMetrics(b *pipeline.Builder, reg prometheus.Gatherer, selfAddr string, selfInterval time.Duration,
	console sink.Sink[ferry.Sample], logger *slog.Logger) (<-chan struct{}, error) {
	var samples []pipeline.Stream[ferry.Sample]
	sc := &scrape.Scraper{Interval: c.scrapeInterval}
	if c.scrapeTargets != "" {
		var addrs []string
		for _, a := range strings.Split(c.scrapeTargets, ",") {
			if a = strings.TrimSpace(a); a != "" {
				addrs = append(addrs, a)
			}
		}
		if len(addrs) == 0 {
			return nil, fmt.Errorf("-scrape: no targets in %q", c.scrapeTargets)
		}
		targets := pipeline.Discover(b, "discovery.static", discovery.Addresses(addrs, relabel.JobLabel, "scrape"))
		samples = append(samples, pipeline.FromTargets(b, "prometheus.scrape", sc, targets))
	}
	switch {
	case !c.selfScrape:
	case selfAddr != "":
		logger.Info("self-scrape over HTTP", "url", "http://"+selfAddr+"/metrics", "interval", selfInterval)
		self := pipeline.Discover(b, "discovery.self", discovery.Addresses([]string{selfAddr}, relabel.JobLabel, "ferry"))
		// Uncompressed: over loopback gzip saves nothing, and would cost
		// the serving side a compressor of some 800 KB at every scrape.
		samples = append(samples, pipeline.FromTargets(b, "prometheus.scrape.self", &scrape.Scraper{Interval: selfInterval, DisableCompression: true}, self))
	default:
		logger.Info("self-scrape in process: the debug server is off", "interval", selfInterval)
		samples = append(samples, pipeline.FromSource(b, "prometheus.exporter.self", &gather.Source{Gatherer: reg, Interval: selfInterval, Job: "ferry"}))
	}
	if len(samples) == 0 {
		return nil, nil
	}
	out := &firstBatch[ferry.Sample]{Sink: console, taken: make(chan struct{})}
	name := "console.metrics"
	if c.remoteWriteURL != "" {
		out.Sink, name = &remotewrite.Sink{URL: c.remoteWriteURL, Metadata: sc.Metadata}, "prometheus.remote_write"
	}
	pipeline.To(b, name, out, samples...)
	return out.taken, nil
}

// firstBatch is a sink that closes taken once Sink has taken a batch:
// the console has printed it, or remote write has queued it.
type firstBatch[T any] struct {
	sink.Sink[T]
	taken chan struct{}
	once  sync.Once
}

func (f *firstBatch[T]) Send(ctx context.Context, b ferry.Batch[T]) error {
	err := f.Sink.Send(ctx, b)
	if err == nil {
		f.once.Do(func() { close(f.taken) })
	}
	return err
}
