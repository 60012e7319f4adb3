package file

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/prometheus/prometheus/model/labels"
)

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, path string
		want          bool
	}{
		{"/var/log/*.log", "/var/log/a.log", true},
		{"/var/log/*.log", "/var/log/x/a.log", false},
		{"/var/log/**/*.log", "/var/log/a.log", true},
		{"/var/log/**/*.log", "/var/log/x/y/a.log", true},
		{"/var/log/**", "/var/log/x/y/a.log", true},
		{"/var/**/app/*.log", "/var/log/app/a.log", true},
		{"/var/**/app/*.log", "/var/app/a.log", true},
		{"/var/**/app/*.log", "/var/log/other/a.log", false},
		{"/var/**/**/a", "/var/a", true},
		{"a/?.txt", "a/b.txt", true},
		{"a/[bc].txt", "a/d.txt", false},
		{"a/[", "a/[", false}, // malformed
	} {
		if got := Match(tc.pattern, tc.path); got != tc.want {
			t.Errorf("Match(%q, %q) = %v", tc.pattern, tc.path, got)
		}
	}
}

func mkfile(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func paths(set []labels.Labels) []string {
	var out []string
	for _, ls := range set {
		out = append(out, ls.Get(PathLabel))
	}
	return out
}

func TestTargets(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"a.log", "b.txt", "sub/c.log", "sub/deep/d.log", "sub/deep/skip.log", "other/e.log"} {
		mkfile(t, filepath.Join(dir, p))
	}
	d := &Discoverer{Patterns: []Pattern{
		{Path: dir + "/**/*.log", Exclude: []string{"skip.log", dir + "/other/*"}, Labels: labels.FromStrings("job", "logs")},
		{Path: dir + "/*.txt", Labels: labels.FromStrings("job", "txt")},
		{Path: dir + "/*.log", Labels: labels.FromStrings("job", "dup")}, // a.log already matched
	}}
	got := d.Targets()
	want := []string{dir + "/a.log", dir + "/b.txt", dir + "/sub/c.log", dir + "/sub/deep/d.log"}
	if !slices.Equal(paths(got), want) {
		t.Fatalf("paths %q, want %q", paths(got), want)
	}
	if got[0].Get("job") != "logs" || got[1].Get("job") != "txt" {
		t.Errorf("labels %v", got)
	}
}

func TestFromLabels(t *testing.T) {
	ps := FromLabels([]labels.Labels{
		labels.FromStrings(PathLabel, "/var/log/*.log", PathExcludeLabel, "*.gz", "job", "varlog"),
		labels.FromStrings("job", "nopath"),
	})
	if len(ps) != 1 || ps[0].Path != "/var/log/*.log" || !slices.Equal(ps[0].Exclude, []string{"*.gz"}) ||
		!labels.Equal(ps[0].Labels, labels.FromStrings("job", "varlog")) {
		t.Fatalf("%+v", ps)
	}
}

func TestValidate(t *testing.T) {
	d := &Discoverer{Patterns: []Pattern{{Path: "/a/["}, {Path: ""}}}
	if err := d.Validate(); err == nil {
		t.Fatal("no error")
	}
	if err := d.Run(context.Background(), nil); !ferry.IsPermanent(err) {
		t.Fatalf("Run: %v", err)
	}
}

func recv(t *testing.T, up chan []labels.Labels) []string {
	t.Helper()
	select {
	case set := <-up:
		return paths(set)
	case <-time.After(5 * time.Second):
		t.Fatal("no target set")
		return nil
	}
}

func TestRunAppearDisappear(t *testing.T) {
	for _, watch := range []bool{true, false} {
		t.Run(map[bool]string{true: "fsnotify", false: "polling"}[watch], func(t *testing.T) {
			dir := t.TempDir()
			mkfile(t, filepath.Join(dir, "a.log"))
			d := &Discoverer{Patterns: []Pattern{{Path: dir + "/**/*.log"}}, DisableWatch: !watch}
			if !watch {
				d.RefreshInterval = 20 * time.Millisecond
			}
			up := make(chan []labels.Labels)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error)
			go func() { done <- d.Run(ctx, up) }()
			if got := recv(t, up); !slices.Equal(got, []string{dir + "/a.log"}) {
				t.Fatalf("first set %q", got)
			}
			// A file in a new subdirectory.
			mkfile(t, filepath.Join(dir, "new/b.log"))
			if got := recv(t, up); !slices.Equal(got, []string{dir + "/a.log", dir + "/new/b.log"}) {
				t.Fatalf("second set %q", got)
			}
			os.Remove(filepath.Join(dir, "a.log"))
			if got := recv(t, up); !slices.Equal(got, []string{dir + "/new/b.log"}) {
				t.Fatalf("third set %q", got)
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestSD(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "targets.json")
	os.WriteFile(p, []byte(`[{"targets":["a:1","b:2"],"labels":{"env":"prod"}},{"targets":["c:3"]}]`), 0o644)
	s := &SD{Files: []string{dir + "/*.json"}, RefreshInterval: 20 * time.Millisecond, DisableWatch: true}
	up := make(chan []labels.Labels)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx, up)
	set := <-up
	if len(set) != 3 || set[0].Get(AddressLabel) != "a:1" || set[0].Get("env") != "prod" ||
		set[2].Get(FilePathLabel) != p || set[2].Has("env") {
		t.Fatalf("%v", set)
	}
	// A broken file keeps its last targets; a fixed one updates them.
	os.WriteFile(p, []byte(`[{"targets":`), 0o644)
	os.WriteFile(p, []byte(`[{"targets":["d:4"]}]`), 0o644)
	set = <-up
	if len(set) != 1 || set[0].Get(AddressLabel) != "d:4" {
		t.Fatalf("%v", set)
	}
	if _, err := ParseSD("x", []byte(`[{"targets":[""]}]`)); err == nil || !strings.Contains(err.Error(), "empty target") {
		t.Fatalf("err %v", err)
	}
	ys, err := ParseSD("t.yml", []byte("- targets: ['a:1']\n  labels:\n    env: dev\n"))
	if err != nil || len(ys) != 1 || ys[0].Get("env") != "dev" || ys[0].Get(AddressLabel) != "a:1" {
		t.Fatalf("yaml: %v %v", ys, err)
	}
	if _, err := ParseSD("t.yaml", []byte("- targets: ['a:1']\n  bogus: 1\n")); err == nil {
		t.Fatal("unknown YAML field accepted")
	}
}

func TestIgnoreOlderThan(t *testing.T) {
	dir := t.TempDir()
	mkfile(t, filepath.Join(dir, "new.log"))
	mkfile(t, filepath.Join(dir, "old.log"))
	past := time.Now().Add(-48 * time.Hour)
	os.Chtimes(filepath.Join(dir, "old.log"), past, past)
	d := &Discoverer{Patterns: []Pattern{{Path: dir + "/*.log"}}, IgnoreOlderThan: time.Hour}
	if got := paths(d.Targets()); !slices.Equal(got, []string{dir + "/new.log"}) {
		t.Fatalf("%q", got)
	}
}

func TestRelativeAndLiteral(t *testing.T) {
	dir := t.TempDir()
	mkfile(t, filepath.Join(dir, "x", "app.log"))
	t.Chdir(dir)
	for _, pat := range []string{"x/app.log", "x/*.log", "**/app.log", "./x/../x/app.log"} {
		d := &Discoverer{Patterns: []Pattern{{Path: pat}}}
		if got := paths(d.Targets()); !slices.Equal(got, []string{"x/app.log"}) {
			t.Errorf("%s: %q", pat, got)
		}
	}
}
