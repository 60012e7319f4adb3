package file_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/ferrydev/ferry/discovery/file"
	"github.com/prometheus/prometheus/model/labels"
)

func Example() {
	dir, _ := os.MkdirTemp("", "file-discovery")
	defer os.RemoveAll(dir)
	for _, name := range []string{"app/web.log", "app/old/web.log.gz", "db/pg.log"} {
		os.MkdirAll(filepath.Join(dir, filepath.Dir(name)), 0o755)
		os.WriteFile(filepath.Join(dir, name), nil, 0o644)
	}

	d := &file.Discoverer{Patterns: []file.Pattern{{
		Path:    filepath.Join(dir, "**/*"),
		Exclude: []string{"*.gz"},
		Labels:  labels.FromStrings("job", "varlog"),
	}}}
	// Run(ctx, up) sends the same sets as they change; Targets looks once.
	for _, t := range d.Targets() {
		rel, _ := filepath.Rel(dir, t.Get(file.PathLabel))
		fmt.Println(t.Get("job"), rel)
	}
	// Output:
	// varlog app/web.log
	// varlog db/pg.log
}
