package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the agent's logger and a test
// reading it at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// failingWriter is a standard output that cannot be written: the console
// sink fails on every batch.
type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) {
	return 0, errors.New("write /dev/stdout: broken pipe")
}

var reDebugAddr = regexp.MustCompile(`msg="debug page listening" addr=(http://\S+/)`)

// startAgent runs the agent with args until the test ends, and returns
// the URL of its debug page.
func startAgent(t *testing.T, stdout io.Writer, args ...string) string {
	t.Helper()
	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"-debug.addr", "127.0.0.1:0", "-drain", "1s"}, args...), nil, stdout, logs)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if _, broken := stdout.(failingWriter); err != nil && !(broken && strings.Contains(err.Error(), "broken pipe")) {
				t.Errorf("agent: %v\n%s", err, logs.String())
			}
		case <-time.After(10 * time.Second):
			t.Errorf("agent did not stop\n%s", logs.String())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if m := reDebugAddr.FindStringSubmatch(logs.String()); m != nil {
			return m[1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("debug page did not start:\n%s", logs.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func fetch(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestDebugServer(t *testing.T) {
	var out syncBuffer
	base := startAgent(t, &out, "-demo.lines", "0", "-demo.period", "5ms")
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body := fetch(t, base+"-/ready")
		if code == 200 && body == "Ferry is ready.\n" && strings.Contains(out.String(), "method=GET") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready: %d %s", code, body)
		}
		time.Sleep(10 * time.Millisecond)
	}
	code, body := fetch(t, base+"metrics")
	for _, want := range []string{`ferry_component_items_out_total{component="demo",kind="source"}`, "go_goroutines ", "process_resident_memory_bytes "} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if code, body := fetch(t, base); code != 200 || !strings.Contains(body, `data-component="console"`) {
		t.Errorf("debug page %d:\n%s", code, body)
	}
}

func TestDebugFlag(t *testing.T) {
	c, err := parseFlags(nil)
	if err != nil || c.debug.addr != defaultDebugAddr || c.debug.set {
		t.Fatalf("default: %+v %v", c.debug, err)
	}
	c, err = parseFlags([]string{"-debug.addr", ""})
	if err != nil || c.debug.addr != "" || !c.debug.set {
		t.Fatalf("disabled: %+v %v", c.debug, err)
	}
	// An address asked for must work; the default may be taken.
	var out, logs bytes.Buffer
	err = run(context.Background(), []string{"-debug.addr", "256.0.0.1:1", "-demo.lines", "1", "-demo.period", "1ms"}, nil, &out, &logs)
	if err == nil {
		t.Error("agent ran with an address it cannot listen on")
	}
}
