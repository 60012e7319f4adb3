package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ferrydev/ferry/internal/peers"
)

// artifactsDir is where the browser test leaves its screenshots:
// FERRY_ARTIFACTS_DIR, or ferry-artifacts in the temporary directory.
func artifactsDir(t *testing.T) string {
	dir := os.Getenv("FERRY_ARTIFACTS_DIR")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "ferry-artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// The agent's debug page in a real browser: after the console sink is
// made to fail (its standard output cannot be written), the graph shows
// every component, the sink red and the others green.
func TestDebugPageInChromium(t *testing.T) {
	bin := peers.Chromium(t)
	// The agent's Run reports that the console could not be closed
	// either; that is expected here.
	base := startAgent(t, failingWriter{}, "-demo.lines", "0", "-demo.period", "10ms", "-self-scrape=false")

	want := map[string]struct{ kind, health, color string }{
		"demo":    {"source", "healthy", "#2e9e44"},
		"labels":  {"processor", "healthy", "#2e9e44"},
		"console": {"sink", "failing", "#d93025"},
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, body := fetch(t, base+"api/v1/components")
		var list struct {
			Components []struct{ Name, Health string }
		}
		json.Unmarshal([]byte(body), &list)
		ok := len(list.Components) == len(want)
		for _, c := range list.Components {
			ok = ok && want[c.Name].health == c.Health
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("components did not reach the expected health:\n%s", body)
		}
		time.Sleep(10 * time.Millisecond)
	}

	dom := peers.Browse(t, bin, base+"?refresh=0", "--dump-dom")
	for name, w := range want {
		node := regexp.MustCompile(`<a [^>]*class="node" data-component="` + name + `" data-kind="` + w.kind +
			`" data-health="` + w.health + `" data-fill="` + w.color + `">\s*<title>[^<]*</title>\s*<rect [^>]*stroke="` + w.color + `"[^>]*>(?:</rect>)?\s*<rect class="health" [^>]*fill="` + w.color + `"`)
		if !node.MatchString(dom) {
			t.Errorf("the graph does not show %s as %s (%s)", name, w.health, w.color)
		}
		row := regexp.MustCompile(`<tr data-component="` + name + `" data-health="` + w.health + `">[\s\S]*?<span class="badge" style="background: ` + w.color + `;?"`)
		if !row.MatchString(dom) {
			t.Errorf("the table does not show %s as %s", name, w.health)
		}
	}
	for _, s := range []string{"write /dev/stdout: broken pipe", `class="ready notready"`, "2 healthy", "1 failing"} {
		if !strings.Contains(dom, s) {
			t.Errorf("the page lacks %q", s)
		}
	}
	if t.Failed() {
		t.Logf("DOM:\n%s", dom)
	}

	dir := artifactsDir(t)
	for file, page := range map[string]string{
		"agent-debug-page.png":      base + "?refresh=0",
		"agent-debug-component.png": base + "component/console?refresh=0",
	} {
		path := filepath.Join(dir, file)
		os.Remove(path)
		peers.Browse(t, bin, page, "--screenshot="+path, "--window-size=1200,800")
		b, err := os.ReadFile(path)
		if err != nil || !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) || len(b) < 10_000 {
			t.Fatalf("screenshot %s: %d bytes, %v", path, len(b), err)
		}
		t.Logf("screenshot of %s: %s", page, path)
	}
}
