package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestDemoReachesConsoleWithinASecond(t *testing.T) {
	var out, logs bytes.Buffer
	start := time.Now()
	if err := run(context.Background(), []string{"-demo.lines", "3", "-demo.period", "10ms", "-self-scrape=false"}, nil, &out, &logs); err != nil {
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

// With default flags and no input, the agent prints the demo and the
// samples it scraped from its own /metrics over HTTP, and stops by itself.
// With the debug server off it reads its registry in process instead.
func TestDemoScrapesItselfAndEnds(t *testing.T) {
	for _, tc := range []struct {
		debugAddr string
		http      bool
	}{{"127.0.0.1:0", true}, {"", false}} {
		t.Run(fmt.Sprintf("debug.addr=%q", tc.debugAddr), func(t *testing.T) {
			var out, logs syncBuffer
			done := make(chan error, 1)
			go func() { done <- run(context.Background(), []string{"-debug.addr", tc.debugAddr}, nil, &out, &logs) }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("agent: %v\nlogs:\n%s", err, logs.String())
				}
			case <-time.After(15 * time.Second):
				t.Fatalf("agent did not stop by itself; logs:\n%s", logs.String())
			}
			o := out.String()
			if n := strings.Count(o, `{agent="ferry", job="agent", source="demo"} method=GET`); n != 12 {
				t.Errorf("%d demo lines, want 12", n)
			}
			// scrape_series_added comes from scrape.Scraper only, not from
			// gather.Source, and only a scrape has the endpoint's address
			// as instance.
			instance := `instance="[^"]+"`
			if m := reDebugAddr.FindStringSubmatch(logs.String()); m != nil {
				instance = regexp.QuoteMeta(`instance="` + strings.TrimSuffix(strings.TrimPrefix(m[1], "http://"), "/") + `"`)
			} else if tc.http {
				t.Fatalf("no debug address in the logs:\n%s", logs.String())
			}
			for _, want := range []string{
				`\{__name__="up", ` + instance + `, job="ferry"\} 1 @`,
				`\{__name__="go_goroutines", ` + instance + `, job="ferry"\} \d+ @`,
			} {
				if !regexp.MustCompile(want).MatchString(o) {
					t.Errorf("output lacks %s", want)
				}
			}
			if scraped := strings.Contains(o, `{__name__="scrape_series_added", `); scraped != tc.http {
				t.Errorf("scrape_series_added in the output: %v, want %v", scraped, tc.http)
			}
			if t.Failed() {
				t.Logf("output:\n%s\nlogs:\n%s", o, logs.String())
			}
		})
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
