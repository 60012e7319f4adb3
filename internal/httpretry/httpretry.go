// Package httpretry holds the two pieces every HTTP sender retries with:
// an exponential backoff with jitter and the Retry-After header.
//
// It was written for sink/otlp while the Loki and remote-write sinks still
// held unexported copies of the same mechanism; they can move to it (or to
// whichever shared package replaces it) so that there is one of each.
package httpretry

import (
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// Backoff returns the wait before retry number attempt+1 (attempt counts
// from 0): lo doubled attempt times, with full jitter in [d, 2d), never more
// than hi. It never overflows, and returns hi when lo is not positive.
func Backoff(attempt int, lo, hi time.Duration) time.Duration {
	if lo <= 0 {
		return max(hi, 0)
	}
	d := lo
	for i := 0; i < attempt && d < hi; i++ {
		d *= 2
	}
	if d > hi || d <= 0 {
		d = hi
	}
	if d > 0 {
		d += rand.N(d)
	}
	return min(d, hi)
}

// maxRetryAfter bounds what ParseRetryAfter returns, so that a huge number
// of seconds cannot overflow a Duration.
const maxRetryAfter = 24 * time.Hour

// ParseRetryAfter reads a Retry-After header value: a number of seconds or
// an HTTP date, relative to now. It returns 0 for an empty, invalid or past
// value, and at most 24 hours.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s <= 0 {
			return 0
		}
		if s > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return min(d, maxRetryAfter)
		}
	}
	return 0
}
