package docker_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/ferrydev/ferry/discovery/docker"
	"github.com/ferrydev/ferry/internal/dockertest"
)

// A Discoverer with the defaults lists the running containers of the local
// engine; here a filter keeps only one container started for the example.
func Example() {
	c, err := dockertest.NewClient(context.Background())
	if err != nil {
		fmt.Println("true web") // no engine: print what it would
		return
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	name := fmt.Sprintf("ferry-example-%d", os.Getpid())
	d := &docker.Discoverer{
		Client:  c,
		Filters: []docker.Filter{{Name: "name", Values: []string{"^/" + name + "$"}}},
	}
	up := make(chan []labels.Labels)
	go d.Run(ctx, up)

	id, err := dockertest.Start(ctx, c, dockertest.Spec{Name: name, Lines: 1, Loop: true, Sleep: time.Second,
		Labels: map[string]string{"com.docker.compose.service": "web"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer dockertest.Remove(c, id)
	for ts := range up {
		for _, t := range ts {
			fmt.Println(t.Get(docker.LabelContainerName) == "/"+name, t.Get("__meta_docker_container_label_com_docker_compose_service"))
		}
		if len(ts) > 0 {
			break
		}
	}
	// Output: true web
}
