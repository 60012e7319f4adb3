// Package retry holds what every component that retries shares: an
// exponential backoff and the parsing of an HTTP Retry-After header.
package retry

import (
	"context"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// Backoff computes the waits between retries: Min first, doubling after
// each wait up to Max. Its zero value waits nothing; set Min and Max. It
// is not safe for concurrent use: each retrying goroutine keeps its own.
type Backoff struct {
	// Min is the first wait and Max the longest. A Max below Min is taken
	// as Min.
	Min, Max time.Duration
	// Jitter spreads each wait d over [d, 2d), capped at Max, so that
	// clients that failed together do not retry together.
	Jitter bool

	next time.Duration // the wait before the next attempt; 0 means Min
}

// Next returns the wait before the next attempt and doubles the one after
// it, up to Max.
func (b *Backoff) Next() time.Duration {
	hi := max(b.Max, b.Min)
	d := b.next
	if d <= 0 {
		d = b.Min
	}
	d = min(d, hi)
	if d > hi/2 {
		b.next = hi
	} else {
		b.next = 2 * d
	}
	if b.Jitter && d > 0 {
		d = min(d+rand.N(d), hi)
	}
	return d
}

// Reset makes the next wait Min again, after an attempt succeeded.
func (b *Backoff) Reset() { b.next = 0 }

// Sleep waits d, or until ctx is done, and returns ctx's error in that
// case.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ParseRetryAfter reads a Retry-After value, delay seconds or an HTTP date
// (RFC 9110, section 10.2.3), relative to now. It returns 0 when v is
// empty, unparsable or not in the future. A number of seconds too large for
// a time.Duration gives the largest Duration.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		if n > int64(math.MaxInt64/time.Second) {
			return time.Duration(math.MaxInt64)
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}
