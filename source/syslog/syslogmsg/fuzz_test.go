package syslogmsg

import (
	"bytes"
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
