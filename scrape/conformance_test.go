package scrape

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/source"
	"github.com/ferrydev/ferry/source/sourcetest"
)

func TestConformance(t *testing.T) {
	p := &page{}
	p.set(simplePage, textType)
	srv := httptest.NewServer(p)
	defer srv.Close()
	sourcetest.Run(t, sourcetest.Harness[ferry.Sample]{
		New: func(t *testing.T) source.Source[ferry.Sample] {
			s := &Scraper{Interval: 20 * time.Millisecond}
			return sourcetest.Targeted(s, []labels.Labels{labels.FromStrings("__address__", addr(srv))})
		},
		Want: 20,
	})
}

// One lifecycle (issue 17): Run before Start and after Close refuses with
// errors wrapping ferry's, Close is idempotent, and a closed Scraper does
// not start again.
func TestLifecycle(t *testing.T) {
	ctx := context.Background()
	s := &Scraper{}
	out := make(chan ferry.Batch[ferry.Sample], 1)
	if err := s.Run(ctx, nil, out); !errors.Is(err, ferry.ErrNotStarted) {
		t.Errorf("Run before Start = %v, want ferry.ErrNotStarted", err)
	}
	started(t, s)
	for i := range 2 {
		if err := s.Close(ctx); err != nil {
			t.Errorf("Close %d: %v", i+1, err)
		}
	}
	if err := s.Run(ctx, nil, out); !errors.Is(err, ferry.ErrClosed) {
		t.Errorf("Run after Close = %v, want ferry.ErrClosed", err)
	}
	if err := s.Start(ctx, ferry.NopReporter()); !errors.Is(err, ferry.ErrClosed) {
		t.Errorf("Start after Close = %v, want ferry.ErrClosed", err)
	}
	if len(out) != 0 {
		t.Error("a batch was sent")
	}
}
