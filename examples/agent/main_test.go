package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

func TestDemoReachesConsoleWithinASecond(t *testing.T) {
	var out, logs bytes.Buffer
	start := time.Now()
	if err := run(context.Background(), []string{"-demo.lines", "3", "-demo.period", "10ms"}, nil, &out, &logs); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > time.Second {
		t.Errorf("took %v", time.Since(start))
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], `{agent="ferry", job="agent", source="demo"} method=GET path=/ status=200`) {
		t.Fatalf("output:\n%s\nlogs:\n%s", out.String(), logs.String())
	}
}

func TestStdinToJSON(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "in")
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("first\nsecond\n")
	f.Seek(0, 0)
	var out, logs bytes.Buffer
	if err := run(context.Background(), []string{"-format", "json", "-log.format", "json"}, f, &out, &logs); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out.String(), `"line":`); n != 2 || !strings.Contains(out.String(), `"source":"stdin"`) {
		t.Fatalf("output: %s", out.String())
	}
	if !strings.Contains(logs.String(), `"msg":"agent stopped"`) {
		t.Fatalf("logs: %s", logs.String())
	}
}

func TestBadFlag(t *testing.T) {
	var out, logs bytes.Buffer
	if err := run(context.Background(), []string{"-no-such-flag"}, nil, &out, &logs); err == nil {
		t.Fatal("accepted an unknown flag")
	}
}
