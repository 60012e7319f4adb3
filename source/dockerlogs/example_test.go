package dockerlogs_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/docker/docker/client"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/discovery/docker"
	"github.com/ferrydev/ferry/internal/dockertest"
	"github.com/ferrydev/ferry/relabel"
	"github.com/ferrydev/ferry/source/dockerlogs"
)

// A Source follows the containers a Discoverer finds. Rules turn the meta
// labels into the entry labels; everything starting with "__" is removed
// afterwards. Each batch is acknowledged by the receiver (here directly):
// only acknowledged lines advance the container's position.
//
// The example needs a Docker engine, so it has no checked output and does
// not run under go test; TestExample runs it against the engine, and skips
// visibly without one. It prints:
//
//	{container="ferry-logs-example", stream="stderr"} r1 l1 err
//	{container="ferry-logs-example", stream="stdout"} r1 l0 out
//	{container="ferry-logs-example", stream="stdout"} r1 l2 out
func Example() {
	c, err := dockertest.NewClient(context.Background())
	if err != nil {
		fmt.Println("no Docker engine:", err)
		return
	}
	defer c.Close()
	lines, err := followExample(c)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, l := range lines {
		fmt.Println(l)
	}
}

// TestExample runs Example's code against a real engine and checks what
// it prints: an example cannot skip, and one that printed fixed lines
// without an engine passed without running anything.
func TestExample(t *testing.T) {
	c := dockertest.Client(t)
	lines, err := followExample(c)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`{container="ferry-logs-example", stream="stderr"} r1 l1 err`,
		`{container="ferry-logs-example", stream="stdout"} r1 l0 out`,
		`{container="ferry-logs-example", stream="stdout"} r1 l2 out`,
	}
	if !slices.Equal(lines, want) {
		t.Errorf("got %q, want %q", lines, want)
	}
}

// followExample starts a container that logs three lines and follows it
// with a Discoverer and a Source; it returns the lines, sorted.
func followExample(c *client.Client) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	name := fmt.Sprintf("ferry-logs-example-%d", os.Getpid())
	id, err := dockertest.Start(ctx, c, dockertest.Spec{Name: name, Lines: 3, Stderr: true})
	defer dockertest.Remove(c, id)
	if err != nil {
		return nil, err
	}

	disc := &docker.Discoverer{
		Client:         c,
		IncludeStopped: true, // the container may have exited already
		Filters:        []docker.Filter{{Name: "id", Values: []string{id}}},
	}
	src := &dockerlogs.Source{
		Client: c,
		Rules: []relabel.Rule{
			// "/ferry-logs-example-<pid>" becomes "ferry-logs-example".
			relabel.Replace([]string{"__meta_docker_container_name"}, "/(.*)-[0-9]+", "container", "$1"),
			relabel.Replace([]string{"__meta_docker_container_log_stream"}, "(.*)", "stream", "$1"),
		},
	}
	if err := src.Start(ctx, ferry.NopReporter()); err != nil { // a pipeline calls Start itself
		return nil, err
	}
	targets := make(chan []labels.Labels)
	out := make(chan ferry.Batch[ferry.Entry])
	go disc.Run(ctx, targets)
	ran := make(chan error, 1)
	go func() { ran <- src.Run(ctx, targets, out) }()
	defer func() {
		cancel()
		<-ran // Close comes after Run returned
		src.Close(context.Background())
	}()

	var lines []string
	for len(lines) < 3 {
		select {
		case b := <-out:
			for _, e := range b.Items {
				lines = append(lines, e.Labels.String()+" "+e.Line)
			}
			b.Done(nil) // delivered
		case <-ctx.Done():
			return lines, fmt.Errorf("%d of 3 lines: %w", len(lines), ctx.Err())
		}
	}
	sort.Strings(lines)
	return lines, nil
}
