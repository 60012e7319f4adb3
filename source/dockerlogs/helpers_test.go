package dockerlogs_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/discovery/docker"
	"github.com/ferrydev/ferry/internal/poll"
	"github.com/ferrydev/ferry/source/dockerlogs"
)

// collector runs a Source and acknowledges what it sends, as a sink would.
type collector struct {
	t       testing.TB
	targets chan []labels.Labels
	cancel  context.CancelFunc
	done    chan error

	mu      sync.Mutex
	entries []ferry.Entry
	batches int
	// nackAfter, if > 0, fails every batch after that many (their
	// entries are not kept): a sink that went down.
	nackAfter int
	dropped   map[string]int
}

type testReporter struct{ c *collector }

func (r testReporter) Logger() *slog.Logger          { return slog.Default() }
func (r testReporter) SetHealth(ferry.Health, error) {}
func (r testReporter) Retried()                      {}
func (r testReporter) Dropped(reason string, n int) {
	r.c.mu.Lock()
	r.c.dropped[reason] += n
	r.c.mu.Unlock()
}

func start(t testing.TB, s *dockerlogs.Source, nackAfter int) *collector {
	c := &collector{t: t, targets: make(chan []labels.Labels, 1), done: make(chan error, 1), nackAfter: nackAfter, dropped: map[string]int{}}
	ctx, cancel := context.WithCancel(ferry.WithReporter(context.Background(), testReporter{c}))
	c.cancel = cancel
	out := make(chan ferry.Batch[ferry.Entry])
	if err := s.Start(ctx, testReporter{c}); err != nil {
		t.Fatal(err)
	}
	go func() { c.done <- s.Run(ctx, c.targets, out) }()
	go func() {
		for {
			select {
			case b := <-out:
				c.mu.Lock()
				c.batches++
				if c.nackAfter > 0 && c.batches > c.nackAfter {
					c.mu.Unlock()
					b.Done(context.DeadlineExceeded)
					continue
				}
				c.entries = append(c.entries, b.Items...)
				c.mu.Unlock()
				b.Done(nil)
			case <-ctx.Done():
				return
			}
		}
	}()
	t.Cleanup(func() { c.stop() })
	return c
}

// target is a discovery target of a container, as discovery/docker makes.
func target(id, name string) labels.Labels {
	return labels.FromStrings(docker.LabelContainerID, id, docker.LabelContainerName, name, "__address__", "10.0.0.1:80")
}

func (c *collector) set(ts ...labels.Labels) { c.targets <- ts }

// stop ends Run and waits for it.
func (c *collector) stop() {
	c.cancel()
	select {
	case err := <-c.done:
		if err != nil {
			c.t.Errorf("Run: %v", err)
		}
		c.done <- nil
	case <-time.After(30 * time.Second):
		c.t.Errorf("Run did not return")
	}
}

func (c *collector) snapshot() []ferry.Entry {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]ferry.Entry(nil), c.entries...)
}

// waitN waits until at least n entries arrived.
func (c *collector) waitN(n int, timeout time.Duration) []ferry.Entry {
	c.t.Helper()
	if !poll.Wait(timeout, func() bool { return len(c.snapshot()) >= n }) {
		c.t.Fatalf("got %d entries, want %d", len(c.snapshot()), n)
	}
	return c.snapshot()
}

// quiet waits until no entry arrived for d and returns the entries.
func (c *collector) quiet(d time.Duration) []ferry.Entry {
	n := -1
	for {
		e := c.snapshot()
		if len(e) == n {
			return e
		}
		n = len(e)
		time.Sleep(d) // quiet for d: the thing to observe
	}
}

// waitBatches waits until at least n batches arrived.
func (c *collector) waitBatches(n int, timeout time.Duration) {
	c.t.Helper()
	batches := func() int {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.batches
	}
	if !poll.Wait(timeout, func() bool { return batches() >= n }) {
		c.t.Fatalf("got %d batches, want %d", batches(), n)
	}
}
