package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrydev/ferry/internal/dockertest"
)

func TestMain(m *testing.M) { dockertest.Main(m) }

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

// A real container's lines reach the console with the container label.
func TestFollowsARealContainer(t *testing.T) {
	c := dockertest.Client(t)
	name := fmt.Sprintf("ferry-docker-logs-example-%d", os.Getpid())
	dockertest.Run(t, c, dockertest.Spec{Name: name, Lines: 5})
	var out syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, &out) }()
	want := `container="` + name + `"`
	deadline := time.Now().Add(30 * time.Second)
	for strings.Count(out.String(), want) < 5 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out.String(), want); n < 5 {
		t.Fatalf("%d lines with %s; output:\n%s", n, want, out.String())
	}
}
