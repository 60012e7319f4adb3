package rfc3339

import (
	"fmt"
	"testing"
	"time"
)

// FuzzClock holds Clock to time.Parse(time.RFC3339Nano, s) and
// time.ParseInLocation: after any timestamp first (which may fill its
// cache), s must parse to the same instant in the same location, or fail
// as they fail, through Parse, ParseBytes and ParseInLocation alike.
// ParseInLocation must also agree with the layout time.RFC3339.
func FuzzClock(f *testing.F) {
	for _, s := range []string{"2026-11-25T13:28:59.123456789Z", "2026-11-25T13:28:60Z", "2026-11-25T13:28:5Z",
		"2026-11-25T13:28:05.Z", "2026-11-25T13:28:05.1234567891234Z", "2026-11-25T13:28:05+00:00",
		"2026-11-25T13:28:05Z", "2026-11-25T13:28:05.5", "2026-11-25T13:28:0x.1Z", "2026-11-25T13:29:00.000000001Z",
		"2026-11-25T13:28:59.0000000000000000000001Z", "2026-11-25T13:28:59.12a4Z", "2026-11-25T13:28:59,5Z",
		"2026-11-25T14:28:05.25+01:00", "2026-11-25t13:28:05Z", "2026-11-25T13:28:05z",
		"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x0005Z"} {
		f.Add("2026-11-25T13:28:58.1Z", s)
	}
	f.Add("2024-02-29T23:59:59Z", "2024-02-29T23:59:05.99Z")
	f.Add("2023-02-28T23:59:59Z", "2023-02-29T23:59:05Z")
	f.Add("1969-12-31T23:59:59.5Z", "1969-12-31T23:59:01.25Z")
	plusOne := time.FixedZone("CET", 3600)
	f.Fuzz(func(t *testing.T, first, s string) {
		check := func(name string, got time.Time, err error, want time.Time, wantErr error) {
			t.Helper()
			if (err == nil) != (wantErr == nil) {
				t.Fatalf("%s(%q) after %q: error %v, time's %v", name, s, first, err, wantErr)
			}
			if err == nil && (!got.Equal(want) || got.Location().String() != want.Location().String()) {
				t.Fatalf("%s(%q) after %q: %v, time's %v", name, s, first, got, want)
			}
		}
		var c, cb Clock
		c.Parse(first)
		cb.ParseBytes([]byte(first))
		want, wantErr := time.Parse(time.RFC3339Nano, s)
		got, err := c.Parse(s)
		check("Parse", got, err, want, wantErr)
		got, err = cb.ParseBytes([]byte(s))
		check("ParseBytes", got, err, want, wantErr)
		for _, loc := range []*time.Location{time.UTC, plusOne} {
			var cl Clock
			cl.ParseInLocation(first, loc)
			got, err := cl.ParseInLocation(s, loc)
			for _, layout := range []string{time.RFC3339Nano, time.RFC3339} {
				want, wantErr := time.ParseInLocation(layout, s, loc)
				check("ParseInLocation "+loc.String()+" "+layout, got, err, want, wantErr)
			}
		}
	})
}

// A timestamp in the minute of the last one costs no allocation; one in
// another minute only time.Parse's.
func TestParseBytesAllocs(t *testing.T) {
	var c Clock
	b := []byte("2026-12-07T01:02:03.123456789Z")
	if _, err := c.ParseBytes(b); err != nil {
		t.Fatal(err)
	}
	b[18] = '9'
	if n := testing.AllocsPerRun(100, func() {
		if _, err := c.ParseBytes(b); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("%v allocations a timestamp in the cached minute, want 0", n)
	}
	got, _ := c.ParseBytes(b)
	if want := time.Date(2026, 12, 7, 1, 2, 9, 123456789, time.UTC); !got.Equal(want) || got.Location() != time.UTC {
		t.Errorf("got %v, want %v", got, want)
	}
}

func ExampleClock() {
	var c Clock
	for _, s := range []string{
		"2026-12-07T10:15:00.5Z",       // parsed by time.Parse; its minute is kept
		"2026-12-07T10:15:42.25Z",      // same minute: only "42.25" is read
		"2026-12-07T11:15:42.25+01:00", // not UTC: time.Parse
		"2026-12-07T10:15:61Z",         // time.Parse judges, and rejects
	} {
		t, err := c.Parse(s)
		fmt.Println(t.UTC().Format(time.RFC3339Nano), err != nil)
	}
	// Output:
	// 2026-12-07T10:15:00.5Z false
	// 2026-12-07T10:15:42.25Z false
	// 2026-12-07T10:15:42.25Z false
	// 0001-01-01T00:00:00Z true
}

// BenchmarkParse reads a minute of timestamps as the kubelet writes them
// (fractions of 1 to 9 digits) with a Clock, next to time.Parse of the
// same timestamps in the same run.
func BenchmarkParse(b *testing.B) {
	var ts []string
	base := time.Date(2026, 12, 7, 10, 15, 0, 0, time.UTC)
	for i := range 1000 {
		ts = append(ts, base.Add(time.Duration(i)*59*time.Millisecond+time.Duration(i*7919)).Format(time.RFC3339Nano))
	}
	var sink int64
	b.Run("time.Parse", func(b *testing.B) {
		for i := range b.N {
			t, _ := time.Parse(time.RFC3339Nano, ts[i%len(ts)])
			sink += t.UnixNano()
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "timestamps/s")
	})
	b.Run("Clock", func(b *testing.B) {
		var c Clock
		for i := range b.N {
			t, _ := c.Parse(ts[i%len(ts)])
			sink += t.UnixNano()
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "timestamps/s")
	})
	_ = sink
}
