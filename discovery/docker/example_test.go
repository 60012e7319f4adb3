package docker_test

import (
	"context"
	"fmt"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/ferrydev/ferry/discovery/docker"
)

// engine is an in-process stand-in for a Docker engine with one running
// container: the calls a Discoverer makes, answered from memory, so that
// the example runs the same everywhere. TestEngineDiscovery does the same
// against the real engine.
type engine struct {
	client.APIClient // calls not listed here panic
}

func (engine) ContainerList(context.Context, container.ListOptions) ([]container.Summary, error) {
	return []container.Summary{{
		ID:     "4f2a9c",
		Names:  []string{"/web-1"},
		Image:  "nginx:1.27",
		State:  container.StateRunning,
		Labels: map[string]string{"com.docker.compose.service": "web"},
		Ports:  []container.Port{{PrivatePort: 80, Type: "tcp"}},
		NetworkSettings: &container.NetworkSettingsSummary{Networks: map[string]*network.EndpointSettings{
			"bridge": {NetworkID: "n1", IPAddress: "172.17.0.2"},
		}},
	}}, nil
}

func (engine) NetworkList(context.Context, network.ListOptions) ([]network.Summary, error) {
	return []network.Summary{{ID: "n1", Name: "bridge", Scope: "local"}}, nil
}

func (engine) Events(ctx context.Context, _ events.ListOptions) (<-chan events.Message, <-chan error) {
	return make(chan events.Message), make(chan error)
}

// A Discoverer lists the running containers of an engine, one target per
// port and network, labelled as Prometheus's docker_sd labels them. With a
// nil Client it connects to the local engine; here it asks a stand-in.
func Example() {
	d := &docker.Discoverer{Client: engine{}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	up := make(chan []labels.Labels)
	go d.Run(ctx, up)
	for _, t := range <-up {
		fmt.Println(t.Get("__address__"), t.Get(docker.LabelContainerName),
			t.Get("__meta_docker_container_label_com_docker_compose_service"))
	}
	// Output: 172.17.0.2:80 /web-1 web
}
