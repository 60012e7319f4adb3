package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// runUntil runs the agent until cond holds for its output or the time is
// up, then stops it and returns the output.
func runUntil(t *testing.T, args []string, cond func(out string) bool) string {
	t.Helper()
	var out, logs syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, append([]string{"-debug.addr", ""}, args...), nil, &out, &logs) }()
	deadline := time.Now().Add(20 * time.Second)
	for !cond(out.String()) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("agent: %v\nlogs:\n%s", err, logs.String())
	}
	if !cond(out.String()) {
		t.Fatalf("condition not met; output:\n%s\nlogs:\n%s", out.String(), logs.String())
	}
	return out.String()
}

func TestFilesScrapeAndSelfScrapeToConsole(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "app.log")
	os.WriteFile(log, []byte("started\nserving\n"), 0o644)
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		w.Write([]byte("# TYPE demo_requests_total counter\ndemo_requests_total{code=\"200\"} 42\n"))
	}))
	defer page.Close()
	posFile := filepath.Join(dir, "positions.json")
	out := runUntil(t, []string{
		"-files", filepath.Join(dir, "*.log"), "-positions", posFile,
		"-scrape", strings.TrimPrefix(page.URL, "http://"), "-scrape.interval", "200ms", "-self-scrape",
	}, func(out string) bool {
		return strings.Contains(out, "serving") && strings.Contains(out, `{__name__="demo_requests_total", code="200"`) &&
			strings.Contains(out, "ferry_component_items_out_total")
	})
	if !strings.Contains(out, `filename="`+log+`"`) {
		t.Errorf("file lines lack the filename label:\n%s", out)
	}
	if data, err := os.ReadFile(posFile); err != nil || !strings.Contains(string(data), "file/"+log) {
		t.Errorf("positions file: %v %s", err, data)
	}
}

func TestLogsToLoki(t *testing.T) {
	var mu sync.Mutex
	pushes := 0
	loki := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/loki/api/v1/push" && r.Header.Get("Content-Type") == "application/x-protobuf" && r.Header.Get("X-Scope-OrgID") == "team-a" {
			mu.Lock()
			pushes++
			mu.Unlock()
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer loki.Close()
	var out, logs syncBuffer
	if err := run(context.Background(), []string{"-debug.addr", "", "-demo.lines", "3", "-demo.period", "10ms",
		"-loki.url", loki.URL + "/loki/api/v1/push", "-loki.tenant", "team-a", "-self-scrape=false"}, nil, &out, &logs); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if pushes == 0 || out.String() != "" {
		t.Fatalf("pushes %d, console %q, logs:\n%s", pushes, out.String(), logs.String())
	}
}
