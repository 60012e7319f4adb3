package dockerlogs_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/discovery/docker"
	"github.com/ferrydev/ferry/internal/dockertest"
	"github.com/ferrydev/ferry/pipeline"
	"github.com/ferrydev/ferry/positions"
	"github.com/ferrydev/ferry/relabel"
	"github.com/ferrydev/ferry/sink/sinktest"
	"github.com/ferrydev/ferry/source/dockerlogs"
)

// TestEnginePipeline runs the migration scenario in a pipeline twice over
// one positions file: discover, relabel the targets, follow the logs, into a
// fake sink. The second run, after more lines were logged, delivers only the
// new ones.
func TestEnginePipeline(t *testing.T) {
	c := dockertest.Client(t)
	run := fmt.Sprintf("pipe-%d", os.Getpid())
	s := dockertest.Spec{Lines: 500, Stderr: true, Labels: map[string]string{"ferry.test": run, "com.docker.compose.service": "api"}}
	id := dockertest.Run(t, c, s)
	dockertest.WaitExit(t, c, id)
	path := filepath.Join(t.TempDir(), "positions.json")

	runPipeline := func(want int) []ferry.Entry {
		t.Helper()
		pf, err := positions.Open(path, positions.Options{})
		if err != nil {
			t.Fatal(err)
		}
		fake := &sinktest.Sink[ferry.Entry]{}
		b := pipeline.New(pipeline.WithDrainTimeout(5 * time.Second))
		targets := pipeline.Discover(b, "containers", &docker.Discoverer{
			Client: c, IncludeStopped: true,
			Filters: []docker.Filter{{Name: "label", Values: []string{"ferry.test=" + run}}},
		})
		targets = pipeline.RelabelTargets(b, "relabel", []relabel.Rule{
			relabel.Replace([]string{"__meta_docker_container_name"}, "/(.*)", "container", "$1"),
			relabel.Replace([]string{"__meta_docker_container_label_com_docker_compose_service"}, "(.*)", "service", "$1"),
		}, targets)
		logs := pipeline.FromTargets(b, "logs", &dockerlogs.Source{
			Client:        c,
			PositionsFile: pf,
			Rules:         []relabel.Rule{relabel.Replace([]string{dockerlogs.LabelLogStream}, "(.*)", "stream", "$1")},
		}, targets)
		pipeline.To(b, "sink", fake, logs)
		p, err := b.Build()
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- p.Run(ctx) }()
		if !fake.WaitLen(want, time.Minute) {
			t.Fatalf("sink has %d entries, want %d", fake.Len(), want)
		}
		time.Sleep(300 * time.Millisecond) // nothing more may come
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run: %v", err)
		}
		return fake.Items()
	}

	first := runPipeline(500)
	expect(t, first, s, map[int]int{1: 500})
	if e := first[0]; e.Labels.Get("service") != "api" || e.Labels.Get("container") == "" {
		t.Errorf("labels %v", e.Labels)
	}
	// Positions were saved by the pipeline's Close.
	pf, _ := positions.Open(path, positions.Options{})
	if _, ok := pf.Get(dockerlogs.PositionPrefix + id); !ok {
		t.Fatalf("no position saved: %v", pf.Keys())
	}

	// Start the container again: 500 new lines (run 2); the old ones must
	// not come again.
	if err := c.ContainerStart(context.Background(), id, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	dockertest.WaitExit(t, c, id)
	second := runPipeline(500)
	expect(t, second, s, map[int]int{2: 500})
}
