package stage

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/source/syslog"
	"github.com/prometheus/prometheus/model/labels"
)

// syslogLines are messages as rsyslog, logger, systemd and network devices
// write them, well-formed and not.
var syslogLines = []string{
	`<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][examplePriority@32473 class="high"] An application event log entry`,
	"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \xEF\xBB\xBF'su root' failed",
	`<13>1 2026-12-04T10:11:12.123456+01:00 web1 app 42 - [x@1 a="q\"uo\]te"] with SD`,
	"<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8",
	"<30>Dec  4 11:59:01 web1 sshd[4242]: Accepted publickey for deploy",
	"<189>123: *Mar  1 18:46:11.123 UTC: %SYS-5-CONFIG_I: Configured from console",
	"Dec  4 10:11:12 web1 CRON[1234]: (root) CMD (command -v debian-sa1 > /dev/null)",
	"2026-12-04T10:11:12.123456+00:00 web1 systemd[1]: Started session 4.",
	"<13>just text",
	"not syslog at all",
	"<999>bad priority",
}

// The stage gives a line the labels and line the syslog source gives the
// same message received over TCP (but for the connection's labels).
func TestSyslogMatchesSource(t *testing.T) {
	src := &syslog.Source{Addr: "127.0.0.1:0", DisableHostnameLookup: true, LabelStructuredData: true}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := src.Start(ctx, nil); err != nil {
		t.Fatal(err)
	}
	defer src.Close(context.Background())
	out := make(chan ferry.Batch[ferry.Entry], 16)
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, out) }()
	c, err := net.Dial("tcp", src.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range syslogLines {
		fmt.Fprintf(c, "%d %s", len(l), l) // octet counting: any byte may be in a message
	}
	c.Close()
	var fromSource []ferry.Entry
	timeout := time.After(10 * time.Second)
	for len(fromSource) < len(syslogLines) {
		select {
		case b := <-out:
			fromSource = append(fromSource, b.Items...)
			b.Done(nil)
		case <-timeout:
			t.Fatalf("source gave %d entries, want %d", len(fromSource), len(syslogLines))
		}
	}
	cancel()
	<-done

	p := started(t, nil, &Syslog{LabelStructuredData: true})
	in := make([]ferry.Entry, len(syslogLines))
	for i, l := range syslogLines {
		in[i] = ferry.Entry{Line: l, Labels: labels.EmptyLabels()}
	}
	b, err := p.Process(context.Background(), ferry.Batch[ferry.Entry]{Items: in})
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Items) != len(syslogLines) {
		t.Fatalf("stage gave %d entries", len(b.Items))
	}
	malformed := 0
	for i, e := range b.Items {
		want := labels.NewBuilder(fromSource[i].Labels).Del(syslog.LabelConnectionIP).Labels()
		if !labels.Equal(e.Labels, want) {
			t.Errorf("%q:\n stage  %v\n source %v", syslogLines[i], e.Labels, want)
		}
		if e.Line != fromSource[i].Line {
			t.Errorf("%q: stage line %q, source line %q", syslogLines[i], e.Line, fromSource[i].Line)
		}
		if e.Labels.Has(syslog.LabelParseError) {
			malformed++
		}
	}
	if malformed != 2 || p.Failures()["syslog_malformed"] != 2 {
		t.Errorf("malformed %d, counted %v; want 2", malformed, p.Failures())
	}
	// The values are extracted too, for later stages.
	got, _ := extractedOf(t, syslogLines[4], &Syslog{})
	checkExtracted(t, got, map[string]string{"hostname": "web1", "app_name": "sshd", "proc_id": "4242",
		"severity": "informational", "facility": "daemon"})
}

func TestSyslogOptions(t *testing.T) {
	line := "<30>Dec  4 11:59:01 web1 sshd[4242]: hello"
	p := started(t, nil, &Syslog{KeepRaw: true, UseIncomingTimestamp: true})
	b, _ := p.Process(context.Background(), ferry.Batch[ferry.Entry]{Items: []ferry.Entry{entry(line)}})
	e := b.Items[0]
	if e.Line != line || e.Timestamp.Month() != time.December || e.Timestamp.Day() != 4 || e.Timestamp.Hour() != 11 {
		t.Errorf("KeepRaw/UseIncomingTimestamp: %q %v", e.Line, e.Timestamp)
	}
	if e.Labels.Get("job") != "test" || e.Labels.Get(syslog.LabelAppName) != "sshd" {
		t.Errorf("labels %v", e.Labels)
	}
	rep := &countingRep{dropped: map[string]int{}}
	p = started(t, rep, &Syslog{DropMalformed: true})
	b, _ = p.Process(context.Background(), ferry.Batch[ferry.Entry]{Items: []ferry.Entry{entry("<999>x"), entry(line)}})
	if len(b.Items) != 1 || b.Items[0].Line != "hello" || rep.dropped["syslog_malformed"] != 1 {
		t.Errorf("DropMalformed: %+v %v", b.Items, rep.dropped)
	}
	// Source: parse an extracted value.
	got, out := extractedOf(t, "ignored", Func(func(c *Context, e *ferry.Entry) bool {
		c.Extracted["msg"] = line
		return true
	}), &Syslog{Source: "msg"})
	if got["hostname"] != "web1" || out[0].Line != "hello" {
		t.Errorf("Source: %v %q", got, out[0].Line)
	}
}

// countingRep counts drops.
type countingRep struct {
	ferry.Reporter
	dropped map[string]int
}

func (r *countingRep) Dropped(reason string, n int) { r.dropped[reason] += n }

// FuzzSyslog: the stage never panics, keeps every entry, and either
// labels it as parsed with a line taken from the input, or leaves the
// line as it was with a parse error label.
func FuzzSyslog(f *testing.F) {
	for _, l := range syslogLines {
		f.Add(l)
	}
	p := started(f, nil, &Syslog{LabelStructuredData: true})
	f.Fuzz(func(t *testing.T, line string) {
		b, err := p.Process(context.Background(), ferry.Batch[ferry.Entry]{Items: []ferry.Entry{entry(line)}})
		if err != nil || len(b.Items) != 1 {
			t.Fatalf("%v %d", err, len(b.Items))
		}
		e := b.Items[0]
		if e.Labels.Has(syslog.LabelParseError) {
			if e.Line != line {
				t.Fatalf("malformed %q changed to %q", line, e.Line)
			}
			return
		}
		if !strings.Contains(line, e.Line) {
			t.Fatalf("line %q not from the input %q", e.Line, line)
		}
	})
}
