package debugui_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ferrydev/ferry/pipeline/debugui"
	"github.com/prometheus/client_golang/prometheus"
)

// Serve answers the page, the API and /metrics, and stops with its context
// although a live tail is open.
func TestServeStopsWithContext(t *testing.T) {
	p, _ := testPipeline(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(p)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- debugui.Serve(ctx, ln, p, reg) }()
	base := "http://" + ln.Addr().String()

	for path, want := range map[string]string{
		"/":                   "<svg",
		"/-/healthy":          "Ferry is healthy.",
		"/api/v1/health":      `"failing": [`,
		"/metrics":            `ferry_component_health{component="loki",kind="sink",state="failing"} 1`,
		"/component/logs":     "logs",
		"/api/v1/components/": "",
	} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if path == "/api/v1/components/" {
			if resp.StatusCode != 404 {
				t.Errorf("%s: %d", path, resp.StatusCode)
			}
			continue
		}
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Errorf("%s: %d, want %q in:\n%.500s", path, resp.StatusCode, want, body)
		}
	}

	resp, err := http.Get(base + "/api/v1/components/idle/tail?seconds=600")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if l, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil || !strings.HasPrefix(l, `# tail of "idle"`) {
		t.Fatalf("tail start %q: %v", l, err)
	}
	start := time.Now()
	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(debugui.ShutdownTimeout + 5*time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
	if d := time.Since(start); d >= debugui.ShutdownTimeout {
		t.Errorf("Serve took %v to stop: the open tail was waited for", d)
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Error("the listener is still open after Serve returned")
	}
}

func TestListenAndServeBadAddress(t *testing.T) {
	p, _ := testPipeline(t)
	err := debugui.ListenAndServe(context.Background(), "127.0.0.1:-1", p, nil)
	if err == nil {
		t.Fatal("no error for an invalid address")
	}
}

// A nil Gatherer serves the pipeline's metrics with the Go and process
// collectors.
func TestMuxDefaultRegistry(t *testing.T) {
	p, _ := testPipeline(t)
	rec := get(t, debugui.Mux(p, nil), "/metrics")
	for _, want := range []string{"ferry_component_items_in_total{", "go_goroutines ", "process_start_time_seconds "} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
