package scrape

import (
	"context"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/ferrydev/ferry"
)

func mapValues(m map[string]*dto.MetricFamily) []*dto.MetricFamily {
	out := make([]*dto.MetricFamily, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// started starts s with a reporter that discards, and fails tb if that
// fails. Starting twice is harmless.
func started(tb testing.TB, s *Scraper) *Scraper {
	tb.Helper()
	return startedWith(tb, s, ferry.NopReporter())
}

// startedWith is started with the Reporter s reports to.
func startedWith(tb testing.TB, s *Scraper, rep ferry.Reporter) *Scraper {
	tb.Helper()
	if err := s.Start(context.Background(), rep); err != nil {
		tb.Fatalf("start: %v", err)
	}
	return s
}
