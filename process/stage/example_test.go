package stage_test

import (
	"context"
	"fmt"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/process/stage"
	"github.com/prometheus/prometheus/model/labels"
)

func Example() {
	// Container logs written by containerd: CRI format, JSON inside.
	p, err := stage.New(
		&stage.CRI{},
		&stage.JSON{Expressions: map[string]string{"level": "", "msg": "", "user": "ctx.user"}},
		&stage.Drop{Source: []string{"level"}, Value: "debug", Reason: "debug"},
		&stage.Labels{Values: map[string]string{"level": ""}},
		&stage.StructuredMetadata{Values: map[string]string{"user": ""}},
		&stage.Output{Source: "msg"},
	)
	if err != nil {
		panic(err)
	}
	// A pipeline starts its components; a program that calls Process
	// itself starts the Processor first.
	if err := p.Start(context.Background(), ferry.NopReporter()); err != nil {
		panic(err)
	}
	ls := labels.FromStrings("job", "pods")
	in := []ferry.Entry{
		{Labels: ls, Line: `2026-11-25T13:28:58.1Z stdout F {"level":"info","msg":"started","ctx":{"user":"bob"}}`},
		{Labels: ls, Line: `2026-11-25T13:28:58.2Z stdout F {"level":"debug","msg":"noise"}`},
		{Labels: ls, Line: `2026-11-25T13:28:58.3Z stderr F not json at all`},
	}
	b, _ := p.Process(context.Background(), ferry.NewBatch(in, nil))
	for _, e := range b.Items {
		fmt.Println(e.Timestamp.Format("15:04:05.0"), e.Labels, e.Metadata, e.Line)
	}
	fmt.Println("not JSON:", p.Failures()["json_malformed"])
	// Output:
	// 13:28:58.1 {job="pods", level="info", stream="stdout"} {user="bob"} started
	// 13:28:58.3 {job="pods", stream="stderr"} {} not json at all
	// not JSON: 1
}

// A file that rsyslog writes (/var/log/syslog), read by a file source:
// the Syslog stage gives its lines the labels the syslog source gives,
// and a Labels stage keeps two of them.
func ExampleSyslog() {
	p, err := stage.New(
		&stage.Syslog{},
		&stage.Labels{Values: map[string]string{"host": "hostname", "unit": "app_name"}},
	)
	if err != nil {
		panic(err)
	}
	if err := p.Start(context.Background(), ferry.NopReporter()); err != nil {
		panic(err)
	}
	ls := labels.FromStrings("job", "syslog")
	in := []ferry.Entry{
		{Labels: ls, Line: "Dec  4 10:11:12 web1 sshd[4242]: Accepted publickey for deploy"},
		{Labels: ls, Line: "<165>1 2026-12-04T10:11:12.003Z web2 nginx 7 - - GET /"},
	}
	b, _ := p.Process(context.Background(), ferry.NewBatch(in, nil))
	for _, e := range b.Items {
		fmt.Println(e.Labels.Get("host"), e.Labels.Get("unit"), e.Labels.Get("__syslog_message_severity"), e.Line)
	}
	// Output:
	// web1 sshd notice Accepted publickey for deploy
	// web2 nginx notice GET /
}
