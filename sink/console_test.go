package sink_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/sink"
	"github.com/ferrydev/ferry/sink/sinktest"
	"github.com/prometheus/prometheus/model/labels"
)

// lockedBuffer lets the conformance harness read what the console wrote.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Split(strings.TrimSpace(l.b.String()), "\n")
}

func TestConsoleConformance(t *testing.T) {
	var out *lockedBuffer
	sinktest.Run(t, sinktest.Harness[ferry.Entry]{
		New: func(t *testing.T) sink.Sink[ferry.Entry] {
			out = &lockedBuffer{}
			return &sink.Console[ferry.Entry]{W: out, JSON: true}
		},
		Item: func(i int) ferry.Entry {
			return ferry.Entry{Labels: labels.FromStrings("i", fmt.Sprint(i)), Timestamp: time.Unix(0, int64(i)).UTC(), Line: fmt.Sprint("line ", i)}
		},
		Delivered: func() []ferry.Entry {
			var es []ferry.Entry
			for _, l := range out.lines() {
				var i int
				if _, err := fmt.Sscanf(l[strings.Index(l, `"line":"line `)+len(`"line":"line `):], "%d", &i); err == nil {
					es = append(es, ferry.Entry{Labels: labels.FromStrings("i", fmt.Sprint(i)), Timestamp: time.Unix(0, int64(i)).UTC(), Line: fmt.Sprint("line ", i)})
				}
			}
			return es
		},
	})
}

func TestDiscardAndFakeConformance(t *testing.T) {
	item := func(i int) ferry.Sample { return ferry.Sample{T: int64(i), V: float64(i)} }
	var fake *sinktest.Sink[ferry.Sample]
	sinktest.Run(t, sinktest.Harness[ferry.Sample]{
		New: func(t *testing.T) sink.Sink[ferry.Sample] {
			fake = &sinktest.Sink[ferry.Sample]{}
			return fake
		},
		Item:      item,
		Delivered: func() []ferry.Sample { return fake.Items() },
	})
}

func TestConsoleFormats(t *testing.T) {
	var buf bytes.Buffer
	c := &sink.Console[ferry.Sample]{W: &buf}
	c.Send(context.Background(), ferry.NewBatch([]ferry.Sample{
		{Labels: labels.FromStrings("__name__", "up", "job", "node"), T: 1700000000000, V: 1},
		{Labels: labels.FromStrings("__name__", "stale"), T: 5, V: math.NaN()},
	}, nil))
	want := "{__name__=\"up\", job=\"node\"} 1 @1700000000000\n{__name__=\"stale\"} NaN @5\n"
	if buf.String() != want {
		t.Fatalf("got %q", buf.String())
	}
	buf.Reset()
	e := &sink.Console[ferry.Entry]{W: &buf, JSON: true}
	e.Send(context.Background(), ferry.NewBatch([]ferry.Entry{{
		Labels: labels.FromStrings("app", "x"), Timestamp: time.Unix(1, 0).UTC(), Line: "hi \"there\"",
		Metadata: labels.FromStrings("trace_id", "abc"),
	}}, nil))
	if got := buf.String(); got != `{"time":"1970-01-01T00:00:01Z","labels":{"app":"x"},"line":"hi \"there\"","metadata":{"trace_id":"abc"}}`+"\n" {
		t.Fatalf("got %s", got)
	}
}

// Text entries show labels as Labels.String does, names that need it
// quoted, without making that string for each entry.
func TestConsoleTextLabels(t *testing.T) {
	sets := []labels.Labels{
		labels.EmptyLabels(),
		labels.FromStrings("app", "x"),
		labels.FromStrings("a", "quote\"back\\slash\nnewline", "b", "ünïcode"),
		labels.FromStrings("service.name", "web", "_ok", "1"),
	}
	var buf bytes.Buffer
	c := &sink.Console[ferry.Entry]{W: &buf}
	for _, ls := range sets {
		buf.Reset()
		c.Send(context.Background(), ferry.NewBatch([]ferry.Entry{{Labels: ls, Timestamp: time.Unix(1, 0).UTC(), Line: "l", Metadata: ls}}, nil))
		want := "1970-01-01T00:00:01.000Z " + ls.String() + " l"
		if !ls.IsEmpty() {
			want += " " + ls.String()
		}
		if got := buf.String(); got != want+"\n" {
			t.Errorf("got %q, want %q", got, want)
		}
	}
	entries := make([]ferry.Entry, 100)
	for i := range entries {
		entries[i] = ferry.Entry{Labels: sets[2], Timestamp: time.Unix(1, 0), Line: "a line"}
	}
	c = &sink.Console[ferry.Entry]{W: io.Discard}
	allocs := testing.AllocsPerRun(20, func() {
		c.Send(context.Background(), ferry.NewBatch(entries, nil))
	})
	if perEntry := allocs / float64(len(entries)); perEntry > 0.05 {
		t.Errorf("%.2f allocations per entry", perEntry)
	}
}

func ExampleConsole() {
	c := &sink.Console[ferry.Entry]{W: os.Stdout}
	c.Send(context.Background(), ferry.NewBatch([]ferry.Entry{{
		Labels:    labels.FromStrings("container", "web"),
		Timestamp: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Line:      "listening on :8080",
	}}, func(err error) { fmt.Println("acknowledged:", err) }))
	c.Close(context.Background())
	// Output:
	// 2026-01-02T03:04:05.000Z {container="web"} listening on :8080
	// acknowledged: <nil>
}
