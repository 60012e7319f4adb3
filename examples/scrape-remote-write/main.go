// Command scrape-remote-write scrapes Prometheus targets and its own
// metrics and prints the samples, or remote-writes them with
// -remote-write.url: Alloy's prometheus.scrape and prometheus.remote_write
// in Go. With no -targets it scrapes only itself, without HTTP.
//
//	go run ./examples/scrape-remote-write -targets localhost:9100
//	go run ./examples/scrape-remote-write -targets localhost:9100 -remote-write.url http://localhost:9090/api/v1/write
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/discovery"
	"github.com/ferrydev/ferry/pipeline"
	"github.com/ferrydev/ferry/scrape"
	"github.com/ferrydev/ferry/sink"
	"github.com/ferrydev/ferry/sink/remotewrite"
	"github.com/ferrydev/ferry/source/gather"
	"github.com/prometheus/client_golang/prometheus"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "scrape-remote-write:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("scrape-remote-write", flag.ContinueOnError)
	targets := fs.String("targets", "", "comma-separated host:port targets")
	interval := fs.Duration("interval", 15*time.Second, "scrape interval")
	rwURL := fs.String("remote-write.url", "", "remote-write URL (empty: print to the console)")
	if err := fs.Parse(args); err != nil {
		return err
	}

	b := pipeline.New()
	reg := prometheus.NewRegistry()
	sc := &scrape.Scraper{Job: "scrape", Interval: *interval}
	samples := []pipeline.Stream[ferry.Sample]{
		pipeline.FromSource(b, "self", &gather.Source{Gatherer: reg, Interval: *interval, Job: "ferry"}),
	}
	if *targets != "" {
		static := pipeline.Discover(b, "targets", discovery.Addresses(strings.Split(*targets, ","), "env", "example"))
		samples = append(samples, pipeline.FromTargets(b, "scrape", sc, static))
	}
	var out sink.Sink[ferry.Sample] = &sink.Console[ferry.Sample]{W: stdout}
	if *rwURL != "" {
		out = &remotewrite.Sink{URL: *rwURL, Metadata: sc.Metadata}
	}
	pipeline.To(b, "out", out, samples...)

	p, err := b.Build()
	if err != nil {
		return err
	}
	reg.MustRegister(p)
	return p.Run(ctx)
}
