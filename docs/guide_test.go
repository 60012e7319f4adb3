package docs

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite migration.md from the snippets, files and line counts")

const guide = "migration.md"

var (
	snippetStart = regexp.MustCompile(`^(\s*)// snippet: (\S+)$`)
	snippetEnd   = regexp.MustCompile(`^\s*// end snippet$`)
	mdMarker     = regexp.MustCompile(`^<!-- (snippet|file): (\S+) -->$`)
)

// The three versions of the migration scenario whose lengths the guide
// compares.
var counted = []struct{ name, path string }{
	{"Promtail (logs only)", "testdata/promtail.yaml"},
	{"Alloy", "testdata/config.alloy"},
	{"Ferry", "../examples/alloy-migration/main.go"},
}

// snippets returns the regions of snippets_test.go by name, without the
// indentation of their markers.
func snippets(t *testing.T) map[string]string {
	t.Helper()
	src, err := os.ReadFile("snippets_test.go")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	var name, indent string
	var body []string
	for i, line := range strings.Split(string(src), "\n") {
		switch m := snippetStart.FindStringSubmatch(line); {
		case m != nil:
			if name != "" {
				t.Fatalf("snippets_test.go:%d: snippet %s inside %s", i+1, m[2], name)
			}
			indent, name, body = m[1], m[2], nil
		case snippetEnd.MatchString(line):
			if name == "" {
				t.Fatalf("snippets_test.go:%d: end without snippet", i+1)
			}
			if _, dup := out[name]; dup {
				t.Fatalf("snippets_test.go:%d: snippet %s twice", i+1, name)
			}
			out[name] = strings.Join(body, "\n")
			name = ""
		case name != "":
			body = append(body, strings.TrimPrefix(line, indent))
		}
	}
	if name != "" {
		t.Fatalf("snippets_test.go: snippet %s not ended", name)
	}
	return out
}

// lineCounts returns the markdown table of the lengths of the three
// versions: all lines, and lines that are neither blank nor comments.
func lineCounts(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("| version | file | lines | without blank lines and comments |\n| --- | --- | ---: | ---: |\n")
	for _, c := range counted {
		src, err := os.ReadFile(c.path)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(string(src), "\n"), "\n")
		code := 0
		for _, l := range lines {
			l = strings.TrimSpace(l)
			if l != "" && !strings.HasPrefix(l, "//") && !strings.HasPrefix(l, "#") {
				code++
			}
		}
		fmt.Fprintf(&b, "| %s | [%s](%s) | %d | %d |\n", c.name, filepath.Base(c.path), c.path, len(lines), code)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// render returns the guide with every marked block replaced by what it
// shows: a snippet, a file, the line counts.
func render(t *testing.T, md string) string {
	t.Helper()
	snips := snippets(t)
	used := map[string]bool{}
	lines := strings.Split(md, "\n")
	var out []string
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		out = append(out, line)
		if line == "<!-- lines -->" {
			out = append(out, lineCounts(t))
			for i++; i < len(lines) && lines[i] != "<!-- end lines -->"; i++ {
			}
			if i == len(lines) {
				t.Fatalf("%s:%d: <!-- lines --> without <!-- end lines -->", guide, i+1)
			}
			out = append(out, lines[i])
			continue
		}
		if strings.HasPrefix(line, "```go") {
			t.Errorf("%s:%d: Go block without a <!-- snippet: NAME --> marker: it would not be tested", guide, i+1)
		}
		m := mdMarker.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		var content string
		switch m[1] {
		case "snippet":
			s, ok := snips[m[2]]
			if !ok {
				t.Errorf("%s:%d: no snippet %q in snippets_test.go", guide, i+1, m[2])
			}
			used[m[2]] = true
			content = s
		case "file":
			b, err := os.ReadFile(m[2])
			if err != nil {
				t.Errorf("%s:%d: %v", guide, i+1, err)
			}
			content = strings.TrimSuffix(string(b), "\n")
		}
		if i+1 == len(lines) || !strings.HasPrefix(lines[i+1], "```") {
			t.Fatalf("%s:%d: marker not followed by a fenced block", guide, i+1)
		}
		i++
		out = append(out, lines[i], content)
		for i++; i < len(lines) && lines[i] != "```"; i++ {
		}
		if i == len(lines) {
			t.Fatalf("%s: block after line %d not closed", guide, i+1)
		}
		out = append(out, "```")
	}
	for name := range snips {
		if !used[name] {
			t.Errorf("snippet %q is not in %s", name, guide)
		}
	}
	return strings.Join(out, "\n")
}

// TestGuideInSync fails when a Go snippet, an included file or the line
// counts of migration.md differ from the code they come from. With -update
// it rewrites the guide instead.
func TestGuideInSync(t *testing.T) {
	md, err := os.ReadFile(guide)
	if err != nil {
		t.Fatal(err)
	}
	want := render(t, string(md))
	if want == string(md) {
		return
	}
	if *update {
		if err := os.WriteFile(guide, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got := strings.Split(string(md), "\n")
	for i, w := range strings.Split(want, "\n") {
		if i >= len(got) || got[i] != w {
			t.Fatalf("%s is out of date from line %d: run go test ./docs -run TestGuideInSync -update\n got: %q\nwant: %q", guide, i+1, at(got, i), w)
		}
	}
	t.Fatalf("%s has extra lines at the end: run go test ./docs -run TestGuideInSync -update", guide)
}

func at(s []string, i int) string {
	if i < len(s) {
		return s[i]
	}
	return "<end of file>"
}
