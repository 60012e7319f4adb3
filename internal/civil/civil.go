// Package civil converts calendar dates to day counts without time.Date,
// for the syslog header parser (source/syslog/syslogmsg), which checks the
// fields of its timestamps itself.
package civil

// Days returns the number of days from 1970-01-01 to the date y-m-d of the
// proleptic Gregorian calendar (Howard Hinnant's days_from_civil). A day
// past the end of its month carries into the next one, as time.Date
// normalises it; m must be 1 to 12.
func Days(y, m, d int64) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era--
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}
