// Package file discovers local files, as Alloy's local.file_match and
// Promtail's file targets do, and reads Prometheus file_sd target files.
//
// A Discoverer turns glob patterns into one target per matching file, with
// the file's path in __path__ and the pattern's labels carried along: the
// input of source/filetail. It looks again whenever a watched directory
// changes (fsnotify) and every RefreshInterval, and sends the full set
// whenever it changed.
package file

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/discovery"
	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/prometheus/model/labels"
)

// PathLabel holds the path of a discovered file, and the pattern in a
// target set given to FromLabels.
const PathLabel = "__path__"

// PathExcludeLabel holds an exclude pattern in a target set given to
// FromLabels, as in Alloy's local.file_match.
const PathExcludeLabel = "__path_exclude__"

// DefaultRefreshInterval is how often a Discoverer looks again without a
// notification.
const DefaultRefreshInterval = 10 * time.Second

// Pattern selects files and labels the targets made for them.
type Pattern struct {
	// Path is a glob as for filepath.Match, applied per path segment, in
	// which a segment "**" matches any number of directories, including
	// none: "/var/log/**/*.log".
	Path string
	// Exclude lists globs of files to leave out. A glob with a path
	// separator is matched against the whole path, one without against
	// the file name only.
	Exclude []string
	// Labels are the labels of every target made from this pattern;
	// __path__ is set to the file's path.
	Labels labels.Labels
}

// FromLabels makes patterns from target sets that carry the glob in
// __path__ and optionally one exclude glob in __path_exclude__, as
// local.file_match takes them; the other labels are carried along. Sets
// without __path__ are skipped.
func FromLabels(sets []labels.Labels) []Pattern {
	var out []Pattern
	for _, ls := range sets {
		p := ls.Get(PathLabel)
		if p == "" {
			continue
		}
		pat := Pattern{Path: p}
		if ex := ls.Get(PathExcludeLabel); ex != "" {
			pat.Exclude = []string{ex}
		}
		pat.Labels = labels.NewBuilder(ls).Del(PathLabel, PathExcludeLabel).Labels()
		out = append(out, pat)
	}
	return out
}

// Discoverer finds the files matching its patterns. The zero value with
// Patterns set is ready to use.
type Discoverer struct {
	// Patterns to match; a file matched by several patterns gets the
	// labels of the first.
	Patterns []Pattern
	// RefreshInterval is how often to look again without a notification;
	// default DefaultRefreshInterval.
	RefreshInterval time.Duration
	// IgnoreOlderThan, if positive, leaves out files not modified within
	// that duration.
	IgnoreOlderThan time.Duration
	// DisableWatch turns fsnotify off: only RefreshInterval applies.
	DisableWatch bool
}

var _ discovery.Discoverer = (*Discoverer)(nil)

// Validate reports malformed patterns.
func (d *Discoverer) Validate() error {
	var errs []error
	for i, p := range d.Patterns {
		if err := checkPattern(p.Path); err != nil {
			errs = append(errs, fmt.Errorf("file discovery: pattern %d %q: %w", i, p.Path, err))
		}
		for _, ex := range p.Exclude {
			if err := checkPattern(ex); err != nil {
				errs = append(errs, fmt.Errorf("file discovery: exclude %q: %w", ex, err))
			}
		}
	}
	if d.RefreshInterval < 0 {
		errs = append(errs, errors.New("file discovery: negative RefreshInterval"))
	}
	return errors.Join(errs...)
}

// Targets evaluates the patterns once and returns the targets, sorted by
// path.
func (d *Discoverer) Targets() []labels.Labels {
	t, _ := d.evaluate(time.Now())
	return t
}

func excluded(excludes []string, path string) bool {
	for _, ex := range excludes {
		target := path
		if !strings.ContainsRune(ex, '/') && !strings.ContainsRune(ex, filepath.Separator) {
			target = filepath.Base(path)
		}
		if Match(ex, target) {
			return true
		}
	}
	return false
}

// evaluate returns the current targets and the directories to watch.
func (d *Discoverer) evaluate(now time.Time) ([]labels.Labels, map[string]bool) {
	dirs := map[string]bool{}
	seen := map[string]bool{}
	var out []labels.Labels
	type found struct {
		path string
		ls   labels.Labels
	}
	var all []found
	for _, p := range d.Patterns {
		for _, path := range glob(p.Path, func(dir string) { dirs[dir] = true }) {
			if seen[path] || excluded(p.Exclude, path) {
				continue
			}
			if d.IgnoreOlderThan > 0 {
				if fi, err := os.Stat(path); err != nil || now.Sub(fi.ModTime()) > d.IgnoreOlderThan {
					continue
				}
			}
			seen[path] = true
			all = append(all, found{path, labels.NewBuilder(p.Labels).Set(PathLabel, path).Labels()})
		}
	}
	slices.SortFunc(all, func(a, b found) int { return strings.Compare(a.path, b.path) })
	for _, f := range all {
		out = append(out, f.ls)
	}
	return out, dirs
}

// Run sends the matching files as targets: at once, then whenever the set
// changes. It returns nil when ctx is done, or a permanent error for
// malformed patterns. Without fsnotify (unsupported, or out of watches) it
// logs a warning and relies on RefreshInterval.
func (d *Discoverer) Run(ctx context.Context, up chan<- []labels.Labels) error {
	if err := d.Validate(); err != nil {
		return ferry.Permanent(err)
	}
	return loop(ctx, up, d.RefreshInterval, DefaultRefreshInterval, d.DisableWatch, d.IgnoreOlderThan <= 0, func() ([]labels.Labels, map[string]bool) {
		return d.evaluate(time.Now())
	})
}

// loop sends the result of eval at once and whenever it changes, looking
// again on notifications about the directories eval returns and every
// interval.
func loop(ctx context.Context, up chan<- []labels.Labels, interval, def time.Duration, noWatch, skipWrites bool,
	evaluate func() ([]labels.Labels, map[string]bool)) error {
	log := ferry.ReporterFrom(ctx).Logger()
	if interval == 0 {
		interval = def
	}
	var w *fsnotify.Watcher
	var events chan fsnotify.Event
	var errs chan error
	if !noWatch {
		var err error
		if w, err = fsnotify.NewWatcher(); err != nil {
			log.Warn("file notifications unavailable; polling", "err", err)
		} else {
			defer w.Close()
			events, errs = w.Events, w.Errors
		}
	}
	watched := map[string]bool{}
	var last []labels.Labels
	sent := false
	eval := func() bool {
		set, dirs := evaluate()
		if w != nil {
			for dir := range watched {
				if !dirs[dir] {
					w.Remove(dir)
					delete(watched, dir)
				}
			}
			for dir := range dirs {
				if !watched[dir] {
					if err := w.Add(dir); err != nil {
						log.Debug("cannot watch directory", "dir", dir, "err", err)
						continue
					}
					watched[dir] = true
				}
			}
		}
		if sent && slices.EqualFunc(set, last, labels.Equal) {
			return true
		}
		select {
		case up <- set:
			last, sent = set, true
			return true
		case <-ctx.Done():
			return false
		}
	}
	if !eval() {
		return nil
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	// Notifications come in bursts: look once, shortly after the first.
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	pending := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if !eval() {
				return nil
			}
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if ev.Op == fsnotify.Chmod || pending {
				continue
			}
			if skipWrites && ev.Op == fsnotify.Write {
				continue // content changes do not change the set
			}
			pending = true
			debounce.Reset(50 * time.Millisecond)
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			log.Warn("file notifications", "err", err)
		case <-debounce.C:
			pending = false
			if !eval() {
				return nil
			}
		}
	}
}
