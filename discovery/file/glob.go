package file

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// splitPattern cleans a glob and splits it into path segments. A leading
// separator becomes an empty first segment.
func splitPattern(p string) []string {
	p = filepath.ToSlash(filepath.Clean(p))
	return strings.Split(p, "/")
}

func hasMeta(s string) bool { return strings.ContainsAny(s, `*?[\`) }

// checkPattern reports a malformed glob.
func checkPattern(p string) error {
	if p == "" {
		return errors.New("empty pattern")
	}
	for _, seg := range splitPattern(p) {
		if seg == "**" {
			continue
		}
		if _, err := filepath.Match(seg, ""); err != nil {
			return err
		}
	}
	return nil
}

// Match reports whether path matches pattern. The pattern is a glob as for
// filepath.Match, applied segment by segment, in which a segment "**"
// matches any number of path segments, including none. A malformed pattern
// matches nothing.
func Match(pattern, path string) bool {
	return matchSegs(splitPattern(pattern), splitPattern(path))
}

func matchSegs(pat, name []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			for len(pat) > 1 && pat[1] == "**" {
				pat = pat[1:]
			}
			rest := pat[1:]
			if len(rest) == 0 {
				return true
			}
			for i := 0; i < len(name); i++ {
				if matchSegs(rest, name[i:]) {
					return true
				}
			}
			return false
		}
		if len(name) == 0 {
			return false
		}
		if ok, err := filepath.Match(pat[0], name[0]); !ok || err != nil {
			return false
		}
		pat, name = pat[1:], name[1:]
	}
	return len(name) == 0
}

// maxWalk bounds the directories one pattern may visit, against a "**"
// over a huge tree.
const maxWalk = 100000

// glob returns the regular files matching pattern, and calls watch for
// every directory it looked into. Symbolic links to files are followed;
// "**" does not descend into linked directories (no loops).
func glob(pattern string, watch func(dir string)) []string {
	segs := splitPattern(pattern)
	root := "."
	if segs[0] == "" { // absolute
		root, segs = "/", segs[1:]
	}
	var out []string
	visited := 0
	var expand func(dir string, segs []string)
	expand = func(dir string, segs []string) {
		if len(segs) == 0 {
			if fi, err := os.Stat(dir); err == nil && fi.Mode().IsRegular() {
				out = append(out, dir)
			}
			return
		}
		seg := segs[0]
		if !hasMeta(seg) && seg != "**" {
			if watch != nil {
				if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
					watch(dir)
				}
			}
			expand(filepath.Join(dir, seg), segs[1:])
			return
		}
		if visited++; visited > maxWalk {
			return
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			return
		}
		if watch != nil {
			watch(dir)
		}
		if seg == "**" {
			// Zero segments, then one more directory level.
			expand(dir, segs[1:])
			for _, e := range entries {
				if e.IsDir() {
					expand(filepath.Join(dir, e.Name()), segs)
				}
			}
			return
		}
		for _, e := range entries {
			if ok, _ := filepath.Match(seg, e.Name()); ok {
				expand(filepath.Join(dir, e.Name()), segs[1:])
			}
		}
	}
	expand(root, segs)
	slices.Sort(out)
	return slices.Compact(out)
}
