package otlp_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/source/otlp"
)

// A LogsReceiver on a Server of its own: a client posts one OTLP/JSON log
// record, the entry arrives on the pipeline's channel, and the client's
// answer comes once the entry is acknowledged.
func Example() {
	srv := &otlp.Server{Addr: "127.0.0.1:0"}
	logs := &otlp.LogsReceiver{Server: srv}
	ctx, cancel := context.WithCancel(context.Background())
	if err := logs.Start(ctx, ferry.NopReporter()); err != nil {
		panic(err)
	}
	defer logs.Close(context.Background())

	out := make(chan ferry.Batch[ferry.Entry], 1)
	done := make(chan error)
	go func() { done <- logs.Run(ctx, out) }()
	go func() {
		b := <-out
		for _, e := range b.Items {
			fmt.Println(e.Labels, e.Line, e.Metadata)
		}
		b.Done(nil) // delivered: the client gets 200
	}()

	body := `{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"checkout"}}]},
	  "scopeLogs":[{"logRecords":[{"timeUnixNano":"1796378400000000000","severityText":"INFO","body":{"stringValue":"order placed"}}]}]}]}`
	url := "http://" + srv.ListenAddr().String() + otlp.LogsPath
	for {
		resp, err := http.Post(url, "application/json", bytes.NewBufferString(body))
		if err != nil {
			panic(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable {
			continue // Run has not started yet
		}
		fmt.Println(resp.Status)
		break
	}
	cancel()
	fmt.Println("Run returned", <-done)
	// Output:
	// {service_name="checkout"} order placed {severity_text="INFO"}
	// 200 OK
	// Run returned <nil>
}
