package filetail_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/discovery/file"
	"github.com/ferrydev/ferry/internal/poll"
	"github.com/ferrydev/ferry/pipeline"
	"github.com/ferrydev/ferry/positions"
	"github.com/ferrydev/ferry/process/stage"
	"github.com/ferrydev/ferry/sink/sinktest"
	"github.com/ferrydev/ferry/source/filetail"
	"github.com/prometheus/prometheus/model/labels"
)

// TestPipeline wires file discovery, the tail source and stages into a
// pipeline with a fake sink, runs it twice on one positions file, and
// checks that every line arrives once.
func TestPipeline(t *testing.T) {
	dir := t.TempDir()
	logs := filepath.Join(dir, "logs")
	os.MkdirAll(filepath.Join(logs, "app"), 0o755)
	pf := filepath.Join(dir, "positions.json")
	write := func(name string, from, to int) {
		f, err := os.OpenFile(filepath.Join(logs, name), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		for i := from; i < to; i++ {
			fmt.Fprintf(f, "level=%s n=%d\n", []string{"info", "warn"}[i%2], i)
		}
		f.Close()
	}
	write("app/a.log", 0, 100)

	run := func(expect int, during func()) *sinktest.Sink[ferry.Entry] {
		pos, err := positions.Open(pf, positions.Options{})
		if err != nil {
			t.Fatal(err)
		}
		b := pipeline.New(pipeline.WithDrainTimeout(5 * time.Second))
		targets := pipeline.Discover(b, "files", &file.Discoverer{
			Patterns:        []file.Pattern{{Path: logs + "/**/*.log", Labels: labels.FromStrings("job", "files")}},
			RefreshInterval: 50 * time.Millisecond,
		})
		lines := pipeline.FromTargets(b, "tail", &filetail.Source{
			PositionsFile: pos, StartAt: filetail.StartBeginning, PollInterval: 20 * time.Millisecond,
		}, targets)
		lines = pipeline.Process(b, "stages", stage.MustNew(
			&stage.Logfmt{Mapping: map[string]string{"level": ""}},
			&stage.Labels{Values: map[string]string{"level": ""}},
		), lines)
		out := &sinktest.Sink[ferry.Entry]{}
		pipeline.To(b, "fake", out, lines)
		p, err := b.Build()
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- p.Run(ctx) }()
		if during != nil {
			// The change comes while the pipeline runs and delivers.
			poll.Until(t, func() bool { return out.Len() > 0 }, "a first delivery")
			during()
		}
		poll.Wait(poll.Timeout, func() bool { return out.Len() >= expect })
		time.Sleep(200 * time.Millisecond) // nothing more must come
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if out.Len() != expect {
			t.Fatalf("got %d entries, want %d", out.Len(), expect)
		}
		return out
	}

	out := run(150, func() { write("b.log", 0, 50) }) // a file that appears while running
	items := out.Items()
	var warn int
	for _, e := range items {
		if e.Labels.Get("level") == "warn" {
			warn++
		}
		if e.Labels.Get("job") != "files" || !strings.HasPrefix(e.Labels.Get(filetail.FilenameLabel), logs) {
			t.Fatalf("labels %v", e.Labels)
		}
	}
	if warn != 75 {
		t.Fatalf("%d warn entries", warn)
	}
	// The second run reads only what was written since.
	write("app/a.log", 100, 110)
	run(10, nil)
}
