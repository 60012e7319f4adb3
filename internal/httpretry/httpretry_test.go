package httpretry

import (
	"net/http"
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	lo, hi := 100*time.Millisecond, 5*time.Second
	for attempt := range 100 {
		d := Backoff(attempt, lo, hi)
		want := lo << min(attempt, 10)
		if d < min(want, hi) || d > hi || (want < hi/2 && d >= 2*want) {
			t.Fatalf("Backoff(%d) = %v, want in [%v, %v)", attempt, d, min(want, hi), min(2*want, hi))
		}
	}
	if d := Backoff(3, 0, time.Second); d != time.Second {
		t.Errorf("Backoff without a minimum = %v, want the maximum", d)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"": 0, "3": 3 * time.Second, "0": 0, "-5": 0, "x": 0,
		"99999999999999999": 24 * time.Hour,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second,
		now.Add(-time.Minute).Format(http.TimeFormat):     0,
	} {
		if got := ParseRetryAfter(v, now); got != want {
			t.Errorf("ParseRetryAfter(%q) = %v, want %v", v, got, want)
		}
	}
}
