// Package journal follows the systemd journal, as Promtail's journal target
// and Alloy's loki.source.journal do, and emits its entries with the
// journal cursor as their position.
//
// # Why journalctl
//
// The journal's files are a binary format of their own (hash tables,
// entry arrays, optional compression with xz, lz4 or zstd). Promtail and
// Alloy read them through libsystemd with cgo; Ferry is pure Go, and a
// reimplementation of the file format would have to follow systemd's
// changes to it. So, as Vector does, the Source runs journalctl, which
// ships with every systemd, reads its "-o export" output through a pipe
// and parses the Journal Export Format (a simple text-and-binary
// key/value stream; see Decoder).
//
// What it costs: one journalctl process per Source (about 75 MiB resident
// while following a 10-file journal of 1 M entries, most of it the mapped
// journal files), one pipe, and a copy of every entry through it.
// journalctl sets the pace: BenchmarkJournal reads a journal through the
// Source at the same order of speed as "journalctl -o export > /dev/null"
// of the same journal (on a busy shared 2-core machine, 1 M entries:
// 65,900 entries/s through the Source and 46,500 for the bare export in
// the same run; 20,000 entries: 40,200 and 55,300), with about one
// allocation per entry on Ferry's side (its labels). While journalctl
// catches up, batches are full (BatchSize); a batch that is not full is
// sent once journalctl has given nothing more for Linger. The Source needs
// journalctl in PATH (or Journalctl set) and read access to the journal files (membership in the
// systemd-journal group, or root). In a container, mount the host's
// /var/log/journal (and /etc/machine-id) and set Directory.
//
// # Positions
//
// The position is the journal cursor (__CURSOR) of the last entry of the
// highest batch below which every batch was settled (ferry.Settled). It is
// stored in Positions under PositionKey and advanced only on
// acknowledgement; a restart runs "journalctl --after-cursor" with it, so
// nothing delivered is read twice and nothing undelivered is skipped. On
// the first start, without a cursor, MaxAge says how far back to read. A
// batch that was not delivered (an error that is not permanent) makes Run
// return an error: the pipeline runs it again with backoff, from the last
// committed cursor.
//
// If journalctl is missing, cannot read the journal, or exits, Run returns
// an error naming the cause (with the end of journalctl's standard error),
// the Source reports Failing health, and the pipeline restarts it with
// backoff.
//
// # Labels
//
// Every journal field becomes a label named "__journal_" plus the field's
// name in lower case, as in Promtail: __journal__systemd_unit,
// __journal__hostname, __journal_syslog_identifier, __journal_priority and
// so on, plus __journal_priority_keyword (emerg, alert, crit, error,
// warning, notice, info, debug). Fields that journalctl adds (__CURSOR,
// __REALTIME_TIMESTAMP, __MONOTONIC_TIMESTAMP) are not labels. These
// labels are internal: relabel them into the ones to keep (sinks drop
// names starting with "__").
package journal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/internal/arena"
	"github.com/ferrydev/ferry/internal/lifecycle"
	"github.com/ferrydev/ferry/positions"
	"github.com/ferrydev/ferry/source"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
)

// Format is what an entry's line holds.
type Format int

const (
	// FormatMessage (the default): the MESSAGE field. Entries without one
	// are skipped and counted (ReasonNoMessage).
	FormatMessage Format = iota
	// FormatJSON: every field of the entry (not the "__" ones journalctl
	// adds) as one JSON object with string values, keys sorted, as
	// Promtail's json option gives.
	FormatJSON
)

// Defaults of the zero Source.
const (
	DefaultMaxAge       = 7 * time.Hour // Promtail's default
	DefaultBatchSize    = 512
	DefaultLinger       = 50 * time.Millisecond
	DefaultSaveInterval = 10 * time.Second
	DefaultPositionKey  = "journal/default"
)

// ReasonNoMessage counts entries without MESSAGE in FormatMessage.
const ReasonNoMessage = "no_message"

// LabelPrefix starts the label of every journal field.
const LabelPrefix = "__journal_"

// LabelPriorityKeyword is the label with PRIORITY's keyword.
const LabelPriorityKeyword = "__journal_priority_keyword"

// Source follows the journal through journalctl. It implements
// source.Source[ferry.Entry], ferry.Starter and source.Closer. Its fields
// must not change after Start.
type Source struct {
	// Journalctl is the journalctl program (default "journalctl", looked
	// up in PATH when Run starts it).
	Journalctl string
	// Directory, if set, reads the journal files in this directory
	// (journalctl -D), such as a host's /var/log/journal mounted into a
	// container. Otherwise the local system's journal is read.
	Directory string
	// Files, if set, reads these journal files (journalctl --file; globs
	// allowed).
	Files []string
	// Matches select entries, in journalctl's syntax: "FIELD=value" terms
	// (terms on different fields must all match, terms on one field any),
	// and "+" between groups for a logical OR. Example:
	// []string{"_SYSTEMD_UNIT=ssh.service"}.
	Matches []string
	// MaxAge is how far back the first start reads, without a stored
	// cursor (default DefaultMaxAge); negative reads the whole journal.
	MaxAge time.Duration
	// Format of the lines.
	Format Format
	// Labels are added to every entry.
	Labels labels.Labels
	// Positions stores the cursor under PositionKey (default
	// DefaultPositionKey); without it the cursor is kept in memory, across
	// restarts of Run but not of the process. It is saved every
	// SaveInterval (default DefaultSaveInterval) and on Close.
	Positions    *positions.File
	PositionKey  string
	SaveInterval time.Duration
	// Name identifies the Source in its metrics (the "source" label);
	// default the PositionKey.
	Name string
	// BatchSize bounds the entries of a batch (default DefaultBatchSize).
	BatchSize int
	// Linger is how long a batch that is not full waits for journalctl
	// to give more entries before it is sent (default DefaultLinger).
	Linger time.Duration

	life    lifecycle.State
	stats   stats
	mu      sync.Mutex
	rep     ferry.Reporter
	tracker *positions.Tracker[string]
}

// The errors of Run before Start and after Close.
var (
	errNotStarted = fmt.Errorf("journal: Run before Start: %w", ferry.ErrNotStarted)
	errClosed     = fmt.Errorf("journal: %w", ferry.ErrClosed)
)

var (
	_ source.Source[ferry.Entry] = (*Source)(nil)
	_ source.Closer              = (*Source)(nil)
	_ ferry.Starter              = (*Source)(nil)
)

// Validate reports a configuration that cannot work.
func (s *Source) Validate() error {
	var errs []error
	if s.Format != FormatMessage && s.Format != FormatJSON {
		errs = append(errs, fmt.Errorf("journal: unknown Format %d", s.Format))
	}
	if s.BatchSize < 0 || s.SaveInterval < 0 {
		errs = append(errs, errors.New("journal: negative BatchSize or SaveInterval"))
	}
	if s.Directory != "" && len(s.Files) > 0 {
		errs = append(errs, errors.New("journal: Directory and Files are exclusive"))
	}
	for _, m := range s.Matches {
		if m != "+" && !validMatch(m) {
			errs = append(errs, fmt.Errorf("journal: match %q is not FIELD=value with an upper-case field name, or \"+\"", m))
		}
	}
	s.Labels.Range(func(l labels.Label) {
		if !model.LegacyValidation.IsValidLabelName(l.Name) {
			errs = append(errs, fmt.Errorf("journal: label name %q is invalid", l.Name))
		}
	})
	return errors.Join(errs...)
}

func validMatch(m string) bool {
	name, _, ok := strings.Cut(m, "=")
	if !ok || name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func (s *Source) key() string {
	if s.PositionKey != "" {
		return s.PositionKey
	}
	return DefaultPositionKey
}

// Start checks the configuration, loads the stored cursor and keeps r. It
// does not run journalctl: Run does, so that a missing or failing
// journalctl is retried.
func (s *Source) Start(ctx context.Context, r ferry.Reporter) error {
	if err := s.Validate(); err != nil {
		return err
	}
	if r == nil {
		r = ferry.NopReporter()
	}
	return s.life.Start(errClosed, func() error {
		var cursor string
		var ok bool
		if s.Positions != nil {
			cursor, ok = s.Positions.Get(s.key())
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		s.tracker = positions.NewTracker(cursor, ok && cursor != "", func(c string) {
			if s.Positions != nil {
				s.Positions.Set(s.key(), c)
			}
		})
		s.rep = r
		return nil
	})
}

// Cursor returns the committed cursor: that of the last entry delivered,
// below which everything was delivered.
func (s *Source) Cursor() (string, bool) {
	s.mu.Lock()
	t := s.tracker
	s.mu.Unlock()
	if t == nil {
		if s.Positions != nil {
			return s.Positions.Get(s.key())
		}
		return "", false
	}
	return t.Committed()
}

// Close saves the positions. It is safe without Start and safe twice.
func (s *Source) Close(ctx context.Context) error {
	return s.life.Close(func(bool) error {
		if s.Positions != nil {
			return s.Positions.Save()
		}
		return nil
	})
}

// args returns journalctl's arguments for a run that starts after cursor
// (if ok) or MaxAge back from now.
func (s *Source) args(cursor string, ok bool, now time.Time) []string {
	a := []string{"--output=export", "--follow", "--no-pager", "--lines=all", "--quiet"}
	switch {
	case ok:
		a = append(a, "--after-cursor="+cursor)
	case s.MaxAge >= 0:
		age := s.MaxAge
		if age == 0 {
			age = DefaultMaxAge
		}
		a = append(a, "--since=@"+strconv.FormatInt(now.Add(-age).Unix(), 10))
	}
	if s.Directory != "" {
		a = append(a, "--directory="+s.Directory)
	}
	for _, f := range s.Files {
		a = append(a, "--file="+f)
	}
	return append(a, s.Matches...)
}

// errUndelivered wraps the outcome of a batch that was not delivered.
var errUndelivered = errors.New("journal: a batch was not delivered; reading again from the last delivered entry")

// Run runs journalctl and emits the entries it exports until ctx is done
// (then it returns nil) or journalctl ends or fails, or a batch is not
// delivered (then it returns an error, and a pipeline runs it again with
// backoff, from the committed cursor).
func (s *Source) Run(ctx context.Context, out chan<- ferry.Batch[ferry.Entry]) error {
	if err := s.life.Err(errNotStarted, errClosed); err != nil {
		return err
	}
	s.mu.Lock()
	rep, tracker := s.rep, s.tracker
	s.mu.Unlock()
	// Batches of an earlier run that are still in flight no longer count:
	// this run starts from the committed cursor.
	tracker.Reset()
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if s.Positions != nil {
		interval := s.SaveInterval
		if interval == 0 {
			interval = DefaultSaveInterval
		}
		saved := make(chan struct{})
		go func() {
			defer close(saved)
			s.Positions.SaveEvery(rctx, interval, func(err error) { rep.Logger().Warn("journal: saving positions", "err", err) })
		}()
		defer func() { cancel(); <-saved }()
	}
	err := s.follow(rctx, out, rep, tracker)
	if ctx.Err() != nil {
		return nil
	}
	if errors.Is(err, errUndelivered) {
		rep.SetHealth(ferry.Degraded, err)
	} else {
		rep.SetHealth(ferry.Failing, err)
	}
	return err
}

// tailBuffer keeps the last bytes written to it (journalctl's stderr).
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > 4096 {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-2048:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.buf))
}

// flushReader calls before each time the decoder has to wait for
// journalctl: at once when the pipe cannot wait with a deadline, else once
// a batch is open (opened returns when its first entry was read) and
// linger has passed since without journalctl giving more. Flushing before
// every read made batches of what one read of the pipe held (about 16
// entries while journalctl catches up), and their cost per batch the
// larger part of the Source's.
type flushReader struct {
	r      io.Reader
	before func() error
	opened func() time.Time // zero when no batch is open
	linger time.Duration

	dl       interface{ SetReadDeadline(time.Time) error } // nil: flush before every read
	deadline time.Time                                     // the one set on dl
}

func newFlushReader(r io.Reader, before func() error, opened func() time.Time, linger time.Duration) *flushReader {
	f := &flushReader{r: r, before: before, opened: opened, linger: linger}
	if dl, ok := r.(interface{ SetReadDeadline(time.Time) error }); ok && dl.SetReadDeadline(time.Time{}) == nil {
		f.dl = dl
	}
	return f
}

func (f *flushReader) Read(p []byte) (int, error) {
	if f.dl != nil {
		if t := f.opened(); !t.IsZero() {
			if err := f.setDeadline(t.Add(f.linger)); err == nil {
				n, err := f.r.Read(p)
				if n > 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
					return n, err
				}
			}
		}
		if err := f.setDeadline(time.Time{}); err != nil {
			return 0, err
		}
	}
	if err := f.before(); err != nil {
		return 0, err
	}
	return f.r.Read(p)
}

func (f *flushReader) setDeadline(t time.Time) error {
	if t.Equal(f.deadline) {
		return nil
	}
	f.deadline = t
	return f.dl.SetReadDeadline(t)
}

func (s *Source) follow(ctx context.Context, out chan<- ferry.Batch[ferry.Entry], rep ferry.Reporter, tracker *positions.Tracker[string]) error {
	bin := s.Journalctl
	if bin == "" {
		bin = "journalctl"
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		return fmt.Errorf("journal: journalctl not found (install systemd's journalctl, or set Journalctl): %w", err)
	}
	cursor, ok := tracker.Committed()
	args := s.args(cursor, ok, time.Now())
	// A batch that is not delivered ends this run at once, even while
	// journalctl has nothing new to say: stop it, so that the read it may
	// be blocked in returns.
	fctx, stop := context.WithCancel(ctx)
	defer stop()
	cmd := exec.CommandContext(fctx, path, args...)
	var stderr tailBuffer
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("journal: starting %s: %w", path, err)
	}
	log := rep.Logger()
	log.Debug("journal: following", "cmd", path, "args", args)
	rep.SetHealth(ferry.Healthy, nil)

	b := &builder{s: s, names: map[string]string{}}
	size := s.BatchSize
	if size == 0 {
		size = DefaultBatchSize
	}
	var batch []ferry.Entry
	lastLen := 0    // the length of the last batch sent
	var last []byte // cursor of the last entry read, delivered or skipped
	// opened is when the first entry since the last flush (kept or
	// skipped) was read; zero when there is none.
	var opened time.Time
	flush := func() error {
		if err := tracker.Err(); err != nil {
			return fmt.Errorf("%w: %w", errUndelivered, err)
		}
		if opened.IsZero() {
			return nil
		}
		track := tracker.Track(string(last))
		done := func(err error) {
			track(err)
			if !ferry.Settled(err) {
				stop()
			}
		}
		opened = time.Time{}
		if len(batch) == 0 {
			done(nil) // only skipped entries: nothing to wait for
			return nil
		}
		items := batch
		batch, lastLen = nil, len(batch)
		b.text.Release() // the entries keep their lines' blocks
		return source.Send(fctx, out, ferry.NewBatch(items, done))
	}
	linger := s.Linger
	if linger <= 0 {
		linger = DefaultLinger
	}
	dec := NewDecoder(newFlushReader(stdout, flush, func() time.Time { return opened }, linger))
	var runErr error
	for {
		rec, err := dec.Next()
		if err != nil {
			if ctx.Err() == nil {
				runErr = err
			}
			break
		}
		c := rec.Get("__CURSOR")
		if c == nil {
			runErr = fmt.Errorf("journal: entry without __CURSOR: %w", ErrFormat)
			break
		}
		last = append(last[:0], c...)
		if opened.IsZero() {
			opened = time.Now()
		}
		s.stats.read(rec.Get("__REALTIME_TIMESTAMP"))
		var e ferry.Entry
		if b.entry(rec, &e) {
			if batch == nil {
				// Sized like the last batch: one allocation a batch rather
				// than a doubling series, without reserving a whole batch
				// for a trickle.
				batch = make([]ferry.Entry, 0, min(max(lastLen, 16), size))
			}
			batch = append(batch, e)
		} else {
			s.stats.noMessage.Add(1)
			rep.Dropped(ReasonNoMessage, 1)
		}
		if len(batch) >= size {
			if err := flush(); err != nil {
				runErr = err
				break
			}
		}
	}
	if terr := tracker.Err(); terr != nil && ctx.Err() == nil && !errors.Is(runErr, errUndelivered) {
		// The read or the send ended because a batch was not delivered.
		runErr = fmt.Errorf("%w: %w", errUndelivered, terr)
	}
	if runErr == nil || !errors.Is(runErr, errUndelivered) && ctx.Err() == nil {
		// Deliver what was read before journalctl ended.
		if err := flush(); err != nil && runErr == nil {
			runErr = err
		}
	}
	if runErr != nil {
		if cmd.Process != nil {
			cmd.Process.Kill()
		}
	}
	waitErr := cmd.Wait()
	if ctx.Err() != nil {
		return nil
	}
	switch {
	case runErr != nil && !errors.Is(runErr, io.EOF) && !errors.Is(runErr, io.ErrUnexpectedEOF) && !errors.Is(runErr, context.Canceled):
		if errors.Is(runErr, errUndelivered) {
			return runErr
		}
		if se := stderr.String(); se != "" {
			return fmt.Errorf("%w (journalctl: %s)", runErr, se)
		}
		return runErr
	case waitErr != nil:
		return fmt.Errorf("journal: journalctl %s: %w: %s", strings.Join(args, " "), waitErr, stderr.String())
	default:
		return fmt.Errorf("journal: journalctl ended: %s", stderr.String())
	}
}

// builder turns records into entries. It keeps the label names of the
// field names it has seen and one scratch buffer.
type builder struct {
	s     *Source
	names map[string]string // field name -> label name
	buf   []byte
	spans []bspan
	order []int
	lbls  []labels.Label
	sb    labels.ScratchBuilder
	text  arena.Arena // the lines of the batch being read
}

type bspan struct {
	name   string
	v0, v1 int
}

var priorityKeywords = [8]string{"emerg", "alert", "crit", "error", "warning", "notice", "info", "debug"}

func (b *builder) labelName(field []byte) string {
	if n, ok := b.names[string(field)]; ok {
		return n
	}
	if len(b.names) >= 4096 {
		clear(b.names)
	}
	n := LabelPrefix + strings.ToLower(string(field))
	b.names[string(field)] = n
	return n
}

// entry fills e from rec and reports whether rec becomes an entry. The
// line is cut from b.text, which the entries of a batch share; the label
// values are read from b.buf, which the labels' ScratchBuilder copies.
func (b *builder) entry(rec *Record, e *ferry.Entry) bool {
	buf := b.buf[:0]
	spans := b.spans[:0]
	var line1 int // the line is buf[:line1]
	switch b.s.Format {
	case FormatJSON:
		order := b.order[:0]
		for i, f := range rec.Fields {
			if !bytes.HasPrefix(f.Name, []byte("__")) {
				order = append(order, i)
			}
		}
		slices.SortStableFunc(order, func(x, y int) int { return bytes.Compare(rec.Fields[x].Name, rec.Fields[y].Name) })
		b.order = order
		buf = append(buf, '{')
		for k, i := range order {
			if k > 0 && bytes.Equal(rec.Fields[order[k-1]].Name, rec.Fields[i].Name) {
				continue
			}
			if len(buf) > 1 {
				buf = append(buf, ',')
			}
			buf = appendJSONString(buf, rec.Fields[i].Name)
			buf = append(buf, ':')
			buf = appendJSONString(buf, rec.Fields[i].Value)
		}
		buf = append(buf, '}')
		line1 = len(buf)
	default:
		msg := rec.Get("MESSAGE")
		if msg == nil {
			return false
		}
		buf = append(buf, msg...)
		line1 = len(buf)
	}
	var ts []byte
	for _, f := range rec.Fields {
		if bytes.HasPrefix(f.Name, []byte("__")) {
			if string(f.Name) == "__REALTIME_TIMESTAMP" {
				ts = f.Value
			}
			continue
		}
		v0 := len(buf)
		buf = append(buf, f.Value...)
		spans = append(spans, bspan{name: b.labelName(f.Name), v0: v0, v1: len(buf)})
		if string(f.Name) == "PRIORITY" {
			kw := string(f.Value) // no allocation: compared, not kept
			if len(f.Value) == 1 && f.Value[0] >= '0' && f.Value[0] <= '7' {
				kw = priorityKeywords[f.Value[0]-'0']
				spans = append(spans, bspan{name: LabelPriorityKeyword, v0: -1, v1: int(f.Value[0] - '0')})
			} else {
				v0 := len(buf)
				buf = append(buf, kw...)
				spans = append(spans, bspan{name: LabelPriorityKeyword, v0: v0, v1: len(buf)})
			}
		}
	}
	b.buf, b.spans = buf, spans
	e.Line = b.text.String(buf[:line1])
	// A view of buf, not kept past this call: b.sb copies what it adds.
	str := unsafe.String(unsafe.SliceData(buf), len(buf))
	if us, err := strconv.ParseInt(string(ts), 10, 64); err == nil && len(ts) > 0 {
		e.Timestamp = time.UnixMicro(us)
	}
	lbls := b.lbls[:0]
	for _, sp := range spans {
		v := ""
		if sp.v0 == -1 {
			v = priorityKeywords[sp.v1]
		} else {
			v = str[sp.v0:sp.v1]
		}
		if v != "" {
			lbls = append(lbls, labels.Label{Name: sp.name, Value: v})
		}
	}
	b.s.Labels.Range(func(l labels.Label) { lbls = append(lbls, l) })
	slices.SortStableFunc(lbls, func(x, y labels.Label) int { return strings.Compare(x.Name, y.Name) })
	b.sb.Reset()
	for i := 0; i < len(lbls); {
		j := i + 1
		for j < len(lbls) && lbls[j].Name == lbls[i].Name {
			j++
		}
		// Of several values of one field the first is kept, as Record.Get
		// does; a label of the Source's Labels (added last) wins.
		l := lbls[i]
		if j-i > 1 && b.s.Labels.Has(l.Name) {
			l = lbls[j-1]
		}
		b.sb.Add(l.Name, l.Value)
		i = j
	}
	e.Labels = b.sb.Labels()
	clear(lbls)
	b.lbls = lbls[:0]
	return true
}

// appendJSONString appends s as a JSON string; invalid UTF-8 becomes
// U+FFFD, as encoding/json does.
func appendJSONString(dst, s []byte) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c == '\n':
				dst = append(dst, '\\', 'n')
			case c == '\r':
				dst = append(dst, '\\', 'r')
			case c == '\t':
				dst = append(dst, '\\', 't')
			case c < 0x20 || c == '<' || c == '>' || c == '&':
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, `\ufffd`...)
		} else if r == '\u2028' || r == '\u2029' {
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xF])
		} else {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return append(dst, '"')
}
