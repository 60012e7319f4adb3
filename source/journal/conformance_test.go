package journal

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/internal/poll"
	"github.com/ferrydev/ferry/source"
	"github.com/ferrydev/ferry/source/sourcetest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fakeFollowing writes a journalctl that prints n entries (the i-th with
// __REALTIME_TIMESTAMP base+i µs) and then follows forever, as journalctl
// -f does on a quiet journal.
func fakeFollowing(t *testing.T, n int, base int64) string {
	t.Helper()
	dir := t.TempDir()
	var in bytes.Buffer
	for i := 1; i <= n; i++ {
		exportEntry(&in, [][2]string{{"__CURSOR", fmt.Sprintf("c%d", i)},
			{"__REALTIME_TIMESTAMP", fmt.Sprint(base + int64(i))}, {"MESSAGE", fmt.Sprintf("m%d", i)}})
	}
	exportEntry(&in, [][2]string{{"__CURSOR", "c-last"}, {"__REALTIME_TIMESTAMP", fmt.Sprint(base + int64(n) + 1)}})
	data := filepath.Join(dir, "data")
	if err := os.WriteFile(data, in.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	fake := filepath.Join(dir, "journalctl")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\ncat "+data+"\nexec sleep 3600\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return fake
}

func TestConformance(t *testing.T) {
	sourcetest.Run(t, sourcetest.Harness[ferry.Entry]{
		New: func(t *testing.T) source.Source[ferry.Entry] {
			return &Source{Journalctl: fakeFollowing(t, 50, 1700000000000000), BatchSize: 7}
		},
		Want: 50,
	})
}

// The metrics count the entries read, the skipped ones, and give the
// journal time of the last entry read.
func TestMetrics(t *testing.T) {
	base := time.Now().Add(-time.Hour).UnixMicro()
	s := &Source{Journalctl: fakeFollowing(t, 20, base), Name: "host"}
	ctx, cancel := context.WithCancel(context.Background())
	if err := s.Start(ctx, nil); err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	out := make(chan ferry.Batch[ferry.Entry], 100)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, out) }()
	poll.Until(t, func() bool { return s.Stats().Entries == 21 }, "21 entries read")
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(s)
	if got := testutil.ToFloat64(collectorFor(s, "ferry_journal_entries_read_total")); got != 21 {
		t.Errorf("entries_read_total = %v, want 21", got)
	}
	if got := testutil.ToFloat64(collectorFor(s, "ferry_journal_entries_without_message_total")); got != 1 {
		t.Errorf("entries_without_message_total = %v, want 1", got)
	}
	wantTS := float64(base+21) / 1e6
	if got := testutil.ToFloat64(collectorFor(s, "ferry_journal_last_entry_timestamp_seconds")); got != wantTS {
		t.Errorf("last_entry_timestamp_seconds = %v, want %v", got, wantTS)
	}
	if got := testutil.ToFloat64(collectorFor(s, "ferry_journal_last_entry_age_seconds")); got < 3599 || got > 3700 {
		t.Errorf("last_entry_age_seconds = %v, want about 3600", got)
	}
	n, err := testutil.GatherAndCount(reg)
	if err != nil || n != 4 {
		t.Errorf("gathered %d metrics (%v), want 4", n, err)
	}
}

// collectorFor is the one metric of c named name, as a Collector.
func collectorFor(c prometheus.Collector, name string) prometheus.Collector {
	return filtered{c, name}
}

type filtered struct {
	c    prometheus.Collector
	name string
}

func (f filtered) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(f, ch) }
func (f filtered) Collect(ch chan<- prometheus.Metric) {
	all := make(chan prometheus.Metric, 64)
	go func() { f.c.Collect(all); close(all) }()
	for m := range all {
		if bytes.Contains([]byte(m.Desc().String()), []byte(`fqName: "`+f.name+`"`)) {
			ch <- m
		}
	}
}
