package dockerlogs

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/discovery/docker"
	"github.com/ferrydev/ferry/source"
	"github.com/ferrydev/ferry/source/sourcetest"
)

// The harness against the fake engine: a stopped container's 50 lines,
// sent in small batches so that the source blocks on the harness's full
// channel.
func TestConformance(t *testing.T) {
	sourcetest.Run(t, sourcetest.Harness[ferry.Entry]{
		New: func(t *testing.T) source.Source[ferry.Entry] {
			f := &fakeEngine{}
			base := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC).UnixNano()
			for i := range 50 {
				f.lines = append(f.lines, fakeLine{ts: base + int64(i), stream: 1, text: fmt.Sprint("line ", i)})
			}
			s := &Source{Client: f, BatchSize: 3, Linger: time.Millisecond}
			return sourcetest.Targeted(s, []labels.Labels{labels.FromStrings(docker.LabelContainerID, "c1")})
		},
		Want: 50,
	})
}

// One lifecycle (issue 17): Run before Start and after Close refuses with
// errors wrapping ferry's, Close is idempotent, and a closed Source does
// not start again.
func TestLifecycle(t *testing.T) {
	ctx := context.Background()
	f := &fakeEngine{}
	s := &Source{Client: f}
	out := make(chan ferry.Batch[ferry.Entry], 1)
	if err := s.Run(ctx, nil, out); !errors.Is(err, ferry.ErrNotStarted) {
		t.Errorf("Run before Start = %v, want ferry.ErrNotStarted", err)
	}
	mustStart(s, nopRep{})
	for i := range 2 {
		if err := s.Close(ctx); err != nil {
			t.Errorf("Close %d: %v", i+1, err)
		}
	}
	if err := s.Run(ctx, nil, out); !errors.Is(err, ferry.ErrClosed) {
		t.Errorf("Run after Close = %v, want ferry.ErrClosed", err)
	}
	if err := s.Start(ctx, nopRep{}); !errors.Is(err, ferry.ErrClosed) {
		t.Errorf("Start after Close = %v, want ferry.ErrClosed", err)
	}
	if len(out) != 0 || len(f.opens) != 0 {
		t.Errorf("%d batches sent, %d logs opened; want none", len(out), len(f.opens))
	}
}
