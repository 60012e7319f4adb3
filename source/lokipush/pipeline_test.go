package lokipush

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/pipeline"
	"github.com/ferrydev/ferry/sink/sinktest"
)

// TestAddressInUseFailsRun checks that a Server whose address is taken
// fails the pipeline's Run at start, once, instead of restarting.
func TestAddressInUseFailsRun(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	b := pipeline.New(pipeline.WithLogger(slog.New(slog.DiscardHandler)))
	pipeline.To(b, "sink", &sinktest.Sink[ferry.Entry]{}, pipeline.FromSource(b, "push", &Server{Addr: ln.Addr().String()}))
	p, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = p.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), `"push": start`) || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("Run: %v", err)
	}
	if ctx.Err() != nil {
		t.Fatal("Run ran until its context ended")
	}
}

// TestServerInPipeline pushes into a Server run by a pipeline, stops the
// pipeline, and checks that the push was delivered and that the server is
// closed after Run.
func TestServerInPipeline(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	out := &sinktest.Sink[ferry.Entry]{}
	b := pipeline.New(pipeline.WithLogger(slog.New(slog.DiscardHandler)))
	pipeline.To(b, "sink", out, pipeline.FromSource(b, "push", &Server{Listener: ln, Receiver: Receiver{WaitForAck: true}}))
	p, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	resp, err := http.Post("http://"+addr+"/loki/api/v1/push", "application/json", strings.NewReader(jsonBody))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("push: %d", resp.StatusCode)
	}
	if out.Len() != 3 {
		t.Fatalf("sink has %d entries, want 3", out.Len())
	}
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
		t.Error("server still answers after the pipeline stopped")
	}
}
