package civil

import (
	"fmt"
	"testing"
	"time"
)

// Days agrees with time.Date for every day of four centuries around the
// epoch, leap days and the year 0 included, and for days past a month's end.
func TestDaysMatchesTime(t *testing.T) {
	for day := time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC); day.Year() < 2401; day = day.AddDate(0, 0, 1) {
		want := day.Unix() / 86400
		if day.Unix() < 0 && day.Unix()%86400 != 0 {
			want--
		}
		if got := Days(int64(day.Year()), int64(day.Month()), int64(day.Day())); got != want {
			t.Fatalf("Days(%v) = %d, want %d", day.Format(time.DateOnly), got, want)
		}
	}
	if got, want := Days(2023, 2, 31), time.Date(2023, 2, 31, 0, 0, 0, 0, time.UTC).Unix()/86400; got != want {
		t.Errorf("Days(2023-02-31) = %d, want %d", got, want)
	}
}

func ExampleDays() {
	fmt.Println(Days(1970, 1, 1), Days(2000, 3, 1), Days(2026, 12, 5))
	// Output: 0 11017 20792
}
