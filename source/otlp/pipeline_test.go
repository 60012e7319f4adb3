package otlp_test

import (
	"bytes"
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/internal/poll"
	"github.com/ferrydev/ferry/pipeline"
	"github.com/ferrydev/ferry/sink/sinktest"
	"github.com/ferrydev/ferry/source/otlp"
)

// TestPipeline runs both receivers in a pipeline, which starts them (and
// so the Server), runs and closes them: an export is answered 200 only once
// the sink took it, 503 while the sink fails, and nothing listens after Run.
func TestPipeline(t *testing.T) {
	srv := &otlp.Server{Addr: "127.0.0.1:0"}
	logs := &otlp.LogsReceiver{Server: srv, Limits: otlp.Limits{RequestTimeout: 5 * time.Second}}
	metrics := &otlp.MetricsReceiver{Server: srv}
	logSink, metricSink := &sinktest.Sink[ferry.Entry]{}, &sinktest.Sink[ferry.Sample]{}
	b := pipeline.New()
	pipeline.To(b, "logs-out", logSink, pipeline.FromSource(b, "otlp-logs", logs))
	pipeline.To(b, "metrics-out", metricSink, pipeline.FromSource(b, "otlp-metrics", metrics))
	p, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()

	body := []byte(`{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":"hello"}}]}]}]}`)
	post := func() int {
		a := srv.ListenAddr()
		if a == nil {
			return 0
		}
		resp, err := http.Post("http://"+a.String()+otlp.LogsPath, "application/json", bytes.NewReader(body))
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// Until the pipeline started the receivers, the server does not listen.
	poll.Until(t, func() bool { return post() == http.StatusOK }, "a request to be accepted")
	if items := logSink.Items(); len(items) == 0 || items[0].Line != "hello" {
		t.Fatalf("sink got %v", items)
	}
	logSink.FailNext(1, nil)
	if status := post(); status != http.StatusServiceUnavailable {
		t.Errorf("with the sink failing: status %d, want 503", status)
	}
	addr := srv.ListenAddr().String()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return")
	}
	if _, err := http.Get("http://" + addr + "/ready"); err == nil {
		t.Error("the server still listens after Run returned")
	}
}
