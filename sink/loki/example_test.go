package loki_test

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/sink/loki"
	"github.com/ferrydev/ferry/source/lokipush"
	"github.com/prometheus/prometheus/model/labels"
)

// A Sink pushes entries to a Loki push API, here Ferry's own receiver.
func ExampleSink() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	received := make(chan ferry.Batch[ferry.Entry], 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := &lokipush.Server{Listener: ln}
	if err := srv.Start(ctx, ferry.NopReporter()); err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close(context.Background())
	go srv.Run(ctx, received)

	s := &loki.Sink{
		URL:            "http://" + ln.Addr().String() + "/loki/api/v1/push",
		TenantID:       "team-a",
		ExternalLabels: labels.FromStrings("cluster", "eu-1"),
		BatchWait:      10 * time.Millisecond,
	}
	if err := s.Start(ctx, ferry.NopReporter()); err != nil { // a pipeline calls Start itself
		fmt.Println(err)
		return
	}
	acked := make(chan error, 1)
	s.Send(ctx, ferry.NewBatch([]ferry.Entry{{
		Labels:    labels.FromStrings("app", "web", "__path__", "/var/log/web.log"),
		Timestamp: time.Unix(1700000000, 0),
		Line:      "GET /index.html 200",
		Metadata:  labels.FromStrings("trace_id", "abc"),
	}}, func(err error) { acked <- err }))

	b := <-received
	for _, e := range b.Items {
		fmt.Println(e.Labels, e.Line, e.Metadata)
	}
	b.Done(nil)
	fmt.Println("acknowledged:", <-acked)

	closeCtx, done := context.WithTimeout(ctx, 5*time.Second)
	defer done()
	fmt.Println("closed:", s.Close(closeCtx))
	// Output:
	// {__tenant_id__="team-a", app="web", cluster="eu-1"} GET /index.html 200 {trace_id="abc"}
	// acknowledged: <nil>
	// closed: <nil>
}
