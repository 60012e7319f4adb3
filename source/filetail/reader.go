package filetail

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/positions"
	"github.com/ferrydev/ferry/source"
	"github.com/prometheus/prometheus/model/labels"
)

const initialBuffer = 64 << 10

// clockSlack allows for file times that lag the clock (coarse kernel
// timestamps): a file modified this close before the start counts as new.
const clockSlack = time.Second

// errRewind stops reading when a batch was not delivered: the reader goes
// back to the committed position.
var errRewind = errors.New("filetail: rewinding to the last delivered position")

type reader struct {
	s         *Source
	cfg       config
	path, key string
	gz        bool
	out       chan<- ferry.Batch[ferry.Entry]
	labels    atomic.Pointer[labels.Labels]
	wake      chan struct{}
	clock     *pollClock
	tracker   *positions.Tracker[pos]
	forget    atomic.Bool
	rep       ferry.Reporter

	mu       sync.Mutex
	stopReq  bool
	stopFlag atomic.Bool // stopReq, for the read loop
	exited   bool

	first    bool // the file has not been opened yet
	finished bool // nothing more to read: a compressed file read once, or skipped
	startPos *pos // where a file without stored position started
	stored   *pos // where to resume at the next open
	failing  bool
	lastErr  string

	// The open file.
	f                *os.File
	src              io.Reader // f, or a gzip reader over it
	id               ident
	fpLen            int
	fp               uint64
	lastSize         int64
	lastMod          time.Time
	off              int64 // offset of buf[r] in the file (or uncompressed stream)
	buf              []byte
	r, w             int
	skipping         bool // discarding the rest of a line that was too long
	bomDone          bool
	bigEndian, utf16 bool
	scratch          []byte
	idleSince        time.Time // when a replaced file was last seen growing
	items            []ferry.Entry
	bytes            int
	ts               time.Time
	lbls             labels.Labels
}

var itemPool, bufPool sync.Pool

// getBuf returns a read buffer of initialBuffer bytes. Readers hold one
// only while reading or while a partial line waits in it, so that idle
// files cost no buffer memory.
func getBuf() []byte {
	if b, ok := bufPool.Get().(*[]byte); ok {
		return *b
	}
	return make([]byte, initialBuffer)
}

// releaseBuf gives the buffer back when it holds nothing. Grown buffers
// (long lines) are left to the garbage collector.
func (r *reader) releaseBuf() {
	if r.buf == nil || r.r != r.w {
		return
	}
	if len(r.buf) == initialBuffer {
		b := r.buf
		bufPool.Put(&b)
	}
	r.buf, r.r, r.w = nil, 0, 0
}

func getItems(n int) []ferry.Entry {
	if v, ok := itemPool.Get().(*[]ferry.Entry); ok && cap(*v) >= n {
		return (*v)[:0]
	}
	return make([]ferry.Entry, 0, n)
}

func putItems(items []ferry.Entry) {
	clear(items)
	items = items[:0]
	itemPool.Put(&items)
}

func (s *Source) newReader(path string, ls labels.Labels, cfg config, clock *pollClock, out chan<- ferry.Batch[ferry.Entry]) *reader {
	r := &reader{
		s: s, cfg: cfg, path: path, key: KeyPrefix + path, out: out, first: true,
		gz:   strings.HasSuffix(path, ".gz"),
		wake: make(chan struct{}, 1), clock: clock,
	}
	r.labels.Store(&ls)
	var start pos
	ok := false
	{
		if v, found := s.getPos(r.key); found {
			if p, valid := parsePos(v); valid {
				start, ok = p, true
				r.stored = &p
			}
		}
	}
	r.tracker = positions.NewTracker(start, ok, func(p pos) {
		if !r.forget.Load() {
			s.setPos(r.key, p.String())
		}
	})
	switch s.Encoding {
	case UTF16, UTF16LE:
		r.utf16 = true
	case UTF16BE:
		r.utf16, r.bigEndian = true, true
	}
	return r
}

// poke wakes the reader without blocking.
func (r *reader) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// requestStop asks the reader to finish: its target is gone.
func (r *reader) requestStop() {
	r.mu.Lock()
	r.stopReq = true
	r.stopFlag.Store(true)
	r.mu.Unlock()
	r.poke()
}

// revive cancels a stop request and updates the labels, unless the reader
// already decided to exit.
func (r *reader) revive(ls labels.Labels) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.exited {
		return false
	}
	r.stopReq = false
	r.stopFlag.Store(false)
	if old := r.labels.Load(); !labels.Equal(*old, ls) {
		r.labels.Store(&ls)
	}
	return true
}

func (r *reader) tryExit() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.stopReq {
		return false
	}
	r.exited = true
	return true
}

// wait waits for the next poll or a notification, and reports false when
// ctx ended first.
func (r *reader) wait(ctx context.Context) bool {
	select {
	case <-ctx.Done():
		return false
	case <-r.wake:
	case <-r.clock.next():
	}
	return true
}

func (r *reader) fail(err error) {
	msg := err.Error()
	if !r.failing {
		r.failing = true
		r.s.setFailing(r.rep, true, err)
	}
	if msg != r.lastErr {
		r.lastErr = msg
		r.rep.Logger().Error("cannot read file; retrying", "path", r.path, "err", err)
	}
}

func (r *reader) recovered() {
	if r.failing {
		r.failing = false
		r.lastErr = ""
		r.s.setFailing(r.rep, false, nil)
		r.rep.Logger().Info("reading file again", "path", r.path)
	}
}

// run follows the file until its target is gone or ctx ends.
func (r *reader) run(ctx context.Context) {
	r.rep = r.s.rep
	defer func() {
		r.closeFile()
		if r.failing {
			r.s.setFailing(r.rep, false, nil)
		}
	}()
	for ctx.Err() == nil {
		if r.finished {
			// Compressed (read once) or skipped: nothing more to read.
			for r.waitOrExit(ctx) {
			}
			return
		}
		if r.f == nil {
			if err := r.open(ctx); err != nil {
				if ctx.Err() != nil {
					return
				}
				if r.tryExit() {
					r.exit()
					return
				}
				if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, errRewind) {
					r.fail(err)
				}
				if !r.wait(ctx) {
					return
				}
				continue
			}
			r.recovered()
		} else if !r.gz {
			// Look before reading on: a file rewritten since the last
			// read must not be read on from the old offset.
			switch r.check() {
			case unchanged:
				// Nothing to read: a file that does not grow costs its
				// reader a stat a poll, not a read as well.
				if !r.waitOrExit(ctx) {
					return
				}
				continue
			case truncated:
				if err := r.recoverCopy(ctx); err != nil {
					r.reopenLater(err)
					continue
				}
			case replaced:
				// Read the old file on until writers have left it for
				// RotateWait, then to its very end, then switch.
				before := r.readOff()
				if err := r.readAvailable(ctx, false); err != nil {
					r.reopenLater(err)
					continue
				}
				now := time.Now()
				if r.idleSince.IsZero() || r.readOff() != before {
					r.idleSince = now
				}
				if now.Sub(r.idleSince) < r.cfg.rotateWait {
					if !r.wait(ctx) {
						return
					}
					continue
				}
				if err := r.readAvailable(ctx, true); err != nil {
					r.reopenLater(err)
					continue
				}
				r.closeFile()
				continue
			}
		}
		// A compressed file is complete: its last line needs no newline.
		err := r.readAvailable(ctx, r.gz)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			r.reopenLater(err)
			if !r.wait(ctx) {
				return
			}
			continue
		}
		if r.gz {
			r.finished = true
			r.closeFile()
			continue
		}
		if !r.waitOrExit(ctx) {
			return
		}
	}
}

// waitOrExit ends a reader that has read all there is: it exits if its
// target is gone, and waits for the next poll otherwise. It reports
// whether the reader goes on.
func (r *reader) waitOrExit(ctx context.Context) bool {
	if r.tryExit() {
		r.exit()
		return false
	}
	return r.wait(ctx)
}

// exit forgets the position of a file that no longer exists.
func (r *reader) exit() {
	if _, err := os.Stat(r.path); errors.Is(err, fs.ErrNotExist) {
		r.forget.Store(true)
		r.s.delPos(r.key)
	}
}

// reopenLater closes the file after err; the next open resumes at the
// committed position (a rewind) or where reading stopped.
func (r *reader) reopenLater(err error) {
	if errors.Is(err, errRewind) {
		c, ok := r.tracker.Committed()
		r.rep.Logger().Warn("delivery failed; reading again from the last delivered position",
			"path", r.path, "offset", c.off, "err", r.tracker.Err())
		r.tracker.Reset()
		switch {
		case ok:
			r.stored = &c
		case r.startPos != nil:
			r.stored = r.startPos
		default:
			r.stored = &pos{id: r.id}
		}
	} else {
		r.fail(err)
		if r.f != nil {
			p := pos{off: r.off, id: r.id, fpLen: r.fpLen, fp: r.fp}
			r.stored = &p
		}
	}
	r.discardItems()
	r.closeFile()
}

func (r *reader) discardItems() {
	if r.items != nil {
		putItems(r.items)
		r.items, r.bytes = nil, 0
	}
}

func (r *reader) closeFile() {
	if r.f != nil {
		r.f.Close()
	}
	r.f, r.src = nil, nil
	r.discardItems()
}

// open opens the file at the path and positions it: at the stored
// position if it still names this file, after reading the rest of the
// rotated file it names otherwise; at the end or the beginning for a file
// without position.
func (r *reader) open(ctx context.Context) error {
	f, err := os.Open(r.path)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return fmt.Errorf("%s: not a regular file (%s)", r.path, fi.Mode().Type())
	}
	id := identOf(fi)
	fpLen, fp, err := fingerprint(f, fi.Size(), r.cfg.fpSize)
	if err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", r.path, err)
	}
	if r.gz && !r.s.Decompress {
		f.Close()
		r.rep.Logger().Warn("skipping compressed file (Decompress is off)", "path", r.path)
		r.finished = true
		return nil
	}
	start := int64(0)
	if st := r.stored; st != nil {
		r.stored = nil
		same := (!st.id.known() || st.id == id) && st.fpLen <= fpLen &&
			prefixMatches(f, st.fpLen, st.fp) && (r.gz || st.off <= fi.Size())
		if same {
			start = st.off
		} else if !r.gz && st.off > 0 {
			// Rotated or truncated while not followed: finish the old file.
			if old := findRotated(r.path, *st, true, id); old != nil {
				if err := r.readRest(ctx, old, *st); err != nil {
					f.Close()
					return err
				}
			}
		}
	} else if r.first && r.s.StartAt == StartEnd && !r.gz && fi.ModTime().Before(r.s.startTime.Add(-clockSlack)) {
		start = fi.Size()
		p := pos{off: start, id: id, fpLen: fpLen, fp: fp}
		r.startPos = &p
		r.s.setPos(r.key, p.String())
	}
	r.first = false
	var src io.Reader = f
	if r.gz {
		zr, err := gzip.NewReader(f)
		if err != nil {
			f.Close()
			return fmt.Errorf("%s: %w", r.path, err)
		}
		if start > 0 {
			if _, err := io.CopyN(io.Discard, zr, start); err != nil && err != io.EOF {
				f.Close()
				return fmt.Errorf("%s: %w", r.path, err)
			}
		}
		src = zr
	} else if _, err := f.Seek(start, io.SeekStart); err != nil {
		f.Close()
		return err
	}
	r.setFile(f, src, id, fpLen, fp, start)
	r.lastSize, r.lastMod = fi.Size(), fi.ModTime()
	return nil
}

func (r *reader) setFile(f *os.File, src io.Reader, id ident, fpLen int, fp uint64, off int64) {
	r.f, r.src, r.id, r.fpLen, r.fp, r.off = f, src, id, fpLen, fp, off
	r.r, r.w = 0, 0
	r.skipping = false
	r.bomDone = off != 0
	r.idleSince = time.Time{}
	if off != 0 && r.s.Encoding == UTF16 && f != nil {
		// Resuming: the byte order mark is behind us; look at it again.
		var bom [2]byte
		if n, _ := f.ReadAt(bom[:], 0); n == 2 {
			r.bigEndian = bom[0] == 0xFE && bom[1] == 0xFF
		}
	}
}

// readRest reads old, the file the stored position p named, from p to its
// end, then closes it.
func (r *reader) readRest(ctx context.Context, old *os.File, p pos) error {
	fi, err := old.Stat()
	if err != nil {
		old.Close()
		return nil
	}
	if _, err := old.Seek(p.off, io.SeekStart); err != nil {
		old.Close()
		return nil
	}
	r.rep.Logger().Info("reading the rest of a rotated file", "path", r.path, "rotated", old.Name(), "offset", p.off)
	r.setFile(old, old, identOf(fi), p.fpLen, p.fp, p.off)
	err = r.readAvailable(ctx, true)
	r.closeFile()
	return err
}

type fileState int

const (
	same      fileState = iota // the path names the file, which may have grown
	unchanged                  // the same, and nothing was written past what was read
	truncated
	replaced
)

// check looks at the open file at its end: whether it shrank or was
// rewritten (copytruncate), whether the path still names it, and whether
// it holds more than was read.
func (r *reader) check() fileState {
	// While the path names the open file, the path's stat is the file's
	// own: a file that did not change costs one stat a poll.
	pst, perr := os.Stat(r.path)
	fi := pst
	atPath := perr == nil && r.id.known() && identOf(pst) == r.id
	if !atPath {
		var err error
		if fi, err = r.f.Stat(); err != nil {
			return replaced
		}
	}
	if fi.Size() < r.readOff() {
		return truncated
	}
	if fi.Size() != r.lastSize || !fi.ModTime().Equal(r.lastMod) {
		r.lastSize, r.lastMod = fi.Size(), fi.ModTime()
		if r.fpLen > 0 && !prefixMatches(r.f, r.fpLen, r.fp) {
			return truncated
		}
		if r.fpLen < r.cfg.fpSize && fi.Size() > int64(r.fpLen) {
			if n, h, err := fingerprint(r.f, fi.Size(), r.cfg.fpSize); err == nil {
				r.fpLen, r.fp = n, h
			}
		}
	}
	if !atPath && (errors.Is(perr, fs.ErrNotExist) || perr == nil && !os.SameFile(fi, pst)) {
		return replaced
	}
	if fi.Mode().IsRegular() && fi.Size() == r.readOff() {
		return unchanged
	}
	return same
}

// recoverCopy handles a truncated file: it reads the rest of the copy that
// copytruncate made, if one is found next to the file, then starts the file
// again from its beginning.
func (r *reader) recoverCopy(ctx context.Context) error {
	r.rep.Logger().Info("file shrank; reading it again from the start", "path", r.path, "offset", r.off)
	cur, curID := r.f, r.id
	p := pos{off: r.off, fpLen: r.fpLen, fp: r.fp}
	r.f = nil // keep cur open across readRest
	r.discardItems()
	if cp := findRotated(r.path, p, true, curID); cp != nil {
		if err := r.readRest(ctx, cp, p); err != nil {
			cur.Close()
			return err
		}
	}
	fi, err := cur.Stat()
	if err != nil {
		cur.Close()
		return err
	}
	fpLen, fp, err := fingerprint(cur, fi.Size(), r.cfg.fpSize)
	if err != nil {
		cur.Close()
		return err
	}
	if _, err := cur.Seek(0, io.SeekStart); err != nil {
		cur.Close()
		return err
	}
	r.setFile(cur, cur, curID, fpLen, fp, 0)
	r.lastSize, r.lastMod = fi.Size(), fi.ModTime()
	return nil
}

// readAvailable reads to the current end of the file, handing on complete
// lines, and sends what it collected. With final set, a last line without
// newline is handed on too.
func (r *reader) readAvailable(ctx context.Context, final bool) error {
	if r.src == nil {
		return nil
	}
	if r.buf == nil {
		r.buf = getBuf()
	}
	defer r.releaseBuf()
	r.lbls = *r.labels.Load()
	for {
		n, err := r.fill()
		if n > 0 {
			r.ts = time.Now()
			if lerr := r.lines(ctx, false); lerr != nil {
				return lerr
			}
		}
		if err == io.EOF || n == 0 && err == nil {
			break
		}
		if !final && r.stopFlag.Load() {
			break // the target is gone: do not follow a file that keeps growing
		}
		if err != nil {
			return fmt.Errorf("%s: %w", r.path, err)
		}
	}
	if final {
		if err := r.lines(ctx, true); err != nil {
			return err
		}
	}
	return r.flush(ctx)
}

func (r *reader) fill() (int, error) {
	if r.r == r.w {
		r.r, r.w = 0, 0
	}
	if r.w == len(r.buf) {
		if r.r > 0 {
			r.w = copy(r.buf, r.buf[r.r:r.w])
			r.r = 0
		} else if limit := r.cfg.maxLine + 4; len(r.buf) < limit {
			nb := make([]byte, min(2*len(r.buf), limit))
			r.w = copy(nb, r.buf[:r.w])
			r.buf = nb
		} else {
			return 0, nil
		}
	}
	n, err := r.src.Read(r.buf[r.w:])
	r.w += n
	return n, err
}

// readOff is the offset up to which the file was read.
func (r *reader) readOff() int64 { return r.off + int64(r.w-r.r) }

func (r *reader) consume(n int) {
	r.r += n
	r.off += int64(n)
}

// lines hands on the complete lines in the buffer.
func (r *reader) lines(ctx context.Context, final bool) error {
	if !r.bomDone {
		if !r.skipBOM(final) {
			return nil
		}
	}
	if r.utf16 {
		return r.lines16(ctx, final)
	}
	maxLen := r.cfg.maxLine
	for r.r < r.w {
		data := r.buf[r.r:r.w]
		if r.skipping {
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				r.consume(len(data))
				return nil
			}
			r.consume(i + 1)
			r.skipping = false
			continue
		}
		j := bytes.LastIndexByte(data, '\n')
		if j < 0 {
			switch {
			case len(data) > maxLen:
				r.consume(len(data))
				r.skipping = true
				if err := r.long(ctx, string(data[:maxLen])); err != nil {
					return err
				}
			case final:
				r.consume(len(data))
				if err := r.add(ctx, string(trimCR(data))); err != nil {
					return err
				}
			}
			return nil
		}
		// One string for all complete lines: entries share it.
		chunk := string(data[:j+1])
		for len(chunk) > 0 {
			i := strings.IndexByte(chunk, '\n')
			line := chunk[:i]
			chunk = chunk[i+1:]
			r.consume(i + 1)
			if n := len(line); n > 0 && line[n-1] == '\r' {
				line = line[:n-1]
			}
			var err error
			if len(line) > maxLen {
				err = r.long(ctx, line[:maxLen])
			} else {
				err = r.add(ctx, line)
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// long applies the long-line policy; prefix is the line cut to the maximum.
func (r *reader) long(ctx context.Context, prefix string) error {
	if r.s.LongLines == source.DropLongLines {
		r.rep.Dropped("line_too_long", 1)
		return nil
	}
	r.rep.Dropped("line_truncated", 1)
	return r.add(ctx, prefix)
}

func trimCR(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\r' {
		return b[:n-1]
	}
	return b
}

// skipBOM consumes a byte order mark at the start of the file, and for
// UTF16 picks the byte order from it. It reports false when more bytes are
// needed to decide.
func (r *reader) skipBOM(final bool) bool {
	data := r.buf[r.r:r.w]
	if r.utf16 {
		if len(data) < 2 && !final {
			return false
		}
		r.bomDone = true
		if len(data) >= 2 {
			switch {
			case data[0] == 0xFF && data[1] == 0xFE:
				r.bigEndian = false
				r.consume(2)
			case data[0] == 0xFE && data[1] == 0xFF:
				r.bigEndian = true
				r.consume(2)
			}
		}
		return true
	}
	if len(data) < 3 && !final && bytes.HasPrefix([]byte{0xEF, 0xBB, 0xBF}, data) {
		return false
	}
	r.bomDone = true
	if bytes.HasPrefix(data, []byte{0xEF, 0xBB, 0xBF}) {
		r.consume(3)
	}
	return true
}

// index16 returns the offset of the first newline code unit in data, or -1.
func index16(data []byte, bigEndian bool) int {
	k := 0
	for k < len(data) {
		i := bytes.IndexByte(data[k:], '\n')
		if i < 0 {
			return -1
		}
		p := k + i
		if !bigEndian && p%2 == 0 && p+1 < len(data) && data[p+1] == 0 {
			return p
		}
		if bigEndian && p%2 == 1 && data[p-1] == 0 {
			return p - 1
		}
		k = p + 1
	}
	return -1
}

func (r *reader) lines16(ctx context.Context, final bool) error {
	maxLen := r.cfg.maxLine &^ 1
	for r.r < r.w {
		data := r.buf[r.r:r.w]
		i := index16(data, r.bigEndian)
		if r.skipping {
			if i < 0 {
				r.consume(len(data) &^ 1)
				return nil
			}
			r.consume(i + 2)
			r.skipping = false
			continue
		}
		if i < 0 {
			switch {
			case len(data) > maxLen:
				r.consume(len(data) &^ 1)
				r.skipping = true
				if err := r.long(ctx, r.decode16(data[:maxLen])); err != nil {
					return err
				}
			case final && len(data) > 0:
				r.consume(len(data))
				if err := r.add(ctx, r.decode16(data)); err != nil {
					return err
				}
			}
			return nil
		}
		raw := data[:i]
		r.consume(i + 2)
		var err error
		if len(raw) > maxLen {
			err = r.long(ctx, r.decode16(raw[:maxLen]))
		} else {
			err = r.add(ctx, r.decode16(raw))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// decode16 turns UTF-16 bytes into a UTF-8 string without a trailing "\r".
// Invalid sequences become U+FFFD.
func (r *reader) decode16(b []byte) string {
	out := r.scratch[:0]
	for i := 0; i+1 < len(b); i += 2 {
		u := rune(b[i]) | rune(b[i+1])<<8
		if r.bigEndian {
			u = rune(b[i])<<8 | rune(b[i+1])
		}
		if utf16.IsSurrogate(u) && i+3 < len(b) {
			u2 := rune(b[i+2]) | rune(b[i+3])<<8
			if r.bigEndian {
				u2 = rune(b[i+2])<<8 | rune(b[i+3])
			}
			if d := utf16.DecodeRune(u, u2); d != utf8.RuneError {
				out = utf8.AppendRune(out, d)
				i += 2
				continue
			}
		}
		if utf16.IsSurrogate(u) {
			u = utf8.RuneError
		}
		out = utf8.AppendRune(out, u)
	}
	r.scratch = out
	return string(trimCR(out))
}

func (r *reader) add(ctx context.Context, line string) error {
	if r.items == nil {
		r.items = getItems(r.cfg.batchSize)
	}
	r.items = append(r.items, ferry.Entry{Labels: r.lbls, Timestamp: r.ts, Line: line})
	r.bytes += len(line)
	if len(r.items) >= r.cfg.batchSize || r.bytes >= r.cfg.batchBytes {
		return r.flush(ctx)
	}
	return nil
}

// flush sends the collected lines as one batch, tracked at the current
// offset. It returns errRewind instead when an earlier batch failed.
func (r *reader) flush(ctx context.Context) error {
	if r.tracker.Err() != nil {
		return errRewind
	}
	if len(r.items) == 0 {
		return nil
	}
	done := r.tracker.Track(pos{off: r.off, id: r.id, fpLen: r.fpLen, fp: r.fp})
	items := r.items
	r.items, r.bytes = nil, 0
	b := ferry.NewBatch(items, func(err error) {
		done(err)
		putItems(items)
	})
	return source.Send(ctx, r.out, b)
}
