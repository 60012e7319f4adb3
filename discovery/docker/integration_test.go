package docker_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/discovery/docker"
	"github.com/ferrydev/ferry/internal/dockertest"
	"github.com/ferrydev/ferry/internal/poll"
	"github.com/ferrydev/ferry/internal/reptest"
)

func TestMain(m *testing.M) { dockertest.Main(m) }

// waitFor receives target sets until cond holds for one, and returns it.
func waitFor(t *testing.T, up <-chan []labels.Labels, what string, cond func([]labels.Labels) bool) []labels.Labels {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case ts := <-up:
			if cond(ts) {
				return ts
			}
		case <-timeout:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func byID(ts []labels.Labels, id string) []labels.Labels {
	var out []labels.Labels
	for _, t := range ts {
		if t.Get(docker.LabelContainerID) == id {
			out = append(out, t)
		}
	}
	return out
}

func TestEngineDiscovery(t *testing.T) {
	c := dockertest.Client(t)
	run := fmt.Sprintf("disc-%d", os.Getpid())
	name := "ferry-test-" + run
	id := dockertest.Run(t, c, dockertest.Spec{
		Name: name, Lines: 1, Loop: true, Sleep: time.Second,
		Labels: map[string]string{"ferry.test": run, "com.docker.compose.service": "web"},
	})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	up := make(chan []labels.Labels)
	d := &docker.Discoverer{
		Filters:         []docker.Filter{{Name: "label", Values: []string{"ferry.test=" + run}}},
		RefreshInterval: time.Hour, // only events may drive the changes below
	}
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, up) }()

	ts := waitFor(t, up, "the running container", func(ts []labels.Labels) bool { return len(byID(ts, id)) == 1 })
	tg := byID(ts, id)[0]
	ins, err := c.ContainerInspect(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	ip := ins.NetworkSettings.Networks["bridge"].IPAddress
	for k, want := range map[string]string{
		docker.LabelContainerName:                                       "/" + name,
		docker.LabelContainerNetworkMode:                                string(ins.HostConfig.NetworkMode),
		docker.LabelContainerImage:                                      dockertest.Image(t, c),
		docker.LabelContainerImageID:                                    ins.Image,
		docker.LabelContainerLabelPrefix + "com_docker_compose_service": "web",
		docker.LabelContainerLabelPrefix + "ferry_test":                 run,
		docker.LabelNetworkName:                                         "bridge",
		docker.LabelNetworkIP:                                           ip,
		"__address__":                                                   ip + ":80",
		docker.LabelNetworkScope:                                        "local",
	} {
		if got := tg.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}

	// Rename: shows at once through the events stream.
	start := time.Now()
	if err := c.ContainerRename(ctx, id, name+"-renamed"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, up, "the rename", func(ts []labels.Labels) bool {
		r := byID(ts, id)
		return len(r) == 1 && r[0].Get(docker.LabelContainerName) == "/"+name+"-renamed"
	})
	t.Logf("rename visible after %v", time.Since(start))

	// Stop: the target vanishes.
	zero := 0
	start = time.Now()
	if err := c.ContainerStop(ctx, id, container.StopOptions{Timeout: &zero}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, up, "the stop", func(ts []labels.Labels) bool { return len(byID(ts, id)) == 0 })
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("stop took %v to show", d)
	}

	// A second discoverer with IncludeStopped sees the stopped container.
	up2 := make(chan []labels.Labels)
	d2 := &docker.Discoverer{Filters: d.Filters, IncludeStopped: true}
	go d2.Run(ctx, up2)
	waitFor(t, up2, "the stopped container", func(ts []labels.Labels) bool { return len(byID(ts, id)) == 1 })

	// Start again, then remove: back, then gone.
	if err := c.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, up, "the restart", func(ts []labels.Labels) bool { return len(byID(ts, id)) == 1 })
	dockertest.Remove(c, id)
	waitFor(t, up2, "the removal", func(ts []labels.Labels) bool { return len(byID(ts, id)) == 0 })

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

func TestUnreachableEngineKeepsRunning(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	d := &docker.Discoverer{Host: "unix:///nonexistent/docker.sock"}
	if err := d.Run(ctx, make(chan []labels.Labels)); err != nil {
		t.Fatalf("Run = %v, want nil after ctx ends", err)
	}
}

// TestEngineConnectionLoss cuts the discoverer off the engine, as a daemon
// restart does: it reports Failing, keeps running, and after reconnecting
// shows what changed meanwhile.
func TestEngineConnectionLoss(t *testing.T) {
	c := dockertest.Client(t)
	p := dockertest.NewProxy(t)
	run := fmt.Sprintf("loss-%d", os.Getpid())
	lbls := map[string]string{"ferry.test": run}
	id1 := dockertest.Run(t, c, dockertest.Spec{Lines: 1, Loop: true, Sleep: time.Second, Labels: lbls})
	rep := &reptest.Reporter{}
	ctx, cancel := context.WithCancel(ferry.WithReporter(context.Background(), rep))
	defer cancel()
	up := make(chan []labels.Labels)
	d := &docker.Discoverer{Host: p.Host(), RefreshInterval: time.Hour,
		Filters: []docker.Filter{{Name: "label", Values: []string{"ferry.test=" + run}}}}
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, up) }()
	waitFor(t, up, "the first container", func(ts []labels.Labels) bool { return len(byID(ts, id1)) == 1 })

	p.Break()
	id2 := dockertest.Run(t, c, dockertest.Spec{Lines: 1, Loop: true, Sleep: time.Second, Labels: lbls})
	poll.Until(t, func() bool { h, _ := rep.Health(); return h == ferry.Failing }, "the health to be failing while cut off")
	if err := p.Restore(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, up, "the container started meanwhile", func(ts []labels.Labels) bool { return len(byID(ts, id2)) == 1 })
	if h, _ := rep.Health(); h != ferry.Healthy {
		t.Errorf("health %v after reconnecting", h)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
