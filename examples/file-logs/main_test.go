package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
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

func TestTailsAndLabelsLevel(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "app"), 0o755)
	os.WriteFile(filepath.Join(dir, "app", "a.log"), []byte("level=info msg=started\nlevel=error msg=\"disk full\"\n"), 0o644)
	var out syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-files", filepath.Join(dir, "**", "*.log"), "-positions", filepath.Join(dir, "pos.json")}, &out)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), "disk full") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got := out.String()
	if !strings.Contains(got, `level="error"`) || !strings.Contains(got, `level="info"`) || !strings.Contains(got, `filename="`) {
		t.Fatalf("output:\n%s", got)
	}
}

func TestNeedsFiles(t *testing.T) {
	if err := run(context.Background(), nil, &syncBuffer{}); err == nil {
		t.Fatal("ran without -files")
	}
}
