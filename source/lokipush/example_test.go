package lokipush_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/source/lokipush"
)

// A Server receives a JSON push and emits its entries. A program that runs
// it outside a pipeline calls Start and Close itself.
func ExampleServer() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	srv := &lokipush.Server{Listener: ln}
	if err := srv.Start(context.Background(), ferry.NopReporter()); err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close(context.Background())
	out := make(chan ferry.Batch[ferry.Entry], 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error)
	go func() { done <- srv.Run(ctx, out) }()

	body := `{"streams":[{"stream":{"app":"web"},"values":[["1700000000000000000","hello",{"trace_id":"abc"}]]}]}`
	req, _ := http.NewRequest("POST", "http://"+ln.Addr().String()+"/loki/api/v1/push", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Scope-OrgID", "team-a")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	fmt.Println("status", resp.StatusCode)

	b := <-out
	for _, e := range b.Items {
		fmt.Println(e.Labels, e.Timestamp.UTC().Format("2006-01-02T15:04:05Z"), e.Line, e.Metadata)
	}
	b.Done(nil)
	cancel()
	fmt.Println("run:", <-done)
	// Output:
	// status 204
	// {__tenant_id__="team-a", app="web"} 2023-11-14T22:13:20Z hello {trace_id="abc"}
	// run: <nil>
}
