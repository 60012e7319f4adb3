package syslogmsg

import (
	"bytes"
	"fmt"
	"testing"
	"time"
	"unsafe"
)

var fuzzSeeds = []string{
	`<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"] An application event log entry...`,
	`<165>1 2003-10-11T22:14:15.003Z h a - - [a@1 b="\"\]\\"][c] x`,
	"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \xEF\xBB\xBF'su root' failed",
	"<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8",
	"<30>Dec  4 11:59:01 sshd[4242]: no host here",
	"<189>123: *Mar  1 18:46:11.123 UTC: %SYS-5-CONFIG_I: Configured from console",
	"<187>45: Dec  1 2025 10:00:00: %LINK-3-UPDOWN: Interface Gi0/1",
	"<13>2026-12-04T10:11:12.123456+00:00 web1 app[7]: iso",
	"Dec  4 11:59:01 web1 cron[1]: no pri",
	"<13>just text",
	"<999>x", "<", "", "1", "<13>1 ", "<13>1 - - - - - [",
}

// FuzzParse checks that Parse never panics, never allocates views outside
// its input, and is deterministic.
func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	p := &Parser{Now: func() time.Time { return time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC) }}
	f.Fuzz(func(t *testing.T, b []byte) {
		var m, m2 Message
		err := p.Parse(b, &m)
		err2 := p.Parse(b, &m2)
		if err != err2 || m.Format != m2.Format || !bytes.Equal(m.Msg, m2.Msg) {
			t.Fatalf("not deterministic: %v/%v", err, err2)
		}
		if err != nil {
			if m.Format != Unparsed && err != nil {
				return
			}
			return
		}
		if m.Format == Unparsed {
			t.Fatal("no error and no format")
		}
		if m.Priority < 0 || m.Priority > 191 {
			t.Fatalf("priority %d", m.Priority)
		}
		for _, v := range [][]byte{m.Hostname, m.AppName, m.ProcID, m.MsgID, m.StructuredData, m.Msg} {
			if len(v) > 0 && !within(v, b) {
				t.Fatalf("field %q outside the input", v)
			}
		}
		if m.StructuredData != nil {
			EachSDParam(m.StructuredData, func(id, name, value []byte) {
				UnescapeSDValue(nil, value)
			})
		}
	})
}

func within(v, b []byte) bool {
	if len(b) == 0 {
		return false
	}
	vs, bs := uintptr(unsafe.Pointer(&v[0])), uintptr(unsafe.Pointer(&b[0]))
	return vs >= bs && vs+uintptr(len(v)) <= bs+uintptr(len(b))
}

// FuzzParseMatchesReference checks that the parser gives, for every
// input, what the parser before its rewrite for speed gave (kept in
// reference_test.go): the same error, format, priority, time (instant and
// location) and fields. Each input is parsed twice by one Parser, after
// another message, so that its caches are exercised with hits and misses.
func FuzzParseMatchesReference(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s), []byte(fuzzSeeds[0]), uint8(0))
	}
	f.Add([]byte("<13>2026-12-04T10:11:12+01:00 h a: x"), []byte("<13>2026-12-04T10:11:59Z h a: y"), uint8(1))
	f.Add([]byte("<13>Dec 31 23:59:59 h a: x"), []byte("<13>Jan  1 00:00:00 h a: y"), uint8(2))
	f.Add([]byte("<13>1 2026-02-31T10:11:60.123456789-23:59 h a p m - x"), []byte("<13>1 2026-02-31T10:11:00Z h a p m - x"), uint8(3))
	// Structured data with the structure of the message before (the SD
	// cache hits), or almost.
	const sd = `<165>1 2026-12-04T10:11:12.000001Z web-01.example.com nginx 1001 ID47 [exampleSDID@32473 iut="3" eventSource="Application"]`
	f.Add([]byte(sd+` GET /api/v1/items?page=1 200`), []byte(sd+` GET /`), uint8(0))
	f.Add([]byte(`<165>1 2026-12-04T10:11:12.000002Z web-02.example.com nginx 1002 ID47 [exampleSDID@32473 iut="4" eventSource="App\"lication"][x y="z"] GET /`), []byte(sd+` GET /`), uint8(1))
	f.Add([]byte(`<165>1 2026-12-04T10:11:12.000003Z web-03.example.com nginx 1003 ID47 [exampleSDID@32473 iut="3" eventSource="Application"][x]`), []byte(sd+` GET /`), uint8(2))
	f.Add([]byte("<30>Dec  4 10:11:12 web-03 sshd[1003]: Accepted publickey for deploy"), []byte("<30>Dec  4 10:11:59 web-04 sshd[1004]: Accepted"), uint8(4))
	nows := []time.Time{
		time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC),
		time.Date(2027, 1, 2, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 12, 25, 23, 59, 59, 999, time.UTC),
		time.Date(2000, 2, 29, 0, 0, 0, 0, time.UTC),
	}
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		berlin = time.FixedZone("CET", 3600)
	}
	f.Fuzz(func(t *testing.T, b, before []byte, sel uint8) {
		now := nows[int(sel)%len(nows)]
		var loc *time.Location
		if sel&4 != 0 {
			loc = berlin
		}
		clock := func() time.Time { return now }
		p := &Parser{Now: clock, Location: loc}
		r := &refParser{Now: clock, Location: loc}
		var m, rm Message
		for _, in := range [][]byte{before, b, b} {
			err := p.Parse(in, &m)
			rerr := r.Parse(in, &rm)
			if err != rerr {
				t.Fatalf("Parse(%q) error = %v, reference %v", in, err, rerr)
			}
			if d := diffMessages(&m, &rm); d != "" {
				t.Fatalf("Parse(%q): %s", in, d)
			}
		}
	})
}

// diffMessages describes how m differs from the reference's rm.
func diffMessages(m, rm *Message) string {
	if m.Format != rm.Format || m.Priority != rm.Priority {
		return fmt.Sprintf("format/priority %v/%d, reference %v/%d", m.Format, m.Priority, rm.Format, rm.Priority)
	}
	if !m.Timestamp.Equal(rm.Timestamp) || m.Timestamp.Location().String() != rm.Timestamp.Location().String() || m.Timestamp.IsZero() != rm.Timestamp.IsZero() {
		return fmt.Sprintf("timestamp %v, reference %v", m.Timestamp, rm.Timestamp)
	}
	for i, pair := range [][2][]byte{{m.Hostname, rm.Hostname}, {m.AppName, rm.AppName}, {m.ProcID, rm.ProcID},
		{m.MsgID, rm.MsgID}, {m.StructuredData, rm.StructuredData}, {m.Msg, rm.Msg}} {
		if !bytes.Equal(pair[0], pair[1]) || (pair[0] == nil) != (pair[1] == nil) && (len(pair[0]) > 0 || len(pair[1]) > 0) {
			return fmt.Sprintf("field %d = %q, reference %q", i, pair[0], pair[1])
		}
	}
	return ""
}
