package syslog_test

import (
	"context"
	"fmt"
	"net"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/source/syslog"
	"github.com/prometheus/prometheus/model/labels"
)

func Example() {
	src := &syslog.Source{
		Addr:                  "127.0.0.1:0", // usually ":514" or ":601"
		Labels:                labels.FromStrings("job", "syslog"),
		LabelStructuredData:   true,
		DisableHostnameLookup: true,
	}
	// A pipeline calls Start, Run and Close; a direct user does it too.
	if err := src.Start(context.Background(), ferry.NopReporter()); err != nil {
		panic(err)
	}
	defer src.Close(context.Background())
	out := make(chan ferry.Batch[ferry.Entry], 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- src.Run(ctx, out) }()

	// A sender: RFC 5424, octet-counted, then RFC 3164, newline-framed.
	c, _ := net.Dial("tcp", src.LocalAddr().String())
	m := `<165>1 2026-12-04T10:00:00Z web1 nginx 42 - [req@32473 id="7"] GET / 200`
	fmt.Fprintf(c, "%d %s<30>Dec  4 10:00:01 web1 sshd[9]: Accepted publickey\n", len(m), m)
	c.Close()

	for n := 0; n < 2; {
		b := <-out
		for _, e := range b.Items {
			fmt.Println(e.Labels.Get(syslog.LabelAppName), e.Labels.Get(syslog.LabelSeverity),
				e.Labels.Get("__syslog_message_sd_req_32473_id"), e.Line)
			n++
		}
		b.Done(nil)
	}
	cancel()
	<-done
	// Output:
	// nginx notice 7 GET / 200
	// sshd informational  Accepted publickey
}
