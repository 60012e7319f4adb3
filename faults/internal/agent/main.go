// Command agent is the small agent the crash tests of package faults build,
// start and kill: Docker container logs and tailed files shipped to a Loki
// push endpoint, with positions in one file. It prints "ready" on standard
// error once the pipeline is built, and exits 0 after a clean drain on
// SIGTERM or SIGINT.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/discovery/docker"
	"github.com/ferrydev/ferry/discovery/file"
	"github.com/ferrydev/ferry/pipeline"
	"github.com/ferrydev/ferry/positions"
	"github.com/ferrydev/ferry/relabel"
	"github.com/ferrydev/ferry/sink/loki"
	"github.com/ferrydev/ferry/source/dockerlogs"
	"github.com/ferrydev/ferry/source/filetail"
	"github.com/prometheus/prometheus/model/labels"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "agent:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	var (
		dockerLabel  = flag.String("docker.label", "", "follow the containers that carry this label (key=value); empty: no Docker")
		dockerHost   = flag.String("docker.host", "", "Docker engine address")
		files        = flag.String("files", "", "glob of files to tail")
		posPath      = flag.String("positions", "", "positions file")
		resetCorrupt = flag.Bool("positions.reset-corrupt", false, "start empty, logging it, when the positions file is corrupt")
		lokiURL      = flag.String("loki.url", "", "Loki push URL")
		save         = flag.Duration("save", 200*time.Millisecond, "positions save interval")
		lokiBuffer   = flag.Int("loki.buffer", 0, "bytes the Loki sink buffers (0: its default)")
	)
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	pf, err := positions.Open(*posPath, positions.Options{})
	if errors.Is(err, positions.ErrCorrupt) && *resetCorrupt {
		logger.Warn("positions file was reset", "err", err)
		pf, err = positions.Open(*posPath, positions.Options{ResetCorrupt: true})
	}
	if err != nil {
		return err
	}

	b := pipeline.New(pipeline.WithLogger(logger), pipeline.WithDrainTimeout(5*time.Second))
	var logs []pipeline.Stream[ferry.Entry]
	if *dockerLabel != "" {
		d := pipeline.Discover(b, "discovery.docker", &docker.Discoverer{
			Host: *dockerHost, RefreshInterval: time.Second, IncludeStopped: true,
			Filters: []docker.Filter{{Name: "label", Values: []string{*dockerLabel}}},
		})
		t := pipeline.RelabelTargets(b, "discovery.relabel", []relabel.Rule{
			relabel.Replace([]string{docker.LabelContainerName}, "/(.*)", "container", "$1"),
		}, d)
		logs = append(logs, pipeline.FromTargets(b, "loki.source.docker",
			&dockerlogs.Source{Host: *dockerHost, PositionsFile: pf, SaveInterval: *save}, t))
	}
	if *files != "" {
		var pats []file.Pattern
		for _, g := range strings.Split(*files, ",") {
			pats = append(pats, file.Pattern{Path: g, Labels: labels.FromStrings("job", "files")})
		}
		m := pipeline.Discover(b, "local.file_match", &file.Discoverer{Patterns: pats, RefreshInterval: 200 * time.Millisecond})
		logs = append(logs, pipeline.FromTargets(b, "loki.source.file", &filetail.Source{
			PositionsFile: pf, SaveInterval: *save, StartAt: filetail.StartBeginning,
			PollInterval: 100 * time.Millisecond, RotateWait: time.Second,
		}, m))
	}
	pipeline.To(b, "loki.write", &loki.Sink{URL: *lokiURL, BatchWait: 100 * time.Millisecond, MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second, MaxRetries: -1, MaxBufferedBytes: *lokiBuffer}, logs...)
	p, err := b.Build()
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "ready")
	if err := p.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
