package docker

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/internal/poll"
	"github.com/ferrydev/ferry/internal/reptest"
)

// fakeAPI serves container lists from a mutable slice and events from a
// channel; fail makes every call fail.
type fakeAPI struct {
	client.APIClient
	mu         sync.Mutex
	containers []container.Summary
	fail       error
	events     chan events.Message
	subs       int
}

func (f *fakeAPI) ContainerList(context.Context, container.ListOptions) ([]container.Summary, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return nil, f.fail
	}
	return append([]container.Summary(nil), f.containers...), nil
}

func (f *fakeAPI) NetworkList(context.Context, network.ListOptions) ([]network.Summary, error) {
	return []network.Summary{{ID: "n1", Name: "bridge", Scope: "local"}}, nil
}

func (f *fakeAPI) Events(ctx context.Context, _ events.ListOptions) (<-chan events.Message, <-chan error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.subs++
	errs := make(chan error, 1)
	if f.fail != nil {
		errs <- f.fail
		return nil, errs
	}
	return f.events, errs
}

func (f *fakeAPI) set(cs []container.Summary, fail error) {
	f.mu.Lock()
	f.containers, f.fail = cs, fail
	f.mu.Unlock()
}

func fakeContainer(id, name string) container.Summary {
	c := container.Summary{ID: id, Names: []string{name}, NetworkSettings: &container.NetworkSettingsSummary{
		Networks: map[string]*network.EndpointSettings{"bridge": {NetworkID: "n1", IPAddress: "10.0.0.9"}}}}
	c.HostConfig.NetworkMode = "bridge"
	return c
}

// health returns the last health rep was told.
func health(rep *reptest.Reporter) ferry.Health {
	h, _ := rep.Health()
	return h
}

func names(ts []labels.Labels) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.Get(LabelContainerName))
	}
	return out
}

func recv(t *testing.T, up <-chan []labels.Labels) []string {
	t.Helper()
	select {
	case ts := <-up:
		return names(ts)
	case <-time.After(5 * time.Second):
		t.Fatal("no target set")
	}
	return nil
}

func TestRunEventsAndReconnect(t *testing.T) {
	f := &fakeAPI{events: make(chan events.Message)}
	f.set([]container.Summary{fakeContainer("a", "/a")}, nil)
	rep := &reptest.Reporter{}
	ctx, cancel := context.WithCancel(ferry.WithReporter(context.Background(), rep))
	defer cancel()
	up := make(chan []labels.Labels)
	done := make(chan error, 1)
	// A refresh interval of an hour: only events can cause the updates.
	d := &Discoverer{Client: f, RefreshInterval: time.Hour}
	go func() { done <- d.Run(ctx, up) }()

	if got := recv(t, up); len(got) != 1 || got[0] != "/a" {
		t.Fatalf("first set %v", got)
	}
	f.set([]container.Summary{fakeContainer("a", "/a"), fakeContainer("b", "/b")}, nil)
	start := time.Now()
	f.events <- events.Message{Type: events.ContainerEventType, Action: events.ActionStart, Actor: events.Actor{ID: "b"}}
	if got := recv(t, up); len(got) != 2 {
		t.Fatalf("after start event %v", got)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("event took %v to show", d)
	}
	// Irrelevant events cause nothing; a rename does.
	f.events <- events.Message{Type: events.ContainerEventType, Action: "exec_start: sh"}
	f.set([]container.Summary{fakeContainer("a", "/a"), fakeContainer("b", "/renamed")}, nil)
	f.events <- events.Message{Type: events.ContainerEventType, Action: events.ActionRename}
	if got := recv(t, up); len(got) != 2 || got[1] != "/renamed" {
		t.Fatalf("after rename %v", got)
	}

	// Engine lost: health goes Failing, nothing is sent, Run keeps going.
	f.set(nil, errors.New("connection refused"))
	close(f.events)
	poll.Until(t, func() bool { return health(rep) == ferry.Failing }, "the health to be failing")
	select {
	case ts := <-up:
		t.Fatalf("sent %v while the engine was down", names(ts))
	case err := <-done:
		t.Fatalf("Run returned %v", err)
	case <-time.After(300 * time.Millisecond): // nothing within a while: the thing under test
	}
	// Engine back with one container removed while it was away.
	f.mu.Lock()
	f.events = make(chan events.Message)
	f.mu.Unlock()
	f.set([]container.Summary{fakeContainer("a", "/a")}, nil)
	if got := recv(t, up); len(got) != 1 {
		t.Fatalf("after reconnect %v", got)
	}
	if h := health(rep); h != ferry.Healthy {
		t.Errorf("health %v after reconnect", h)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

func TestValidate(t *testing.T) {
	for _, d := range []*Discoverer{{Port: -1}, {RefreshInterval: -time.Second}, {Filters: []Filter{{Values: []string{"x"}}}}} {
		if err := d.Run(context.Background(), nil); !ferry.IsPermanent(err) {
			t.Errorf("%+v: Run = %v, want a permanent error", d, err)
		}
	}
}

func TestBadTLSFilesArePermanent(t *testing.T) {
	d := &Discoverer{Host: "tcp://127.0.0.1:1", TLS: TLSFiles{CA: "/nonexistent/ca.pem", Cert: "/nonexistent/cert.pem", Key: "/nonexistent/key.pem"}}
	if err := d.Run(context.Background(), nil); !ferry.IsPermanent(err) {
		t.Errorf("Run = %v, want a permanent error", err)
	}
}
