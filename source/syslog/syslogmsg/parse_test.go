package syslogmsg

import (
	"fmt"
	"testing"
	"time"
)

type want struct {
	format                        Format
	pri                           int
	ts                            string // RFC3339Nano in UTC, "" for none
	host, app, proc, msgid, sd, m string
	err                           error
}

func str(b []byte) string {
	if b == nil {
		return "<nil>"
	}
	return string(b)
}

func checkParse(t *testing.T, p *Parser, in string, w want) {
	t.Helper()
	var m Message
	err := p.Parse([]byte(in), &m)
	if err != w.err {
		t.Fatalf("Parse(%q) error = %v, want %v", in, err, w.err)
	}
	if err != nil {
		return
	}
	ts := ""
	if !m.Timestamp.IsZero() {
		ts = m.Timestamp.UTC().Format(time.RFC3339Nano)
	}
	got := fmt.Sprintf("%v pri=%d ts=%s host=%s app=%s proc=%s msgid=%s sd=%s msg=%q",
		m.Format, m.Priority, ts, str(m.Hostname), str(m.AppName), str(m.ProcID), str(m.MsgID), str(m.StructuredData), str(m.Msg))
	def := func(s string) string {
		if s == "" {
			return "<nil>"
		}
		return s
	}
	exp := fmt.Sprintf("%v pri=%d ts=%s host=%s app=%s proc=%s msgid=%s sd=%s msg=%q",
		w.format, w.pri, w.ts, def(w.host), def(w.app), def(w.proc), def(w.msgid), def(w.sd), w.m)
	if got != exp {
		t.Errorf("Parse(%q)\n got  %s\n want %s", in, got, exp)
	}
}

func fixedParser() *Parser {
	return &Parser{Now: func() time.Time { return time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC) }}
}

// The examples of RFC 5424 section 6.5.
func TestParseRFC5424Examples(t *testing.T) {
	p := fixedParser()
	checkParse(t, p, "<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \xEF\xBB\xBF'su root' failed for lonvick on /dev/pts/8",
		want{format: RFC5424, pri: 34, ts: "2003-10-11T22:14:15.003Z", host: "mymachine.example.com", app: "su", msgid: "ID47", m: "'su root' failed for lonvick on /dev/pts/8"})
	checkParse(t, p, "<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time to make the do-nuts.",
		want{format: RFC5424, pri: 165, ts: "2003-08-24T12:14:15.000003Z", host: "192.0.2.1", app: "myproc", proc: "8710", m: "%% It's time to make the do-nuts."})
	checkParse(t, p, `<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"] `+"\xEF\xBB\xBF"+`An application event log entry...`,
		want{format: RFC5424, pri: 165, ts: "2003-10-11T22:14:15.003Z", host: "mymachine.example.com", app: "evntslog", msgid: "ID47",
			sd: `[exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"]`, m: "An application event log entry..."})
	checkParse(t, p, `<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][examplePriority@32473 class="high"]`,
		want{format: RFC5424, pri: 165, ts: "2003-10-11T22:14:15.003Z", host: "mymachine.example.com", app: "evntslog", msgid: "ID47",
			sd: `[exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][examplePriority@32473 class="high"]`, m: ""})
}

func TestParseRFC5424Edges(t *testing.T) {
	p := fixedParser()
	checkParse(t, p, "<0>1 - - - - - -", want{format: RFC5424, pri: 0, m: ""})
	checkParse(t, p, "<191>1 - h a p m - msg\n", want{format: RFC5424, pri: 191, host: "h", app: "a", proc: "p", msgid: "m", m: "msg"})
	checkParse(t, p, `<13>1 2026-01-02T03:04:05+01:00 h a - - [a b="x\"y\]z"] m`,
		want{format: RFC5424, pri: 13, ts: "2026-01-02T02:04:05Z", host: "h", app: "a", sd: `[a b="x\"y\]z"]`, m: "m"})
	checkParse(t, p, "<13>1 2026-01-02T03:04:05 h a - - - m", want{err: ErrTimestamp})
	checkParse(t, p, "<13>1 2026-13-02T03:04:05Z h a - - - m", want{err: ErrTimestamp})
	checkParse(t, p, "<13>1 - h a - -", want{err: ErrHeader})
	checkParse(t, p, "<13>1 - h a - - [bad", want{err: ErrSD})
	checkParse(t, p, "<13>1 - h a - - [a b=c] m", want{err: ErrSD})
	checkParse(t, p, "<13>1 - h a - - x m", want{err: ErrSD})
	checkParse(t, p, "<13>1 - h aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa - - - m", want{err: ErrFieldTooLong})
	checkParse(t, p, "<192>1 - - - - - -", want{err: ErrPriority})
	checkParse(t, p, "<1a>1 - - - - - -", want{err: ErrPriority})
	checkParse(t, p, "<>x", want{err: ErrPriority})
	checkParse(t, p, "<", want{err: ErrPriority})
	checkParse(t, p, "", want{err: ErrEmpty})
	checkParse(t, p, "\r\n", want{err: ErrEmpty})
}

func TestParseRFC3164(t *testing.T) {
	p := fixedParser()
	// RFC 3164 section 5.4.
	checkParse(t, p, "<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8",
		want{format: RFC3164, pri: 34, ts: "2026-10-11T22:14:15Z", host: "mymachine", app: "su", m: "'su root' failed for lonvick on /dev/pts/8"})
	checkParse(t, p, "<13>Feb  5 17:32:18 10.0.0.99 Use the BFG!",
		want{format: RFC3164, pri: 13, ts: "2026-02-05T17:32:18Z", host: "10.0.0.99", m: "Use the BFG!"})
	checkParse(t, p, "<165>Aug 24 05:34:00 CST 1987 mymachine myproc[10]: %% It's time to make the do-nuts.  %%  Ingredients: Mix=OK, Jelly=OK #",
		want{format: RFC3164, pri: 165, ts: "2026-08-24T05:34:00Z", host: "CST", m: "1987 mymachine myproc[10]: %% It's time to make the do-nuts.  %%  Ingredients: Mix=OK, Jelly=OK #"})
	// The usual Linux forms.
	checkParse(t, p, "<30>Dec  4 11:59:01 web1 sshd[4242]: Accepted publickey for root",
		want{format: RFC3164, pri: 30, ts: "2026-12-04T11:59:01Z", host: "web1", app: "sshd", proc: "4242", m: "Accepted publickey for root"})
	// Last year's December read in January.
	pj := &Parser{Now: func() time.Time { return time.Date(2027, 1, 1, 0, 5, 0, 0, time.UTC) }}
	checkParse(t, pj, "<30>Dec 31 23:59:59 h app: x",
		want{format: RFC3164, pri: 30, ts: "2026-12-31T23:59:59Z", host: "h", app: "app", m: "x"})
	// Local zone.
	ny, err := time.LoadLocation("America/New_York")
	if err == nil {
		pl := &Parser{Location: ny, Now: p.Now}
		checkParse(t, pl, "<30>Jun  1 08:00:00 h app: x",
			want{format: RFC3164, pri: 30, ts: "2026-06-01T12:00:00Z", host: "h", app: "app", m: "x"})
	}
}

func TestParseVendorVariants(t *testing.T) {
	p := fixedParser()
	// No hostname: the tag follows the timestamp.
	checkParse(t, p, "<30>Dec  4 11:59:01 sshd[4242]: no host here",
		want{format: RFC3164, pri: 30, ts: "2026-12-04T11:59:01Z", app: "sshd", proc: "4242", m: "no host here"})
	checkParse(t, p, "<30>Dec  4 11:59:01 kernel: no host",
		want{format: RFC3164, pri: 30, ts: "2026-12-04T11:59:01Z", app: "kernel", m: "no host"})
	// ISO timestamp in a BSD message (rsyslog's RSYSLOG_ForwardFormat).
	checkParse(t, p, "<13>2026-12-04T10:11:12.123456+00:00 web1 app[7]: iso",
		want{format: RFC3164, pri: 13, ts: "2026-12-04T10:11:12.123456Z", host: "web1", app: "app", proc: "7", m: "iso"})
	// Cisco IOS: sequence number, unsynchronised clock marker, millis,
	// zone, %FACILITY-SEVERITY-MNEMONIC.
	checkParse(t, p, "<189>123: *Mar  1 18:46:11.123 UTC: %SYS-5-CONFIG_I: Configured from console by vty0 (10.0.0.1)",
		want{format: RFC3164, pri: 189, ts: "2026-03-01T18:46:11.123Z", msgid: "SYS-5-CONFIG_I", m: "Configured from console by vty0 (10.0.0.1)"})
	checkParse(t, p, "<187>45: Dec  1 2025 10:00:00: %LINK-3-UPDOWN: Interface Gi0/1, changed state to down",
		want{format: RFC3164, pri: 187, ts: "2025-12-01T10:00:00Z", msgid: "LINK-3-UPDOWN", m: "Interface Gi0/1, changed state to down"})
	checkParse(t, p, "<189>Dec  4 11:00:00 router1 %SEC-6-IPACCESSLOGP: list 101 denied",
		want{format: RFC3164, pri: 189, ts: "2026-12-04T11:00:00Z", host: "router1", msgid: "SEC-6-IPACCESSLOGP", m: "list 101 denied"})
	// Missing PRI: user.notice, as RFC 3164 4.3.3 has relays assume.
	checkParse(t, p, "Dec  4 11:59:01 web1 cron[1]: no pri",
		want{format: RFC3164, pri: 13, ts: "2026-12-04T11:59:01Z", host: "web1", app: "cron", proc: "1", m: "no pri"})
	// PRI but no timestamp: the whole rest is the message.
	checkParse(t, p, "<13>just text", want{format: RFC3164, pri: 13, m: "just text"})
	// Neither: not syslog.
	checkParse(t, p, "hello world", want{err: ErrNoPriority})
}

func TestEachSDParam(t *testing.T) {
	sd := []byte(`[exampleSDID@32473 iut="3" eventSource="App\"lication"][empty][x@1 a="\]\\"]`)
	var got []string
	EachSDParam(sd, func(id, name, value []byte) {
		got = append(got, fmt.Sprintf("%s/%s=%s", id, name, UnescapeSDValue(nil, value)))
	})
	want := []string{`exampleSDID@32473/iut=3`, `exampleSDID@32473/eventSource=App"lication`, `empty/=`, `x@1/a=]\`}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}

func TestParseDoesNotAllocate(t *testing.T) {
	p := fixedParser()
	msgs := [][]byte{
		[]byte(`<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3"] An application event log entry...`),
		[]byte("<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8"),
		[]byte("<189>123: *Mar  1 18:46:11.123 UTC: %SYS-5-CONFIG_I: Configured from console"),
	}
	var m Message
	for _, b := range msgs {
		if n := testing.AllocsPerRun(100, func() { p.Parse(b, &m) }); n != 0 {
			t.Errorf("Parse(%q) allocates %v times", b, n)
		}
	}
}

func TestDateMatchesTimeDate(t *testing.T) {
	for _, c := range [][7]int{{2026, 12, 4, 1, 2, 3, 4}, {2024, 2, 29, 23, 59, 59, 999999999}, {2000, 1, 1, 0, 0, 0, 0},
		{1969, 12, 31, 23, 59, 59, 0}, {2023, 2, 31, 0, 0, 0, 0}, {1600, 3, 1, 0, 0, 0, 0}, {9999, 12, 31, 23, 59, 59, 0}, {0, 1, 1, 0, 0, 0, 0}} {
		got := new(Parser).date(c[0], c[1], c[2], c[3], c[4], c[5], c[6], time.UTC)
		want := time.Date(c[0], time.Month(c[1]), c[2], c[3], c[4], c[5], c[6], time.UTC)
		if !got.Equal(want) {
			t.Errorf("date(%v) = %v, want %v", c, got, want)
		}
	}
}
