package filetail

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/internal/poll"
	"github.com/ferrydev/ferry/internal/reptest"
	"github.com/ferrydev/ferry/positions"
	"github.com/ferrydev/ferry/source"
	"github.com/prometheus/prometheus/model/labels"
)

// harness runs a Source and collects what it sends.
type harness struct {
	t       *testing.T
	s       *Source
	targets chan []labels.Labels
	out     chan ferry.Batch[ferry.Entry]
	cancel  context.CancelFunc
	done    chan error
	rep     *reptest.Reporter

	mu      sync.Mutex
	entries []ferry.Entry
	// outcome decides each batch's acknowledgement; nil acks with nil.
	outcome func(n int, b ferry.Batch[ferry.Entry]) error
	batches int
	consume chan struct{} // closed when consumption may start
}

func start(t *testing.T, s *Source, paths ...string) *harness {
	t.Helper()
	return startWith(t, s, nil, paths...)
}

// startWith is start with an outcome for every batch, installed before the
// first batch can arrive.
func startWith(t *testing.T, s *Source, outcome func(n int, b ferry.Batch[ferry.Entry]) error, paths ...string) *harness {
	t.Helper()
	h := &harness{
		t: t, s: s, targets: make(chan []labels.Labels, 1), out: make(chan ferry.Batch[ferry.Entry], 4),
		done: make(chan error, 1), rep: &reptest.Reporter{}, consume: make(chan struct{}), outcome: outcome,
	}
	close(h.consume)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the source logged:\n%s", h.rep.Logs())
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.setTargets(paths...)
	if err := s.Start(ctx, h.rep); err != nil {
		t.Fatal(err)
	}
	go func() { h.done <- s.Run(ctx, h.targets, h.out) }()
	go func() {
		for b := range h.out {
			<-h.consume
			h.mu.Lock()
			var err error
			if h.outcome != nil {
				err = h.outcome(h.batches, b)
			}
			h.batches++
			if err == nil {
				h.entries = append(h.entries, b.Items...)
			}
			h.mu.Unlock()
			b.Done(err)
		}
	}()
	return h
}

func (h *harness) setTargets(paths ...string) {
	var set []labels.Labels
	for _, p := range paths {
		set = append(set, labels.FromStrings(PathLabel, p, "job", "test", "__meta_x", "y"))
	}
	h.targets <- set
}

func (h *harness) stop() {
	h.t.Helper()
	h.cancel()
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		h.t.Fatal("Run did not return")
	}
	// Drain what is left in the channel: a pipeline acknowledges it with
	// an error on shutdown.
	for {
		select {
		case b := <-h.out:
			b.Done(context.Canceled)
			continue
		default:
		}
		break
	}
	if err := h.s.Close(context.Background()); err != nil {
		h.t.Fatalf("Close: %v", err)
	}
}

func (h *harness) lines() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]string, len(h.entries))
	for i, e := range h.entries {
		out[i] = e.Line
	}
	return out
}

// waitLines waits until n lines arrived and returns them.
func (h *harness) waitLines(n int) []string {
	h.t.Helper()
	if poll.Wait(poll.Timeout, func() bool { return len(h.lines()) >= n }) {
		return h.lines()
	}
	l := h.lines()
	h.t.Fatalf("got %d lines, want %d: %q", len(l), n, tail(l, 5))
	return nil
}

// settle waits until no line arrived for a while and returns them all.
func (h *harness) settle() []string {
	n := -1
	for {
		time.Sleep(300 * time.Millisecond) // quiet for a while: the thing to observe
		l := h.lines()
		if len(l) == n {
			return l
		}
		n = len(l)
	}
}

func tail(s []string, n int) []string { return s[max(0, len(s)-n):] }

func appendLines(t *testing.T, path, prefix string, from, to int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for i := from; i < to; i++ {
		fmt.Fprintf(&b, "%s %06d\n", prefix, i)
	}
	if _, err := f.WriteString(b.String()); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

func want(prefix string, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("%s %06d", prefix, i))
	}
	return out
}

func equalLines(t *testing.T, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("got %d lines, want %d\n got tail %q\nwant tail %q", len(got), len(want), tail(got, 3), tail(want, 3))
	}
}

func fast() *Source {
	return &Source{StartAt: StartBeginning, PollInterval: 20 * time.Millisecond, RotateWait: 100 * time.Millisecond, SaveInterval: 50 * time.Millisecond, BatchSize: 100}
}

func TestTailFromBeginningAndFollow(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.log")
	appendLines(t, p, "a", 0, 500)
	h := start(t, fast(), p)
	defer h.stop()
	h.waitLines(500)
	appendLines(t, p, "a", 500, 1000)
	equalLines(t, h.waitLines(1000), want("a", 0, 1000))
	h.mu.Lock()
	e := h.entries[0]
	h.mu.Unlock()
	if got := e.Labels.Get(FilenameLabel); got != p {
		t.Errorf("filename = %q", got)
	}
	if e.Labels.Get("job") != "test" || e.Labels.Has("__meta_x") || e.Labels.Has(PathLabel) {
		t.Errorf("labels = %v", e.Labels)
	}
	if e.Timestamp.IsZero() {
		t.Error("zero timestamp")
	}
}

func TestStartEnd(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.log")
	appendLines(t, p, "old", 0, 100)
	past := time.Now().Add(-time.Hour)
	os.Chtimes(p, past, past)
	s := fast()
	s.StartAt = StartEnd
	h := start(t, s, p)
	defer h.stop()
	waitFor(t, func() bool { _, ok := s.getPos(KeyPrefix + p); return ok }) // opened
	appendLines(t, p, "new", 0, 10)
	equalLines(t, h.settle(), want("new", 0, 10))
	// A file that appears later is read from its beginning.
	q := filepath.Join(dir, "b.log")
	appendLines(t, q, "b", 0, 10)
	h.setTargets(p, q)
	got := h.waitLines(20)
	equalLines(t, got[10:], want("b", 0, 10))
}

func TestRotateRenameCreate(t *testing.T) {
	for _, watch := range []bool{true, false} {
		t.Run(fmt.Sprintf("watch=%v", watch), func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "app.log")
			appendLines(t, p, "l", 0, 1000)
			s := fast()
			s.DisableWatch = !watch
			h := start(t, s, p)
			defer h.stop()
			h.waitLines(1000)
			n := 1000
			for round := 0; round < 5; round++ {
				// Write, rotate while lines are unread, write to the old file
				// after the rename (as a writer that has not reopened yet),
				// then to the new one.
				appendLines(t, p, "l", n, n+300)
				if err := os.Rename(p, fmt.Sprintf("%s.%d", p, round)); err != nil {
					t.Fatal(err)
				}
				appendLines(t, fmt.Sprintf("%s.%d", p, round), "l", n+300, n+400)
				appendLines(t, p, "l", n+400, n+700)
				n += 700
				// A reader that misses a whole generation cannot know it
				// existed: give it time to see each rotation.
				h.waitLines(n)
			}
			equalLines(t, h.waitLines(n), want("l", 0, n))
			equalLines(t, h.settle(), want("l", 0, n))
		})
	}
}

func TestRotateCopyTruncate(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.log")
	appendLines(t, p, "l", 0, 1000)
	s := fast()
	s.DisableWatch = true
	s.PollInterval = time.Hour // the test wakes the reader
	// No reading here ends on a full batch (1000, 200 and 1300 lines), so
	// its last batch goes on only after the read that found the end of
	// the file: once waitLines has it, the reader reads nothing until it
	// is woken. With batches that divide a reading, the last one went on
	// before that read, which could then see the file truncated and
	// rewritten below and read the new lines from the old offset (1 run
	// in 300 under -race).
	s.BatchSize = 128
	h := start(t, s, p)
	defer h.stop()
	h.waitLines(1000)
	n := 1000
	for round := 0; round < 3; round++ {
		// Lines written after the last read end up only in the copy.
		appendLines(t, p, "l", n, n+200)
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(fmt.Sprintf("%s.%d", p, round), data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(p, 0); err != nil {
			t.Fatal(err)
		}
		// More lines than were there: the size check alone would miss it.
		appendLines(t, p, "l", n+200, n+1500)
		n += 1500
		h.s.mu.Lock()
		r := h.s.byPath[p]
		h.s.mu.Unlock()
		r.poke()
		dups(t, h.waitLines(n))
		equalLines(t, h.waitLines(n), want("l", 0, n))
	}
	equalLines(t, h.settle(), want("l", 0, n))
}

func TestTruncateWithoutCopy(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.log")
	appendLines(t, p, "a", 0, 100)
	h := start(t, fast(), p)
	defer h.stop()
	h.waitLines(100)
	if err := os.Truncate(p, 0); err != nil {
		t.Fatal(err)
	}
	// The truncation alone, seen by a poll, before more is written.
	poll.Until(t, func() bool { return strings.Contains(h.rep.Logs(), "file shrank") }, "the truncation to be seen")
	appendLines(t, p, "b", 0, 10)
	got := h.waitLines(110)
	equalLines(t, got[100:], want("b", 0, 10))
}

func TestDeletedFileReadToEnd(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.log")
	appendLines(t, p, "a", 0, 100)
	s := fast()
	s.DisableWatch = true
	s.PollInterval = time.Hour
	h := start(t, s, p)
	defer h.stop()
	h.waitLines(100)
	// Written, then deleted before the reader looked; the last line has
	// no newline.
	appendLines(t, p, "a", 100, 200)
	f, _ := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("last")
	f.Close()
	os.Remove(p)
	h.s.mu.Lock()
	r := h.s.byPath[p]
	h.s.mu.Unlock()
	stopPoking := make(chan struct{})
	go func() {
		for {
			select {
			case <-stopPoking:
				return
			case <-time.After(10 * time.Millisecond):
				r.poke()
			}
		}
	}()
	defer close(stopPoking)
	got := h.waitLines(201)
	equalLines(t, got, append(want("a", 0, 200), "last"))
	// The target vanishes: the reader stops.
	h.setTargets()
	poll.Until(t, func() bool {
		h.s.mu.Lock()
		n := len(h.s.byPath)
		h.s.mu.Unlock()
		r.poke()
		return n == 0
	}, "the reader to stop")
}

func TestFilesAppearAndDisappear(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.log"), filepath.Join(dir, "b.log")
	appendLines(t, a, "a", 0, 10)
	h := start(t, fast(), a, b) // b does not exist yet
	defer h.stop()
	h.waitLines(10)
	appendLines(t, b, "b", 0, 10)
	h.waitLines(20)
	h.setTargets(b) // a goes away
	waitFor(t, func() bool {
		h.s.mu.Lock()
		defer h.s.mu.Unlock()
		return h.s.byPath[a] == nil
	})
	appendLines(t, a, "a", 10, 20)
	appendLines(t, b, "b", 10, 20)
	got := h.settle()
	var bs []string
	for _, l := range got {
		if strings.HasPrefix(l, "b") {
			bs = append(bs, l)
		}
	}
	equalLines(t, bs, want("b", 0, 20))
	if len(got) != 30 {
		t.Fatalf("got %d lines, want 30 (a's later lines must not be read)", len(got))
	}
	// a comes back: it continues where it stopped.
	h.setTargets(a, b)
	got = h.waitLines(40)
	equalLines(t, got[30:], want("a", 10, 20))
}

func TestUnreadableFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.log")
	bad := filepath.Join(dir, "bad.log")
	if err := os.Mkdir(bad, 0o755); err != nil { // a directory cannot be tailed
		t.Fatal(err)
	}
	appendLines(t, good, "g", 0, 50)
	h := start(t, fast(), good, bad)
	defer h.stop()
	equalLines(t, h.waitLines(50), want("g", 0, 50))
	health, errs := h.rep.Healths(), h.rep.Errors()
	if !slices.Contains(health, ferry.Degraded) || len(errs) == 0 || !strings.Contains(errs[0].Error(), "bad.log: not a regular file") {
		t.Fatalf("health %v errs %v", health, errs)
	}
	// Fixing it makes the source healthy again.
	os.Remove(bad)
	appendLines(t, bad, "b", 0, 5)
	h.waitLines(55)
	poll.Until(t, func() bool { hl, _ := h.rep.Health(); return hl == ferry.Healthy }, "the source to be healthy again")
}

func TestLongLines(t *testing.T) {
	for _, policy := range []source.LongLinePolicy{source.TruncateLongLines, source.DropLongLines} {
		t.Run(fmt.Sprint(policy), func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "a.log")
			long := strings.Repeat("x", 200<<10) // longer than the initial buffer
			os.WriteFile(p, []byte("short\n"+long+"\n"+strings.Repeat("y", 101)+"\nend\n"), 0o644)
			s := fast()
			s.MaxLineSize = 100
			s.LongLines = policy
			h := start(t, s, p)
			defer h.stop()
			got := h.settle()
			wantLines := []string{"short", strings.Repeat("x", 100), strings.Repeat("y", 100), "end"}
			reason := "line_truncated"
			if policy == source.DropLongLines {
				wantLines = []string{"short", "end"}
				reason = "line_too_long"
			}
			equalLines(t, got, wantLines)
			if n := h.rep.Drops(reason); n != 2 {
				t.Errorf("dropped[%s] = %d", reason, n)
			}
		})
	}
}

func TestCRLFAndBOM(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.log")
	os.WriteFile(p, []byte("\xEF\xBB\xBFone\r\ntwo\r\n\nthree\n"), 0o644)
	h := start(t, fast(), p)
	defer h.stop()
	equalLines(t, h.settle(), []string{"one", "two", "", "three"})
}

func utf16Bytes(s string, bigEndian, bom bool) []byte {
	var out []byte
	if bom {
		if bigEndian {
			out = append(out, 0xFE, 0xFF)
		} else {
			out = append(out, 0xFF, 0xFE)
		}
	}
	for _, r := range s {
		var units []uint16
		if r >= 0x10000 {
			r -= 0x10000
			units = []uint16{uint16(0xD800 + r>>10), uint16(0xDC00 + r&0x3FF)}
		} else {
			units = []uint16{uint16(r)}
		}
		for _, u := range units {
			if bigEndian {
				out = append(out, byte(u>>8), byte(u))
			} else {
				out = append(out, byte(u), byte(u>>8))
			}
		}
	}
	return out
}

func TestUTF16(t *testing.T) {
	text := "héllo\r\nwörld 😀\n\u0a0a line\n"
	for _, tc := range []struct {
		enc      Encoding
		big, bom bool
	}{{UTF16, false, true}, {UTF16, true, true}, {UTF16LE, false, false}, {UTF16BE, true, false}, {UTF16LE, false, true}} {
		t.Run(fmt.Sprint(tc), func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "a.log")
			os.WriteFile(p, utf16Bytes(text, tc.big, tc.bom), 0o644)
			s := fast()
			s.Encoding = tc.enc
			h := start(t, s, p)
			defer h.stop()
			equalLines(t, h.settle(), []string{"héllo", "wörld 😀", "\u0a0a line"})
		})
	}
}

func TestGzipReadOnce(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "old.log.gz")
	f, _ := os.Create(p)
	zw := gzip.NewWriter(f)
	for _, l := range want("z", 0, 3000) {
		io.WriteString(zw, l+"\n")
	}
	io.WriteString(zw, "no newline")
	zw.Close()
	f.Close()
	pf := filepath.Join(dir, "positions.json")
	pos, _ := positions.Open(pf, positions.Options{})
	s := fast()
	s.Decompress = true
	s.PositionsFile = pos
	h := start(t, s, p)
	equalLines(t, h.settle(), append(want("z", 0, 3000), "no newline"))
	h.stop()

	pos2, _ := positions.Open(pf, positions.Options{})
	s2 := fast()
	s2.Decompress = true
	s2.PositionsFile = pos2
	h2 := start(t, s2, p)
	if got := h2.settle(); len(got) != 0 {
		t.Fatalf("compressed file read again: %d lines", len(got))
	}
	h2.stop()

	// Without Decompress the file is skipped.
	h3 := start(t, fast(), p)
	if got := h3.settle(); len(got) != 0 {
		t.Fatalf("read %d lines of a compressed file", len(got))
	}
	h3.stop()
}

// TestCrashRestart stops a source while part of what it sent is not
// acknowledged, and starts a new one on the same positions file: every line
// arrives, and the only lines seen twice are those not acknowledged.
func TestCrashRestart(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.log")
	pf := filepath.Join(dir, "positions.json")
	appendLines(t, p, "l", 0, 5000)

	pos, err := positions.Open(pf, positions.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := fast()
	s.PositionsFile = pos
	// Deliver 20 batches, then fail the rest (as a sink that went down).
	h := startWith(t, s, func(n int, b ferry.Batch[ferry.Entry]) error {
		if n < 20 {
			return nil
		}
		return errors.New("loki down")
	}, p)
	poll.Until(t, func() bool { h.mu.Lock(); defer h.mu.Unlock(); return h.batches > 20 }, "a failed batch")
	h.stop()
	first := h.lines()
	if len(first) != 2000 {
		t.Fatalf("first run delivered %d lines, want 2000", len(first))
	}

	// Lines written while down, then a rotation while down.
	appendLines(t, p, "l", 5000, 6000)
	os.Rename(p, p+".1")
	appendLines(t, p, "l", 6000, 7000)

	pos2, err := positions.Open(pf, positions.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s2 := fast()
	s2.PositionsFile = pos2
	h2 := start(t, s2, p)
	second := h2.waitLines(5000)
	h2.stop()
	all := append(first, second...)
	equalLines(t, all, want("l", 0, 7000))
}

// TestRewindOnFailedAck fails one batch while running: the source reads
// again from the last delivered line.
func TestRewindOnFailedAck(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.log")
	appendLines(t, p, "l", 0, 1000)
	h := startWith(t, fast(), func(n int, b ferry.Batch[ferry.Entry]) error {
		if n == 3 {
			return errors.New("transient")
		}
		return nil
	}, p)
	defer h.stop()
	got := h.settle()
	// Every line at least once, in order once duplicates are removed.
	seen := map[string]bool{}
	var uniq []string
	for _, l := range got {
		if !seen[l] {
			seen[l] = true
			uniq = append(uniq, l)
		}
	}
	slices.Sort(uniq)
	equalLines(t, uniq, want("l", 0, 1000))
}

// TestBackpressure checks that a reader stops reading while nobody takes
// its batches.
func TestBackpressure(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "big.log")
	appendLines(t, p, "l", 0, 100000)
	s := fast()
	s.BatchSize = 10
	targets := make(chan []labels.Labels, 1)
	out := make(chan ferry.Batch[ferry.Entry], 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	targets <- []labels.Labels{labels.FromStrings(PathLabel, p)}
	if err := s.Start(ctx, ferry.NopReporter()); err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	go func() { done <- s.Run(ctx, targets, out) }()
	time.Sleep(300 * time.Millisecond) // time for a reader that ignores backpressure to read on
	s.mu.Lock()
	r := s.byPath[p]
	s.mu.Unlock()
	// One batch in the channel, one blocked in send, one buffer read ahead.
	if len(out) != 1 {
		t.Errorf("channel holds %d batches", len(out))
	}
	cancel()
	<-done
	if r.off > 64<<10 {
		t.Errorf("reader read %d bytes ahead without consumers", r.off)
	}
	for len(out) > 0 {
		(<-out).Done(context.Canceled)
	}
}

func TestPosEncoding(t *testing.T) {
	p := pos{off: 123, id: ident{dev: 2049, ino: 77}, fpLen: 1024, fp: 0xdeadbeef}
	q, ok := parsePos(p.String())
	if !ok || q != p {
		t.Fatalf("round trip: %v %v", q, ok)
	}
	if q, ok := parsePos("42"); !ok || q.off != 42 {
		t.Fatalf("bare offset: %v %v", q, ok)
	}
	for _, bad := range []string{"", "x", "1 2 3", "-1 2 3 4 5", "1 2 3 4 zz"} {
		if _, ok := parsePos(bad); ok {
			t.Errorf("parsePos(%q) accepted", bad)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, s := range []*Source{{MaxLineSize: -1}, {StartAt: 7}, {Encoding: 9}, {PollInterval: -1}} {
		if s.Validate() == nil {
			t.Errorf("%+v: no error", s)
		}
	}
	bad := &Source{LongLines: 5}
	if err := bad.Start(context.Background(), ferry.NopReporter()); err == nil {
		t.Error("Start with bad config succeeded")
	}
	if err := bad.Run(context.Background(), nil, nil); !errors.Is(err, ErrNotStarted) || ferry.IsPermanent(err) {
		t.Errorf("Run before Start: %v, want ErrNotStarted", err)
	}
}

// TestStartOnceCloseForGood: a closed Source neither runs nor starts
// again, and Close is safe twice.
func TestStartOnceCloseForGood(t *testing.T) {
	ctx := context.Background()
	s := fast()
	for range 2 {
		if err := s.Start(ctx, ferry.NopReporter()); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if err := s.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Run(ctx, nil, nil); !errors.Is(err, ErrClosed) || !errors.Is(err, ferry.ErrClosed) {
		t.Errorf("Run after Close: %v, want ErrClosed", err)
	}
	if err := s.Start(ctx, ferry.NopReporter()); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Close: %v, want ErrClosed", err)
	}
}

// dups logs the first line seen twice.
func dups(t *testing.T, l []string) {
	seen := map[string]int{}
	for i, x := range l {
		if j, ok := seen[x]; ok {
			t.Logf("dup %q at %d and %d", x, j, i)
			return
		}
		seen[x] = i
	}
}

// TestCopyTruncateWhileDown: the file was copied and truncated while no
// source ran; the rest is read from the copy, then the file from its start.
func TestCopyTruncateWhileDown(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.log")
	pf := filepath.Join(dir, "positions.json")
	appendLines(t, p, "l", 0, 1000)
	pos, _ := positions.Open(pf, positions.Options{})
	s := fast()
	s.PositionsFile = pos
	h := start(t, s, p)
	h.waitLines(1000)
	fi, _ := os.Stat(p)
	poll.Until(t, func() bool {
		v, _ := pos.Get(KeyPrefix + p)
		ps, ok := parsePos(v)
		return ok && ps.off == fi.Size()
	}, "the position to reach the end of the file")
	h.stop()

	appendLines(t, p, "l", 1000, 1200)
	data, _ := os.ReadFile(p)
	os.WriteFile(p+".1", data, 0o644)
	os.Truncate(p, 0)
	appendLines(t, p, "l", 1200, 1300)

	pos2, _ := positions.Open(pf, positions.Options{})
	s2 := fast()
	s2.PositionsFile = pos2
	h2 := start(t, s2, p)
	defer h2.stop()
	equalLines(t, h2.waitLines(300), want("l", 1000, 1300))
	equalLines(t, h2.settle(), want("l", 1000, 1300))
}

func TestLabelsChangeAndForget(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.log")
	appendLines(t, p, "a", 0, 10)
	pf := filepath.Join(dir, "positions.json")
	pos, _ := positions.Open(pf, positions.Options{})
	s := fast()
	s.PositionsFile = pos
	h := start(t, s, p)
	defer h.stop()
	h.waitLines(10)
	h.targets <- []labels.Labels{labels.FromStrings(PathLabel, p, "job", "renamed")}
	poll.Until(t, func() bool {
		h.s.mu.Lock()
		r := h.s.byPath[p]
		h.s.mu.Unlock()
		return r != nil && (*r.labels.Load()).Get("job") == "renamed"
	}, "the reader to take the new labels")
	appendLines(t, p, "a", 10, 11)
	h.waitLines(11)
	h.mu.Lock()
	last := h.entries[10]
	h.mu.Unlock()
	if last.Labels.Get("job") != "renamed" {
		t.Fatalf("labels %v", last.Labels)
	}
	if _, ok := pos.Get(KeyPrefix + p); !ok {
		t.Fatal("no position stored")
	}
	// The file goes away with its target: its position is forgotten.
	os.Remove(p)
	h.setTargets()
	poll.Until(t, func() bool { _, ok := pos.Get(KeyPrefix + p); return !ok }, "the position of a deleted, vanished file to go")
}

func TestPermissionDenied(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads any file")
	}
	dir := t.TempDir()
	good, bad := filepath.Join(dir, "good.log"), filepath.Join(dir, "bad.log")
	appendLines(t, good, "g", 0, 5)
	appendLines(t, bad, "b", 0, 5)
	os.Chmod(bad, 0)
	h := start(t, fast(), good, bad)
	defer h.stop()
	equalLines(t, h.waitLines(5), want("g", 0, 5))
	poll.Until(t, func() bool { return len(h.rep.Errors()) > 0 }, "the error to be reported")
	if errs := h.rep.Errors(); !strings.Contains(errs[0].Error(), "permission denied") {
		t.Fatalf("errs %v", errs)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	poll.Until(t, cond, "the condition")
}

// The source reports its acknowledged positions (source.PositionReporter),
// which the pipeline's debug page shows; no production source did before.
func TestPositionsReported(t *testing.T) {
	var _ source.PositionReporter = (*Source)(nil)
	dir := t.TempDir()
	p := filepath.Join(dir, "a.log")
	appendLines(t, p, "a", 0, 10)
	s := fast()
	if got := s.Positions(); len(got) != 0 {
		t.Errorf("before Start: %v", got)
	}
	h := start(t, s, p)
	defer h.stop()
	h.waitLines(10)
	waitFor(t, func() bool {
		v, ok := s.Positions()[KeyPrefix+p]
		return ok && v != ""
	})
	pos, _ := s.getPos(KeyPrefix + p)
	if got := s.Positions(); len(got) != 1 || got[KeyPrefix+p] != pos {
		t.Errorf("Positions = %v, want only %s=%s", got, KeyPrefix+p, pos)
	}
}
