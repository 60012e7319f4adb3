// Command docker-logs follows the logs of every container on the Docker
// host, labels them with the container name and compose service, and
// prints them, or pushes them to Loki with -loki.url: Alloy's
// discovery.docker, discovery.relabel and loki.source.docker in Go.
//
//	go run ./examples/docker-logs
//	go run ./examples/docker-logs -loki.url http://localhost:3100/loki/api/v1/push -positions /tmp/ferry-positions.json
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/discovery/docker"
	"github.com/ferrydev/ferry/pipeline"
	"github.com/ferrydev/ferry/positions"
	"github.com/ferrydev/ferry/relabel"
	"github.com/ferrydev/ferry/sink"
	"github.com/ferrydev/ferry/sink/loki"
	"github.com/ferrydev/ferry/source/dockerlogs"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "docker-logs:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("docker-logs", flag.ContinueOnError)
	host := fs.String("docker.host", "", "Docker daemon address (default: DOCKER_HOST, else the local socket)")
	lokiURL := fs.String("loki.url", "", "Loki push URL (empty: print to the console)")
	posPath := fs.String("positions", "", "positions file (empty: positions in memory)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var pf *positions.File
	if *posPath != "" {
		var err error
		if pf, err = positions.Open(*posPath, positions.Options{}); err != nil {
			return err
		}
	}

	b := pipeline.New()
	containers := pipeline.Discover(b, "containers", &docker.Discoverer{Host: *host, IncludeStopped: true})
	targets := pipeline.RelabelTargets(b, "relabel", []relabel.Rule{
		relabel.Replace([]string{docker.LabelContainerName}, "/(.*)", "container", "$1"),
		relabel.Copy("__meta_docker_container_label_com_docker_compose_service", "service"),
	}, containers)
	logs := pipeline.FromTargets(b, "logs", &dockerlogs.Source{Host: *host, PositionsFile: pf}, targets)
	var out sink.Sink[ferry.Entry] = &sink.Console[ferry.Entry]{W: stdout}
	if *lokiURL != "" {
		out = &loki.Sink{URL: *lokiURL}
	}
	pipeline.To(b, "out", out, logs)

	p, err := b.Build()
	if err != nil {
		return err
	}
	return p.Run(ctx)
}
