package buffer

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/internal/poll"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
)

// testReporter records what a component reports.
type testReporter struct {
	mu      sync.Mutex
	health  ferry.Health
	err     error
	dropped map[string]int
	retries int
	log     *slog.Logger
}

func newReporter() *testReporter {
	return &testReporter{dropped: map[string]int{}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

func (r *testReporter) Logger() *slog.Logger { return r.log }
func (r *testReporter) SetHealth(h ferry.Health, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.health, r.err = h, err
}
func (r *testReporter) Dropped(reason string, n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.dropped[reason] += n
}
func (r *testReporter) Retried() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.retries++
}
func (r *testReporter) Health() (ferry.Health, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.health, r.err
}
func (r *testReporter) Drops(reason string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.dropped[reason]
}

var base = time.Unix(1_700_000_000, 0)

// entry returns the i-th test entry: 5 labels, a line, metadata on odd ones.
func entry(stream, i int) ferry.Entry {
	e := ferry.Entry{
		Labels: labels.FromStrings("app", "demo", "env", "test", "host", "h1",
			"job", "buffer", "stream", fmt.Sprint(stream)),
		Timestamp: base.Add(time.Duration(i) * time.Millisecond),
		Line:      fmt.Sprintf("stream %d line %06d", stream, i),
	}
	if i%2 == 1 {
		e.Metadata = labels.FromStrings("trace_id", fmt.Sprint(i))
	}
	return e
}

func entries(stream, from, n int) []ferry.Entry {
	out := make([]ferry.Entry, n)
	for i := range out {
		out[i] = entry(stream, from+i)
	}
	return out
}

// start starts d with a test reporter and closes it at the end of the test.
func start(t testing.TB, d *Disk[ferry.Entry]) *testReporter {
	t.Helper()
	r := newReporter()
	if err := d.Start(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeNow(d) })
	return r
}

// closeNow closes d without waiting for the inner sink to catch up.
func closeNow[T any](d *Disk[T]) error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return d.Close(ctx)
}

// send sends items in batches of size and returns a channel that receives
// one outcome per batch.
func send(t testing.TB, d *Disk[ferry.Entry], items []ferry.Entry, size int) chan error {
	t.Helper()
	out := make(chan error, len(items)/size+1)
	for i := 0; i < len(items); i += size {
		b := ferry.NewBatch(append([]ferry.Entry(nil), items[i:min(i+size, len(items))]...), func(err error) { out <- err })
		d.Send(context.Background(), b)
	}
	return out
}

// waitAcks waits for n outcomes and fails t unless all are nil.
func waitAcks(t testing.TB, ch chan error, n int) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for range n {
		select {
		case err := <-ch:
			if err != nil {
				t.Fatalf("batch acknowledged with %v", err)
			}
		case <-deadline:
			t.Fatal("batches not acknowledged in time")
		}
	}
}

// waitFor polls cond until it holds or poll.Timeout passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	poll.Until(t, cond, "%s", what)
}

// equalEntry compares entries the way a receiver would see them.
func equalEntry(a, b ferry.Entry) bool {
	return labels.Equal(a.Labels, b.Labels) && a.Timestamp.Equal(b.Timestamp) && a.Line == b.Line &&
		labels.Equal(a.Metadata, b.Metadata)
}

// lineCounts counts deliveries of each line.
func lineCounts(items []ferry.Entry) map[string]int {
	m := map[string]int{}
	for _, e := range items {
		m[e.Line]++
	}
	return m
}

// collectNames registers c on a new registry and returns the metric names
// it exposes, checking that every one has the buffer label.
func collectNames(t testing.TB, c prometheus.Collector) []string {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != 1 || m.GetLabel()[0].GetName() != "buffer" {
				t.Fatalf("%s: labels %v", mf.GetName(), m.GetLabel())
			}
		}
	}
	return names
}
