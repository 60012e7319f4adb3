// Package filetail reads log lines from files, as Promtail and Alloy's
// loki.source.file do: it follows every file named by the __path__ label of
// its targets, survives rotation, and remembers how far it got.
//
// Positions (a byte offset plus the file's identity: device, inode and a
// fingerprint of its first bytes) are advanced only when the batches that
// hold the lines are acknowledged as settled (ferry.Settled), and are stored
// atomically in a positions.File under the key "file/<path>". Delivery is
// therefore at least once: after a crash, lines sent but not acknowledged
// are read again, and nothing is skipped.
//
// Rotation by rename and create is handled by reading the renamed file to
// its end before opening the new one; copytruncate by detecting the shrink
// (size or fingerprint), reading the rest of the copy if it can be found
// next to the file, and starting the truncated file from its beginning. The
// same search finds a rotated file after a restart.
package filetail

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/internal/lifecycle"
	"github.com/ferrydev/ferry/positions"
	"github.com/ferrydev/ferry/source"
	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/prometheus/model/labels"
)

// PathLabel is the target label that names the file to read.
const PathLabel = "__path__"

// FilenameLabel is the label set on every entry to the path of its file.
const FilenameLabel = "filename"

// KeyPrefix starts every key this source stores in a positions.File.
const KeyPrefix = "file/"

// Start says where reading begins in a file without a stored position.
type Start int

const (
	// StartEnd reads only lines written after the file was first seen, for
	// files last modified before the source started (by more than a
	// second, for coarse file times). Files modified since
	// (new files, files that replace a rotated one, files written before
	// discovery got to them) are read from the beginning, so that nothing
	// written while the source ran is skipped.
	StartEnd Start = iota
	// StartBeginning reads every file from its first byte.
	StartBeginning
)

// Encoding is the character encoding of the files.
type Encoding int

const (
	// UTF8 (the default) passes bytes through as they are; a leading
	// UTF-8 byte order mark is skipped.
	UTF8 Encoding = iota
	// UTF16 detects the byte order from a byte order mark and assumes
	// little endian without one.
	UTF16
	// UTF16LE is little-endian UTF-16.
	UTF16LE
	// UTF16BE is big-endian UTF-16.
	UTF16BE
)

// Defaults of the zero Source.
const (
	DefaultMaxLineSize     = 256 << 10
	DefaultBatchSize       = 1024
	DefaultBatchBytes      = 1 << 20
	DefaultPollInterval    = 250 * time.Millisecond
	DefaultSaveInterval    = 10 * time.Second
	DefaultFingerprintSize = 1024
	DefaultRotateWait      = time.Second
)

// Source tails the files named by the __path__ label of its targets. It
// implements source.TargetSource[ferry.Entry] and source.Closer. The zero
// value reads with the defaults and keeps positions in memory only (across
// restarts of Run, not of the process).
//
// Entries carry the target's labels without those starting with "__", plus
// filename="<path>", and the time the line was read as timestamp (a
// timestamp stage can replace it). Lines end at "\n"; a "\r" before it is
// removed. A final line without "\n" is handed on only when the file will
// not grow any more (it was rotated or deleted, or is compressed).
//
// Every file has one reader goroutine holding a read buffer (64 KiB,
// growing up to MaxLineSize) and the batch it is filling. A reader blocks
// when the output channel is full and reads no further meanwhile, so memory
// stays bounded however slow the consumers are.
//
// A file that cannot be opened or read (permissions, not a regular file) is
// logged through the ferry.Reporter, marks the source degraded, and is tried
// again at every poll; other files are not affected.
type Source struct {
	// PositionsFile, if not nil, stores positions under "file/<path>". It
	// may be shared with other sources. The source saves it every
	// SaveInterval (with positions.File.SaveEvery) and on Close. Nil keeps
	// positions in memory (positions.Memory), for restarts of Run only.
	PositionsFile *positions.File
	// StartAt is where to begin in files without a stored position.
	StartAt Start
	// MaxLineSize bounds a line in bytes (as read, before decoding);
	// default DefaultMaxLineSize.
	MaxLineSize int
	// LongLines says what to do with longer lines:
	// source.TruncateLongLines (default) or source.DropLongLines.
	LongLines source.LongLinePolicy
	// Encoding of the files; UTF-16 input is turned into UTF-8 lines.
	Encoding Encoding
	// Decompress makes files whose name ends in ".gz" be read once, from
	// the beginning, through gzip, and not followed afterwards. Without
	// it, such files are skipped with a warning.
	Decompress bool
	// BatchSize and BatchBytes bound a batch in lines and in line bytes;
	// defaults DefaultBatchSize and DefaultBatchBytes. A partial batch is
	// sent whenever a reader reaches the end of its file.
	BatchSize, BatchBytes int
	// PollInterval is how often a file is checked for growth, rotation and
	// truncation without a file-system notification; default
	// DefaultPollInterval. Notifications (fsnotify) make checks sooner.
	// The readers of a Run are polled together, at one tick; a file that
	// did not change costs a stat a poll.
	PollInterval time.Duration
	// RotateWait is how long a file that was renamed or deleted is read on
	// after it stopped growing, for writers that have not reopened their
	// file yet; then it is read to its end and the file now at the path is
	// opened. Default DefaultRotateWait.
	RotateWait time.Duration
	// DisableWatch turns off fsnotify: files are polled only.
	DisableWatch bool
	// SaveInterval is how often PositionsFile is saved; default
	// DefaultSaveInterval.
	SaveInterval time.Duration
	// FingerprintSize is how many leading bytes identify a file's content;
	// default DefaultFingerprintSize.
	FingerprintSize int

	mu      sync.Mutex
	watcher *fsnotify.Watcher
	dirs    map[string]int     // watched directory -> readers in it
	byPath  map[string]*reader // live readers, for notifications
	failing atomic.Int64

	// Set by Start; read-only afterwards.
	life      lifecycle.State
	startTime time.Time
	rep       ferry.Reporter
	log       *slog.Logger
	pos       *positions.File // PositionsFile, or positions.Memory()
	stop      context.CancelFunc
	bg        sync.WaitGroup // dispatch
	saveErr   chan error     // the save loop's final Save
}

// ErrNotStarted is returned by Run before Start, and ErrClosed by Start
// and Run after Close.
var (
	ErrNotStarted = fmt.Errorf("filetail: Run before Start: %w", ferry.ErrNotStarted)
	ErrClosed     = fmt.Errorf("filetail: source %w", ferry.ErrClosed)
)

var (
	_ source.TargetSource[ferry.Entry] = (*Source)(nil)
	_ source.Closer                    = (*Source)(nil)
)

// Validate reports a configuration that cannot work.
func (s *Source) Validate() error {
	switch {
	case s.MaxLineSize < 0, s.BatchSize < 0, s.BatchBytes < 0, s.FingerprintSize < 0:
		return errors.New("filetail: negative size")
	case s.PollInterval < 0, s.SaveInterval < 0, s.RotateWait < 0:
		return errors.New("filetail: negative interval")
	case s.StartAt != StartEnd && s.StartAt != StartBeginning:
		return fmt.Errorf("filetail: unknown StartAt %d", s.StartAt)
	case !s.LongLines.Valid():
		return fmt.Errorf("filetail: unknown LongLines %d", s.LongLines)
	case s.Encoding < UTF8 || s.Encoding > UTF16BE:
		return fmt.Errorf("filetail: unknown Encoding %d", s.Encoding)
	}
	return nil
}

type config struct {
	maxLine, batchSize, batchBytes, fpSize int
	poll, save, rotateWait                 time.Duration
}

func (s *Source) config() config {
	c := config{
		maxLine: s.MaxLineSize, batchSize: s.BatchSize, batchBytes: s.BatchBytes,
		fpSize: s.FingerprintSize, poll: s.PollInterval, save: s.SaveInterval,
	}
	if c.maxLine == 0 {
		c.maxLine = DefaultMaxLineSize
	}
	if c.batchSize == 0 {
		c.batchSize = DefaultBatchSize
	}
	if c.batchBytes == 0 {
		c.batchBytes = DefaultBatchBytes
	}
	if c.fpSize == 0 {
		c.fpSize = DefaultFingerprintSize
	}
	if c.poll == 0 {
		c.poll = DefaultPollInterval
	}
	if c.rotateWait = s.RotateWait; c.rotateWait == 0 {
		c.rotateWait = DefaultRotateWait
	}
	if c.save == 0 {
		c.save = DefaultSaveInterval
	}
	return c
}

// Start validates the configuration, opens the file-system watcher
// (unless DisableWatch) and starts saving PositionsFile every SaveInterval.
// Readers report through r, and log with r.Logger(). ctx bounds the start
// only. Start is a no-op on a started Source and returns ErrClosed after
// Close.
func (s *Source) Start(ctx context.Context, r ferry.Reporter) error {
	if err := s.Validate(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if r == nil {
		r = ferry.NopReporter()
	}
	return s.life.Start(ErrClosed, func() error {
		s.rep, s.log = r, r.Logger()
		s.startTime = time.Now()
		pos := s.PositionsFile
		if pos == nil {
			pos = positions.Memory()
		}
		bg, stop := context.WithCancel(context.Background())
		s.stop = stop
		var w *fsnotify.Watcher
		if !s.DisableWatch {
			var err error
			if w, err = fsnotify.NewWatcher(); err != nil {
				s.log.Warn("file notifications unavailable, polling only", "err", err)
				w = nil
			} else {
				s.bg.Go(func() { s.dispatch(bg, w, s.log) })
			}
		}
		s.mu.Lock()
		s.pos, s.watcher = pos, w
		s.mu.Unlock()
		s.saveErr = make(chan error, 1)
		// The goroutine holds what it needs, not s: a Source never closed
		// does not stay alive through it.
		every, log, saveErr := s.config().save, s.log, s.saveErr
		go func() {
			saveErr <- pos.SaveEvery(bg, every, func(err error) { log.Warn("saving positions", "err", err) })
		}()
		return nil
	})
}

// Run tails the files of the target sets received on targets until ctx is
// done, then stops every reader. Targets without __path__ are ignored;
// several targets with one path share a reader (the first one's labels
// win). A reader whose target vanishes reads its file to the end of the
// last complete line and stops. Run returns nil when ctx ends,
// ErrNotStarted before Start and ErrClosed after Close.
func (s *Source) Run(ctx context.Context, targets <-chan []labels.Labels, out chan<- ferry.Batch[ferry.Entry]) error {
	if err := s.life.Err(ErrNotStarted, ErrClosed); err != nil {
		return err
	}
	log := s.log
	cfg := s.config()
	s.mu.Lock()
	s.byPath = map[string]*reader{}
	s.dirs = map[string]int{}
	s.mu.Unlock()

	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	clock := newPollClock()
	wg.Go(func() { clock.run(rctx, cfg.poll) })
	readers := map[string]*reader{}
	exited := make(chan *reader, 16)

	shutdown := func() error {
		cancel()
		wg.Wait()
		s.mu.Lock()
		if s.watcher != nil {
			for dir := range s.dirs {
				_ = s.watcher.Remove(dir)
			}
		}
		s.dirs, s.byPath = map[string]int{}, map[string]*reader{}
		s.mu.Unlock()
		return nil
	}

	for {
		select {
		case <-ctx.Done():
			return shutdown()
		case r := <-exited:
			if readers[r.path] == r {
				delete(readers, r.path)
			}
			s.unregister(r)
		case set, ok := <-targets:
			if !ok {
				targets = nil
				continue
			}
			want := map[string]labels.Labels{}
			for _, t := range set {
				p := t.Get(PathLabel)
				if p == "" {
					continue
				}
				p = filepath.Clean(p)
				if _, dup := want[p]; !dup {
					want[p] = entryLabels(t, p)
				}
			}
			for p, r := range readers {
				if _, keep := want[p]; !keep {
					r.requestStop()
				}
			}
			for p, ls := range want {
				if r, ok := readers[p]; ok && r.revive(ls) {
					continue
				}
				r := s.newReader(p, ls, cfg, clock, out)
				readers[p] = r
				s.register(r, log)
				wg.Add(1)
				go func() {
					defer wg.Done()
					r.run(rctx)
					select {
					case exited <- r:
					case <-rctx.Done():
					}
				}()
			}
		}
	}
}

// Close stops the watcher and the save loop and saves the positions a
// last time. It may be called more than once, and without Start; Run must
// have returned.
func (s *Source) Close(ctx context.Context) error {
	return s.life.Close(func(started bool) error {
		if !started {
			if s.PositionsFile != nil {
				return s.PositionsFile.Save()
			}
			return nil
		}
		s.stop()
		s.mu.Lock()
		w := s.watcher
		s.watcher = nil
		s.mu.Unlock()
		if w != nil {
			w.Close()
		}
		s.bg.Wait()
		return <-s.saveErr
	})
}

// Positions returns a copy of the positions this source stored (keys that
// start with KeyPrefix), keyed as in the positions file. It implements
// source.PositionReporter.
func (s *Source) Positions() map[string]string {
	s.mu.Lock()
	pos := s.pos
	s.mu.Unlock()
	if pos == nil {
		pos = s.PositionsFile
	}
	return pos.WithPrefix(KeyPrefix)
}

func (s *Source) getPos(key string) (string, bool) { return s.pos.Get(key) }
func (s *Source) setPos(key, v string)             { s.pos.Set(key, v) }
func (s *Source) delPos(key string)                { s.pos.Delete(key) }

// entryLabels returns the labels of entries read for target t.
func entryLabels(t labels.Labels, path string) labels.Labels {
	b := labels.NewBuilder(t)
	t.Range(func(l labels.Label) {
		if strings.HasPrefix(l.Name, "__") {
			b.Del(l.Name)
		}
	})
	b.Set(FilenameLabel, path)
	return b.Labels()
}

func (s *Source) register(r *reader, log interface{ Warn(string, ...any) }) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.byPath[r.path] = r
	if s.watcher == nil {
		return
	}
	dir := filepath.Dir(r.path)
	if s.dirs[dir] == 0 {
		if err := s.watcher.Add(dir); err != nil {
			// Missing directories and exhausted watches: polling covers it.
			if !errors.Is(err, fsnotify.ErrNonExistentWatch) {
				log.Warn("watching directory, polling instead", "dir", dir, "err", err)
			}
		}
	}
	s.dirs[dir]++
}

func (s *Source) unregister(r *reader) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byPath[r.path] == r {
		delete(s.byPath, r.path)
	}
	dir := filepath.Dir(r.path)
	if s.dirs[dir]--; s.dirs[dir] <= 0 {
		delete(s.dirs, dir)
		if s.watcher != nil {
			s.watcher.Remove(dir)
		}
	}
}

// dispatch wakes the reader of every path a notification names.
func (s *Source) dispatch(ctx context.Context, w *fsnotify.Watcher, log interface{ Warn(string, ...any) }) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			s.mu.Lock()
			r := s.byPath[filepath.Clean(ev.Name)]
			s.mu.Unlock()
			if r != nil {
				r.poke()
			}
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			log.Warn("file notifications", "err", err)
		}
	}
}

// setFailing updates the health when a reader starts or stops failing.
func (s *Source) setFailing(rep ferry.Reporter, failing bool, err error) {
	if failing {
		s.failing.Add(1)
		rep.SetHealth(ferry.Degraded, err)
		return
	}
	if s.failing.Add(-1) == 0 {
		rep.SetHealth(ferry.Healthy, nil)
	}
}
