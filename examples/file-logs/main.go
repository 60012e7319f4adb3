// Command file-logs tails log files matched by a glob, parses logfmt lines,
// promotes their level to a label, and prints them, or pushes them to Loki
// with -loki.url: Alloy's local.file_match, loki.source.file and
// loki.process in Go.
//
//	go run ./examples/file-logs -files '/var/log/**/*.log'
//	go run ./examples/file-logs -files '/var/log/app/*.log' -positions /tmp/ferry-positions.json \
//		-loki.url http://localhost:3100/loki/api/v1/push
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/discovery/file"
	"github.com/ferrydev/ferry/pipeline"
	"github.com/ferrydev/ferry/positions"
	"github.com/ferrydev/ferry/process/stage"
	"github.com/ferrydev/ferry/sink"
	"github.com/ferrydev/ferry/sink/loki"
	"github.com/ferrydev/ferry/source/filetail"
	"github.com/prometheus/prometheus/model/labels"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "file-logs:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("file-logs", flag.ContinueOnError)
	glob := fs.String("files", "", "glob of the files to tail; ** matches any number of directories")
	fromStart := fs.Bool("from-start", true, "read files from their beginning (else only new lines)")
	lokiURL := fs.String("loki.url", "", "Loki push URL (empty: print to the console)")
	posPath := fs.String("positions", "", "positions file (empty: positions in memory)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *glob == "" {
		return errors.New("-files is required")
	}
	var pf *positions.File
	if *posPath != "" {
		var err error
		if pf, err = positions.Open(*posPath, positions.Options{}); err != nil {
			return err
		}
	}
	start := filetail.StartEnd
	if *fromStart {
		start = filetail.StartBeginning
	}
	stages, err := stage.New(
		&stage.Logfmt{Mapping: map[string]string{"level": ""}},
		&stage.Labels{Values: map[string]string{"level": ""}},
	)
	if err != nil {
		return err
	}

	b := pipeline.New()
	files := pipeline.Discover(b, "files", &file.Discoverer{Patterns: []file.Pattern{
		{Path: *glob, Labels: labels.FromStrings("job", "files")},
	}})
	logs := pipeline.FromTargets(b, "tail", &filetail.Source{PositionsFile: pf, StartAt: start}, files)
	logs = pipeline.Process(b, "parse", stages, logs)
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
