// Package positions keeps read positions durable: a Tracker turns
// acknowledgements into a position that advances only over delivered data,
// and a File stores the positions of many readers (files, containers) in one
// file, written atomically.
package positions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// File is a set of named positions persisted in one JSON file, or kept in
// memory only (see Memory).
//
// Values are opaque strings chosen by each source (a timestamp in
// nanoseconds, an offset with a file identity). Save writes a temporary file
// in the same directory, syncs it and renames it over the old one, so that a
// crash leaves either the old or the new content, never a torn file. File is
// safe for concurrent use.
type File struct {
	path  string
	mu    sync.Mutex
	m     map[string]string
	dirty bool
}

// Options tune Open.
type Options struct {
	// ResetCorrupt makes Open start empty, instead of failing, when the file
	// exists but cannot be parsed. The caller should log that it did.
	ResetCorrupt bool
}

type fileFormat struct {
	Version   int               `json:"version"`
	Positions map[string]string `json:"positions"`
}

// ErrCorrupt is returned (wrapped) by Open for a file that exists but cannot
// be parsed.
var ErrCorrupt = errors.New("positions file is corrupt")

// Open reads the positions file at path. A missing file is an empty set and
// is created by the first Save; the directory must exist.
func Open(path string, opts Options) (*File, error) {
	f := &File{path: path, m: map[string]string{}}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return f, nil
	case err != nil:
		return nil, fmt.Errorf("positions: %w", err)
	}
	var ff fileFormat
	if err := json.Unmarshal(data, &ff); err != nil || ff.Version != 1 {
		if err == nil {
			err = fmt.Errorf("unknown version %d", ff.Version)
		}
		if opts.ResetCorrupt {
			f.dirty = true
			return f, nil
		}
		return nil, fmt.Errorf("positions: %s: %w: %v", path, ErrCorrupt, err)
	}
	if ff.Positions != nil {
		f.m = ff.Positions
	}
	return f, nil
}

// Memory returns an empty File that is never written: Save does nothing.
// Sources use it when no positions file is configured; their positions then
// last as long as the process.
func Memory() *File { return &File{m: map[string]string{}} }

// Path returns the file's path, "" for a File from Memory.
func (f *File) Path() string { return f.path }

// Get returns the value stored under key.
func (f *File) Get(key string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.m[key]
	return v, ok
}

// Set stores value under key; it is written by the next Save.
func (f *File) Set(key, value string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if old, ok := f.m[key]; ok && old == value {
		return
	}
	f.m[key] = value
	f.dirty = true
}

// Delete removes key.
func (f *File) Delete(key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.m[key]; ok {
		delete(f.m, key)
		f.dirty = true
	}
}

// Keys returns the stored keys, sorted.
func (f *File) Keys() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Sorted(maps.Keys(f.m))
}

// Snapshot returns a copy of every stored position.
func (f *File) Snapshot() map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.m)
}

// WithPrefix returns a copy of the stored positions whose keys start with
// prefix: the share of one source in a file several sources use. A nil
// File has none.
func (f *File) WithPrefix(prefix string) map[string]string {
	out := map[string]string{}
	if f == nil {
		return out
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, v := range f.m {
		if strings.HasPrefix(k, prefix) {
			out[k] = v
		}
	}
	return out
}

// Save writes the positions if they changed since the last Save. It does
// nothing for a File from Memory.
func (f *File) Save() error {
	f.mu.Lock()
	if !f.dirty || f.path == "" {
		f.mu.Unlock()
		return nil
	}
	data, err := json.Marshal(fileFormat{Version: 1, Positions: f.m})
	f.dirty = false
	f.mu.Unlock()
	if err != nil {
		return fmt.Errorf("positions: %w", err)
	}
	if err := writeAtomic(f.path, data); err != nil {
		f.mu.Lock()
		f.dirty = true
		f.mu.Unlock()
		return fmt.Errorf("positions: %w", err)
	}
	return nil
}

// SaveEvery calls Save every interval until ctx is done, then once more. It
// returns the error of the final Save; errors on the way are passed to
// onErr, if not nil.
func (f *File) SaveEvery(ctx context.Context, interval time.Duration, onErr func(error)) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return f.Save()
		case <-t.C:
			if err := f.Save(); err != nil && onErr != nil {
				onErr(err)
			}
		}
	}
}

func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
