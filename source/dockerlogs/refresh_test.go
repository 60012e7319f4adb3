package dockerlogs

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/discovery/docker"
	"github.com/ferrydev/ferry/relabel"
)

// runMany runs s on n containers c0, c1, ... and returns a function that
// waits for want more entries, acknowledging them, and returns the id
// label of each; after them nothing more may come for quiet.
func runMany(t *testing.T, s *Source, n int) func(want int, quiet time.Duration) []string {
	t.Helper()
	s.Rules = []relabel.Rule{relabel.Replace([]string{docker.LabelContainerID}, "(.*)", "id", "$1")}
	ctx, cancel := context.WithCancel(ferry.WithReporter(context.Background(), nopRep{}))
	targets := make(chan []labels.Labels, 1)
	out := make(chan ferry.Batch[ferry.Entry])
	done := make(chan error, 1)
	mustStart(s, nopRep{})
	go func() { done <- s.Run(ctx, targets, out) }()
	t.Cleanup(func() { cancel(); <-done; s.Close(context.Background()) })
	var ts []labels.Labels
	for i := range n {
		ts = append(ts, labels.FromStrings(docker.LabelContainerID, fmt.Sprintf("c%d", i)))
	}
	targets <- ts
	return func(want int, quiet time.Duration) []string {
		t.Helper()
		var ids []string
		timeout := time.After(10 * time.Second)
		for len(ids) < want {
			select {
			case b := <-out:
				for _, e := range b.Items {
					ids = append(ids, e.Labels.Get("id"))
				}
				b.Done(nil)
			case <-timeout:
				t.Fatalf("got %d entries %v, want %d", len(ids), ids, want)
			}
		}
		select {
		case b := <-out:
			t.Fatalf("extra entries from %s", b.Items[0].Labels.Get("id"))
		case <-time.After(quiet):
		}
		return ids
	}
}

// TestStoppedContainersInspectBounded: the readers of many stopped
// containers whose logs were read check them again only as a safety net,
// each at most once per RefreshInterval, and never more than InspectLimit
// at a time.
func TestStoppedContainersInspectBounded(t *testing.T) {
	const n, interval, intervals = 200, 100 * time.Millisecond, 5
	f := &fakeEngine{lines: []fakeLine{{ts: 1e18, stream: 1, text: "only"}}, inspectDelay: 2 * time.Millisecond}
	wait := runMany(t, &Source{Client: f, RefreshInterval: interval}, n)
	wait(n, 2*interval)
	before := f.inspections()
	time.Sleep(intervals * interval) // the intervals passing is what is measured
	after := f.inspections()
	total, most := 0, 0
	for i := range n {
		id := fmt.Sprintf("c%d", i)
		d := after[id] - before[id]
		total += d
		most = max(most, d)
	}
	t.Logf("%d stopped containers, %d intervals: %d inspections (at most %d for one), at most %d at once",
		n, intervals, total, most, f.maxInflight.Load())
	if most > intervals {
		t.Errorf("a container was inspected %d times in %d intervals", most, intervals)
	}
	if total > n*intervals*9/10 {
		// Waits between one and two intervals make about n*intervals/1.5.
		t.Errorf("%d inspections in %d intervals: the rechecks are not spread", total, intervals)
	}
	if total < n {
		t.Errorf("%d inspections in %d intervals: the safety net does not check every container", total, intervals)
	}
	if m := f.maxInflight.Load(); m > InspectLimit {
		t.Errorf("%d inspections at once, limit %d", m, InspectLimit)
	}
}

// TestEventsWakeStoppedReaders: with the safety net far off, a start event
// wakes the reader of its container at once, and the event stream coming
// back after it broke wakes every reader.
func TestEventsWakeStoppedReaders(t *testing.T) {
	const n = 20
	f := &fakeEngine{
		lines:     []fakeLine{{ts: 1e18, stream: 1, text: "first"}},
		events:    make(chan events.Message),
		eventErrs: make(chan error, 1),
	}
	wait := runMany(t, &Source{Client: f, RefreshInterval: time.Hour}, n)
	wait(n, 100*time.Millisecond)

	// c3 ran again: only its reader reads the new line.
	f.mu.Lock()
	f.lines = append(f.lines, fakeLine{ts: 1e18 + 1, stream: 1, text: "second"})
	f.mu.Unlock()
	f.events <- events.Message{Action: events.ActionStart, Actor: events.Actor{ID: "c3"}}
	if ids := wait(1, 300*time.Millisecond); ids[0] != "c3" {
		t.Fatalf("woke %v", ids)
	}

	// Every container ran again while the event stream was down.
	f.mu.Lock()
	f.lines = append(f.lines, fakeLine{ts: 1e18 + 2, stream: 1, text: "third"})
	f.mu.Unlock()
	f.eventErrs <- errors.New("connection reset")
	per := map[string]int{}
	for _, id := range wait(2*(n-1)+1, 300*time.Millisecond) {
		per[id]++
	}
	for i := range n {
		id := fmt.Sprintf("c%d", i)
		if want := 2 - btoi(id == "c3"); per[id] != want {
			t.Errorf("%s: %d new lines after the event stream came back, want %d", id, per[id], want)
		}
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
