package docker_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	promclient "github.com/prometheus/client_golang/prometheus"
	promdisc "github.com/prometheus/prometheus/discovery"
	"github.com/prometheus/prometheus/discovery/moby"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/ferrydev/ferry/discovery/docker"
	"github.com/ferrydev/ferry/internal/dockertest"
	"github.com/ferrydev/ferry/internal/poll"
)

// TestEngineMatchesPrometheus runs Prometheus's own docker service
// discovery and ours against the same real containers (ports exposed and
// published, UDP only, host networking, a shared network namespace, two
// networks, odd label names) and requires identical targets.
func TestEngineMatchesPrometheus(t *testing.T) {
	c := dockertest.Client(t)
	ctx := context.Background()
	run := fmt.Sprintf("prom-%d", os.Getpid())
	lbls := map[string]string{"ferry.test": run, "com.docker.compose.service": "web", "odd-label/name.x": "v"}

	netName := "ferry-test-" + run
	nw, err := c.NetworkCreate(ctx, netName, network.CreateOptions{Labels: map[string]string{"com.example.net": "yes"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.NetworkRemove(context.Background(), nw.ID) })

	spec := func(s dockertest.Spec) dockertest.Spec {
		s.Lines, s.Loop, s.Sleep, s.Labels = 1, true, time.Second, lbls
		return s
	}
	base := dockertest.Run(t, c, spec(dockertest.Spec{Ports: []string{"8080/tcp", "9090/tcp", "53/udp"}, Publish: true}))
	dockertest.Run(t, c, spec(dockertest.Spec{Ports: []string{"53/udp"}}))
	dockertest.Run(t, c, spec(dockertest.Spec{NetworkMode: "host"}))
	dockertest.Run(t, c, spec(dockertest.Spec{NetworkMode: "container:" + base}))
	two := dockertest.Run(t, c, spec(dockertest.Spec{Ports: []string{"7070/tcp"}, NoStart: true}))
	if err := c.NetworkConnect(ctx, nw.ID, two, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.ContainerStart(ctx, two, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}

	for _, matchFirst := range []bool{true, false} {
		t.Run(fmt.Sprintf("match_first_network=%v", matchFirst), func(t *testing.T) {
			filter := []docker.Filter{{Name: "label", Values: []string{"ferry.test=" + run}}}
			var got, want []labels.Labels
			// Both list the containers at nearly the same time; list again
			// in the unlikely case that something changed in between.
			same := poll.Wait(poll.Timeout, func() bool {
				want = prometheusTargets(t, matchFirst, filter)
				got = ours(t, c, matchFirst, filter)
				return slices.EqualFunc(got, want, labels.Equal)
			})
			if !same {
				t.Fatalf("targets differ from Prometheus's:\nours:\n%v\nprometheus:\n%v", got, want)
			}
			if len(want) < 6 {
				t.Errorf("only %d targets: %v", len(want), want)
			}
			t.Logf("%d targets identical to Prometheus's", len(want))
		})
	}
}

func ours(t *testing.T, c client.APIClient, matchFirst bool, filter []docker.Filter) []labels.Labels {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	up := make(chan []labels.Labels)
	d := &docker.Discoverer{Client: c, MatchAllNetworks: !matchFirst, Filters: filter}
	go d.Run(ctx, up)
	select {
	case ts := <-up:
		return ts
	case <-ctx.Done():
		t.Fatal("no targets")
	}
	return nil
}

func prometheusTargets(t *testing.T, matchFirst bool, filter []docker.Filter) []labels.Labels {
	t.Helper()
	cfg := moby.DefaultDockerSDConfig
	cfg.Host = "unix:///var/run/docker.sock"
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		cfg.Host = h
	}
	cfg.MatchFirstNetwork = matchFirst
	for _, f := range filter {
		cfg.Filters = append(cfg.Filters, moby.Filter{Name: f.Name, Values: f.Values})
	}
	reg := promclient.NewRegistry()
	metrics := cfg.NewDiscovererMetrics(reg, promdisc.NewRefreshMetrics(reg))
	d, err := moby.NewDockerDiscovery(&cfg, promdisc.DiscovererOptions{Logger: slog.New(slog.DiscardHandler), Metrics: metrics})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ch := make(chan []*targetgroup.Group, 1)
	go d.Run(ctx, ch)
	var groups []*targetgroup.Group
	select {
	case groups = <-ch:
	case <-ctx.Done():
		t.Fatal("Prometheus discovery sent nothing")
	}
	var out []labels.Labels
	for _, g := range groups {
		for _, tg := range g.Targets {
			b := labels.NewBuilder(labels.EmptyLabels())
			for k, v := range tg {
				b.Set(string(k), string(v)) // empty values are no labels, as in Prometheus's targets
			}
			for k, v := range g.Labels {
				b.Set(string(k), string(v))
			}
			out = append(out, b.Labels())
		}
	}
	slices.SortFunc(out, labels.Compare)
	return out
}
