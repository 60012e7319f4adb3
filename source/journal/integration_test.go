package journal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/internal/peers"
	"github.com/ferrydev/ferry/positions"
	"github.com/prometheus/prometheus/model/labels"
)

const bootID = "0123456789abcdef0123456789abcdef"

// journalExport returns entries first..last (inclusive) in export format,
// as a service would have logged them.
func journalExport(first, last int, base time.Time) []byte {
	var b bytes.Buffer
	for i := first; i <= last; i++ {
		ts := base.Add(time.Duration(i) * time.Millisecond)
		exportEntry(&b, [][2]string{
			{"__REALTIME_TIMESTAMP", strconv.FormatInt(ts.UnixMicro(), 10)},
			{"__MONOTONIC_TIMESTAMP", strconv.Itoa(1000 + i)},
			{"_BOOT_ID", bootID},
			{"_HOSTNAME", "ferryhost"},
			{"_SYSTEMD_UNIT", []string{"ssh.service", "cron.service"}[i%2]},
			{"SYSLOG_IDENTIFIER", "svc"},
			{"PRIORITY", strconv.Itoa(i % 8)},
			{"MESSAGE", fmt.Sprintf("entry %04d", i)},
			{"DATA", fmt.Sprintf("binary\n%d\x00", i)},
		})
	}
	return b.Bytes()
}

// writeJournal turns export input into the journal file dir/name with
// systemd-journal-remote.
func writeJournal(t testing.TB, remote, dir, name string, export []byte) {
	t.Helper()
	in := filepath.Join(t.TempDir(), "in.export")
	if err := os.WriteFile(in, export, 0o644); err != nil {
		t.Fatal(err)
	}
	// journal-remote writes into a directory of its own (it rotates into
	// NAME@...journal files when one fills up); the files then appear in
	// dir complete, by rename, so that journalctl --follow never sees half
	// a file.
	tmpDir := t.TempDir()
	out, err := exec.Command(remote, "--output="+filepath.Join(tmpDir, name), "--compress=no", in).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-journal-remote: %v\n%s", err, out)
	}
	files, err := os.ReadDir(tmpDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(tmpDir, f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "."+f.Name()), data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(dir, "."+f.Name()), filepath.Join(dir, f.Name())); err != nil {
			t.Fatal(err)
		}
	}
}

type runningSource struct {
	s      *Source
	out    chan ferry.Batch[ferry.Entry]
	cancel context.CancelFunc
	done   chan error
}

func runSource(t testing.TB, s *Source) *runningSource {
	t.Helper()
	if err := s.Start(context.Background(), &testReporter{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &runningSource{s: s, out: make(chan ferry.Batch[ferry.Entry], 4), cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- s.Run(ctx, r.out) }()
	return r
}

func (r *runningSource) stop(t testing.TB) {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return")
	}
	// Batches still in the channel were never taken: not delivered.
	for {
		select {
		case b := <-r.out:
			b.Done(context.Canceled)
			continue
		default:
		}
		break
	}
	if err := r.s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// next returns the next batch within 60s.
func (r *runningSource) next(t testing.TB) ferry.Batch[ferry.Entry] {
	t.Helper()
	select {
	case b := <-r.out:
		return b
	case err := <-r.done:
		t.Fatalf("Run returned: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("no batch within 60s")
	}
	return ferry.Batch[ferry.Entry]{}
}

// TestRealJournal writes journal files with Debian's systemd-journal-remote
// and follows them with the real journalctl: entries, fields, labels and
// cursors are checked, new files in the directory are followed, and a
// restart in the middle of the stream (after some batches were
// acknowledged and others not) resumes with no entry lost or repeated.
func TestRealJournal(t *testing.T) {
	remote := peers.Bin(t, "FERRY_JOURNAL_REMOTE_BIN", "scripts/setup/journal.sh")
	jctl := peers.Bin(t, "FERRY_JOURNALCTL_BIN", "scripts/setup/journal.sh")
	dir := t.TempDir()
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	writeJournal(t, remote, dir, "a.journal", journalExport(0, 99, base))

	posPath := filepath.Join(t.TempDir(), "positions.json")
	pos, err := positions.Open(posPath, positions.Options{})
	if err != nil {
		t.Fatal(err)
	}
	newSource := func(pos *positions.File) *Source {
		return &Source{Journalctl: jctl, Directory: dir, MaxAge: -1, Positions: pos, BatchSize: 10,
			Labels: labels.FromStrings("job", "journal")}
	}
	r := runSource(t, newSource(pos))
	seen := map[int]bool{}
	nextIndex := 0
	check := func(t *testing.T, e ferry.Entry) {
		t.Helper()
		var i int
		if _, err := fmt.Sscanf(e.Line, "entry %04d", &i); err != nil {
			t.Fatalf("line %q: %v", e.Line, err)
		}
		if seen[i] {
			t.Fatalf("entry %d delivered twice", i)
		}
		if i != nextIndex {
			t.Fatalf("entry %d, want %d (lost or out of order)", i, nextIndex)
		}
		seen[i] = true
		nextIndex++
		want := labels.FromStrings(
			"__journal__boot_id", bootID,
			"__journal__hostname", "ferryhost",
			"__journal__systemd_unit", []string{"ssh.service", "cron.service"}[i%2],
			"__journal_syslog_identifier", "svc",
			"__journal_priority", strconv.Itoa(i%8),
			"__journal_priority_keyword", priorityKeywords[i%8],
			"__journal_message", fmt.Sprintf("entry %04d", i),
			"__journal_data", fmt.Sprintf("binary\n%d\x00", i),
			"job", "journal",
		)
		// journal-remote adds fields of its own (_SOURCE_REALTIME_TIMESTAMP
		// and the like on some versions): check ours are all there.
		want.Range(func(l labels.Label) {
			if got := e.Labels.Get(l.Name); got != l.Value {
				t.Fatalf("entry %d: %s = %q, want %q (all: %v)", i, l.Name, got, l.Value, e.Labels)
			}
		})
		if ts := base.Add(time.Duration(i) * time.Millisecond); !e.Timestamp.Equal(ts) {
			t.Fatalf("entry %d: timestamp %v, want %v", i, e.Timestamp, ts)
		}
	}

	// Phase 1: read and acknowledge the batches up to entry 50, then fail
	// the next one, as a sink that went down: Run returns (the pipeline
	// would restart it), and the cursor stays at the last delivered batch.
	for nextIndex <= 50 {
		b := r.next(t)
		for _, e := range b.Items {
			check(t, e)
		}
		if nextIndex <= 50 {
			b.Done(nil)
		} else {
			b.Done(fmt.Errorf("sink down"))
		}
	}
	var runErr error
	for runErr == nil {
		select {
		case b := <-r.out:
			b.Done(context.Canceled)
		case runErr = <-r.done:
		case <-time.After(30 * time.Second):
			t.Fatal("Run did not return after an undelivered batch")
		}
	}
	if !errors.Is(runErr, errUndelivered) {
		t.Fatalf("Run = %v", runErr)
	}
	if err := r.s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	committed, _ := r.s.Cursor()
	// The acknowledged batches end at a batch boundary at or before 50:
	// find where the committed cursor is.
	if committed == "" {
		t.Fatal("no cursor committed")
	}
	stored, _ := pos.Get(DefaultPositionKey)
	if stored != committed {
		t.Fatalf("stored cursor %q, committed %q", stored, committed)
	}
	out, err := exec.Command(jctl, "--directory="+dir, "--cursor="+committed, "-n", "1", "-o", "cat").Output()
	if err != nil {
		t.Fatal(err)
	}
	var lastAcked int
	fmt.Sscanf(string(out), "entry %04d", &lastAcked)
	if lastAcked < 40 || lastAcked > 50 {
		t.Fatalf("committed cursor is at entry %d", lastAcked)
	}

	// Phase 2: a new Source with the same positions file resumes right
	// after the committed entry, and follows a new file in the directory.
	pos2, err := positions.Open(posPath, positions.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := lastAcked + 1; i < 100; i++ {
		delete(seen, i)
	}
	nextIndex = lastAcked + 1
	r2 := runSource(t, newSource(pos2))
	defer r2.stop(t)
	for nextIndex < 100 {
		b := r2.next(t)
		for _, e := range b.Items {
			check(t, e)
		}
		b.Done(nil)
	}
	writeJournal(t, remote, dir, "b.journal", journalExport(100, 149, base))
	for nextIndex < 150 {
		b := r2.next(t)
		for _, e := range b.Items {
			check(t, e)
		}
		b.Done(nil)
	}
	c, _ := r2.s.Cursor()
	out, _ = exec.Command(jctl, "--directory="+dir, "--cursor="+c, "-n", "1", "-o", "cat").Output()
	if !bytes.HasPrefix(out, []byte("entry 0149")) {
		t.Fatalf("final cursor at %q", out)
	}
}
