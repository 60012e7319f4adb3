package journal

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/prometheus/prometheus/model/labels"
)

type testReporter struct {
	mu      sync.Mutex
	health  ferry.Health
	err     error
	dropped map[string]int
}

func (r *testReporter) Logger() *slog.Logger { return slog.New(slog.DiscardHandler) }
func (r *testReporter) SetHealth(h ferry.Health, err error) {
	r.mu.Lock()
	r.health, r.err = h, err
	r.mu.Unlock()
}
func (r *testReporter) Dropped(reason string, n int) {
	r.mu.Lock()
	if r.dropped == nil {
		r.dropped = map[string]int{}
	}
	r.dropped[reason] += n
	r.mu.Unlock()
}
func (r *testReporter) Retried() {}
func (r *testReporter) get() (ferry.Health, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.health, r.err
}

func record(fields ...[2]string) *Record {
	r := &Record{}
	for _, f := range fields {
		r.Fields = append(r.Fields, Field{Name: []byte(f[0]), Value: []byte(f[1])})
	}
	return r
}

func TestEntryLabels(t *testing.T) {
	s := &Source{Labels: labels.FromStrings("job", "journal", "__journal__hostname", "override")}
	b := &builder{s: s, names: map[string]string{}}
	rec := record(
		[2]string{"__CURSOR", "s=x;i=1"}, [2]string{"__REALTIME_TIMESTAMP", "1700000000123456"},
		[2]string{"__MONOTONIC_TIMESTAMP", "1"}, [2]string{"_SYSTEMD_UNIT", "ssh.service"},
		[2]string{"MESSAGE", "Accepted publickey"}, [2]string{"PRIORITY", "3"}, [2]string{"_HOSTNAME", "web1"},
		[2]string{"SYSLOG_IDENTIFIER", "sshd"}, [2]string{"TAG", "a"}, [2]string{"TAG", "b"})
	var e ferry.Entry
	if !b.entry(rec, &e) {
		t.Fatal("no entry")
	}
	if e.Line != "Accepted publickey" {
		t.Errorf("line = %q", e.Line)
	}
	if want := time.UnixMicro(1700000000123456); !e.Timestamp.Equal(want) {
		t.Errorf("timestamp = %v, want %v", e.Timestamp, want)
	}
	want := labels.FromStrings(
		"__journal__systemd_unit", "ssh.service",
		"__journal_message", "Accepted publickey",
		"__journal_priority", "3",
		"__journal_priority_keyword", "error",
		"__journal__hostname", "override",
		"__journal_syslog_identifier", "sshd",
		"__journal_tag", "a",
		"job", "journal",
	)
	if !labels.Equal(e.Labels, want) {
		t.Errorf("labels\n got  %v\n want %v", e.Labels, want)
	}
	// No MESSAGE: no entry in message format.
	if b.entry(record([2]string{"__CURSOR", "c"}, [2]string{"PRIORITY", "6"}), &e) {
		t.Error("entry without MESSAGE")
	}
}

// TestEntriesKeepTheirStrings: the builder reuses its buffer from one
// record to the next and cuts lines from memory that a batch's entries
// share; entries built earlier, in this batch or the ones before, must
// keep their lines and labels.
func TestEntriesKeepTheirStrings(t *testing.T) {
	b := &builder{s: &Source{}, names: map[string]string{}}
	var entries []ferry.Entry
	for i := range 2000 {
		n := strconv.Itoa(i)
		rec := record([2]string{"__CURSOR", n}, [2]string{"MESSAGE", "message " + strings.Repeat(n, i%50)},
			[2]string{"_HOSTNAME", "host" + n}, [2]string{"_SYSTEMD_UNIT", n + ".service"})
		var e ferry.Entry
		if !b.entry(rec, &e) {
			t.Fatal("no entry")
		}
		entries = append(entries, e)
		if i%100 == 99 {
			b.text.Release() // a batch taken
		}
	}
	for i, e := range entries {
		n := strconv.Itoa(i)
		want := labels.FromStrings("__journal__hostname", "host"+n, "__journal__systemd_unit", n+".service",
			"__journal_message", "message "+strings.Repeat(n, i%50))
		if e.Line != "message "+strings.Repeat(n, i%50) || !labels.Equal(e.Labels, want) {
			t.Fatalf("entry %d: line %q, labels %v", i, e.Line, e.Labels)
		}
	}
}

func TestEntryJSON(t *testing.T) {
	b := &builder{s: &Source{Format: FormatJSON}, names: map[string]string{}}
	rec := record([2]string{"__CURSOR", "c"}, [2]string{"MESSAGE", "quote \" and <tag>\n\x01"}, [2]string{"BIN", "\xff\xfe"},
		[2]string{"A", "1"}, [2]string{"PRIORITY", "9"})
	var e ferry.Entry
	if !b.entry(rec, &e) {
		t.Fatal("no entry")
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(e.Line), &m); err != nil {
		t.Fatalf("%v: %s", err, e.Line)
	}
	if m["MESSAGE"] != "quote \" and <tag>\n\x01" || m["A"] != "1" || m["BIN"] != "\ufffd\ufffd" || len(m) != 4 {
		t.Errorf("json = %s", e.Line)
	}
	if !strings.HasPrefix(e.Line, `{"A":"1","BIN":`) {
		t.Errorf("keys not sorted: %s", e.Line)
	}
	if e.Labels.Get(LabelPriorityKeyword) != "9" {
		t.Errorf("unknown priority keyword = %q", e.Labels.Get(LabelPriorityKeyword))
	}
}

func TestArgs(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	s := &Source{Directory: "/var/log/journal", Matches: []string{"_SYSTEMD_UNIT=ssh.service", "+", "PRIORITY=3"}}
	got := strings.Join(s.args("", false, now), " ")
	want := "--output=export --follow --no-pager --lines=all --quiet --since=@974800 --directory=/var/log/journal _SYSTEMD_UNIT=ssh.service + PRIORITY=3"
	if got != want {
		t.Errorf("args\n got  %s\n want %s", got, want)
	}
	s = &Source{Files: []string{"/x/*.journal"}, MaxAge: -1}
	if got := strings.Join(s.args("s=1", true, now), " "); !strings.Contains(got, "--after-cursor=s=1") || strings.Contains(got, "--since") || !strings.Contains(got, "--file=/x/*.journal") {
		t.Errorf("args with cursor: %s", got)
	}
	if got := strings.Join((&Source{MaxAge: -1}).args("", false, now), " "); strings.Contains(got, "--since") {
		t.Errorf("MaxAge < 0 still limits: %s", got)
	}
}

func TestValidate(t *testing.T) {
	for _, s := range []*Source{{Format: 5}, {BatchSize: -1}, {Directory: "/a", Files: []string{"b"}},
		{Matches: []string{"lower=x"}}, {Matches: []string{"NOVALUE"}}, {Labels: labels.FromStrings("1x", "y")}} {
		if s.Validate() == nil {
			t.Errorf("Validate(%+v) = nil", s)
		}
	}
	if err := (&Source{Matches: []string{"_SYSTEMD_UNIT=a.service", "+", "PRIORITY=3"}}).Validate(); err != nil {
		t.Error(err)
	}
}

// A missing journalctl and one that fails give clear errors and Failing
// health; Run can be called again (the pipeline restarts it).
func TestJournalctlMissingOrFailing(t *testing.T) {
	rep := &testReporter{}
	s := &Source{Journalctl: "/nonexistent/journalctl"}
	if err := s.Start(context.Background(), rep); err != nil {
		t.Fatal(err)
	}
	err := s.Run(context.Background(), make(chan ferry.Batch[ferry.Entry]))
	if err == nil || !strings.Contains(err.Error(), "journalctl not found") {
		t.Fatalf("missing journalctl: %v", err)
	}
	if h, _ := rep.get(); h != ferry.Failing {
		t.Errorf("health = %v", h)
	}

	dir := t.TempDir()
	fake := filepath.Join(dir, "journalctl")
	os.WriteFile(fake, []byte("#!/bin/sh\necho 'Failed to open journal: permission denied' >&2\nexit 1\n"), 0o755)
	s2 := &Source{Journalctl: fake}
	s2.Start(context.Background(), rep)
	err = s2.Run(context.Background(), make(chan ferry.Batch[ferry.Entry]))
	if err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("failing journalctl: %v", err)
	}
	if h, _ := rep.get(); h != ferry.Failing {
		t.Errorf("health = %v", h)
	}
	if err := s2.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s2.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := (&Source{}).Close(context.Background()); err != nil {
		t.Fatal("Close without Start:", err)
	}
}

// A fake journalctl that prints entries and exits: they are delivered,
// the cursor commits on acknowledgement, and the next run resumes after it.
func TestFakeJournalctlCursor(t *testing.T) {
	dir := t.TempDir()
	var in bytes.Buffer
	for i := 1; i <= 3; i++ {
		exportEntry(&in, [][2]string{{"__CURSOR", "c" + string(rune('0'+i))}, {"MESSAGE", "m" + string(rune('0'+i))}})
	}
	data := filepath.Join(dir, "data")
	os.WriteFile(data, in.Bytes(), 0o644)
	argsFile := filepath.Join(dir, "args")
	fake := filepath.Join(dir, "journalctl")
	os.WriteFile(fake, []byte("#!/bin/sh\necho \"$@\" >> "+argsFile+"\ncat "+data+"\n"), 0o755)
	s := &Source{Journalctl: fake}
	rep := &testReporter{}
	s.Start(context.Background(), rep)
	out := make(chan ferry.Batch[ferry.Entry], 10)
	err := s.Run(context.Background(), out)
	if err == nil || !strings.Contains(err.Error(), "ended") {
		t.Fatalf("Run = %v", err)
	}
	b := <-out
	if len(b.Items) != 3 || b.Items[2].Line != "m3" {
		t.Fatalf("batch = %+v", b.Items)
	}
	if c, ok := s.Cursor(); ok {
		t.Fatalf("cursor %q committed before the ack", c)
	}
	b.Done(nil)
	if c, _ := s.Cursor(); c != "c3" {
		t.Fatalf("cursor = %q", c)
	}
	s.Run(context.Background(), out)
	<-out
	args, _ := os.ReadFile(argsFile)
	lines := strings.Split(strings.TrimSpace(string(args)), "\n")
	if len(lines) != 2 || !strings.Contains(lines[1], "--after-cursor=c3") || !strings.Contains(lines[0], "--since=@") {
		t.Fatalf("journalctl runs:\n%s", args)
	}
}

// A batch that is not delivered while journalctl has nothing more to say
// (it is following and idle) still ends the run at once: Run returns the
// undelivered error instead of waiting for the next entry, and the cursor
// stays before the failed batch.
func TestUndeliveredEndsIdleRun(t *testing.T) {
	dir := t.TempDir()
	var in bytes.Buffer
	exportEntry(&in, [][2]string{{"__CURSOR", "c1"}, {"MESSAGE", "m1"}})
	data := filepath.Join(dir, "data")
	os.WriteFile(data, in.Bytes(), 0o644)
	fake := filepath.Join(dir, "journalctl")
	// Print one entry, then follow forever as journalctl -f does.
	os.WriteFile(fake, []byte("#!/bin/sh\ncat "+data+"\nexec sleep 3600\n"), 0o755)
	s := &Source{Journalctl: fake}
	rep := &testReporter{}
	if err := s.Start(context.Background(), rep); err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	out := make(chan ferry.Batch[ferry.Entry], 1)
	done := make(chan error, 1)
	go func() { done <- s.Run(context.Background(), out) }()
	b := <-out
	if len(b.Items) != 1 || b.Items[0].Line != "m1" {
		t.Fatalf("batch = %+v", b.Items)
	}
	b.Done(errors.New("sink down"))
	select {
	case err := <-done:
		if !errors.Is(err, errUndelivered) || !strings.Contains(err.Error(), "sink down") {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after an undelivered batch while journalctl was idle")
	}
	if c, ok := s.Cursor(); ok {
		t.Fatalf("cursor %q committed past an undelivered batch", c)
	}
	if h, _ := rep.get(); h != ferry.Degraded {
		t.Errorf("health = %v, want Degraded", h)
	}
}

// TestFlushReaderLinger: while a batch is open and journalctl keeps
// writing, reads do not flush it; once journalctl has nothing more, the
// batch is flushed after Linger (not at once, and not only when more
// comes), and the read then waits for journalctl.
func TestFlushReaderLinger(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	const linger = 50 * time.Millisecond
	var opened time.Time
	flushes := 0
	flushed := make(chan time.Time, 1)
	f := newFlushReader(r, func() error {
		if !opened.IsZero() {
			flushes++
			opened = time.Time{}
			flushed <- time.Now()
		}
		return nil
	}, func() time.Time { return opened }, linger)
	if f.dl == nil {
		t.Fatal("a pipe takes read deadlines")
	}
	buf := make([]byte, 16)
	opened = time.Now()
	for _, s := range []string{"a", "b", "c"} {
		w.Write([]byte(s))
		if n, err := f.Read(buf); err != nil || string(buf[:n]) != s {
			t.Fatalf("read %q, %v", buf[:n], err)
		}
	}
	if flushes != 0 {
		t.Fatalf("%d flushes while journalctl kept writing", flushes)
	}
	start := opened
	got := make(chan string)
	go func() {
		n, err := f.Read(buf)
		if err != nil {
			got <- err.Error()
			return
		}
		got <- string(buf[:n])
	}()
	select {
	case at := <-flushed:
		if at.Sub(start) < linger {
			t.Errorf("flushed %v after the batch opened, before the linger of %v", at.Sub(start), linger)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the open batch was not flushed while journalctl was quiet")
	}
	w.Write([]byte("d"))
	select {
	case s := <-got:
		if s != "d" {
			t.Errorf("read after the flush: %q", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the read after the flush did not return")
	}
}
