package otlp_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/sink/otlp"
	"github.com/prometheus/prometheus/model/labels"
	logspb "go.opentelemetry.io/proto/otlp/logs/v1"
	"google.golang.org/protobuf/proto"
)

// A LogsSink sends two entries of one stream to an OTLP/HTTP endpoint (here
// a test server that prints what it receives); the batch is acknowledged
// once the endpoint accepted them.
func Example() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var ld logspb.LogsData
		if err := proto.Unmarshal(body, &ld); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		for _, rl := range ld.ResourceLogs {
			fmt.Println("resource:", rl.GetResource().GetAttributes()[0].GetKey(), "=", rl.GetResource().GetAttributes()[0].GetValue().GetStringValue())
			for _, rec := range rl.GetScopeLogs()[0].GetLogRecords() {
				fmt.Println("record:", rec.GetSeverityText(), rec.GetBody().GetStringValue())
			}
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer srv.Close()

	s := &otlp.LogsSink{Config: otlp.Config{URL: srv.URL + "/v1/logs", BatchWait: 10 * time.Millisecond}}
	if err := s.Start(context.Background(), ferry.NopReporter()); err != nil {
		panic(err)
	}
	stream := labels.FromStrings("service_name", "checkout")
	acked := make(chan error, 1)
	s.Send(context.Background(), ferry.NewBatch([]ferry.Entry{
		{Labels: stream, Line: "order placed", Metadata: labels.FromStrings("severity_text", "INFO")},
		{Labels: stream, Line: "payment failed", Metadata: labels.FromStrings("severity_text", "ERROR")},
	}, func(err error) { acked <- err }))
	fmt.Println("acknowledged:", <-acked)
	s.Close(context.Background())
	// Output:
	// resource: service.name = checkout
	// record: INFO order placed
	// record: ERROR payment failed
	// acknowledged: <nil>
}
