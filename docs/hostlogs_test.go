package docs

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/discovery/file"
	"github.com/ferrydev/ferry/internal/peers"
	"github.com/ferrydev/ferry/pipeline"
	"github.com/ferrydev/ferry/positions"
	"github.com/ferrydev/ferry/process/stage"
	"github.com/ferrydev/ferry/relabel"
	"github.com/ferrydev/ferry/sink/sinktest"
	"github.com/ferrydev/ferry/source/filetail"
	"github.com/ferrydev/ferry/source/journal"
	"github.com/ferrydev/ferry/source/syslog"
)

// The host-log sections of migration.md (journal, syslog) include their Go
// code from testdata/hostlogs_NAME.go.txt with <!-- file: --> markers,
// which TestGuideInSync checks; TestHostLogsSnippetsInSync checks that
// those files are the regions between "// hostlogs: NAME" and "// end
// hostlogs" below, which the tests after it run.

// journalLogs is Promtail's journal block (loki.source.journal) with its
// usual relabel_configs.
func journalLogs(b *pipeline.Builder, dataDir, journalDir string) (pipeline.Stream[ferry.Entry], error) {
	// hostlogs: journal
	pos, err := positions.Open(filepath.Join(dataDir, "positions.json"), positions.Options{})
	if err != nil {
		return pipeline.Stream[ferry.Entry]{}, err
	}
	logs := pipeline.FromSource(b, "journal", &journal.Source{
		Directory: journalDir, // journal.path; empty for the local system journal
		MaxAge:    12 * time.Hour,
		Labels:    labels.FromStrings("job", "systemd-journal"),
		Positions: pos,
	})
	logs = pipeline.Relabel(b, "journal_relabel", []relabel.Rule{
		relabel.Replace([]string{"__journal__systemd_unit"}, "(.+)", "unit", "$1"),
		relabel.Replace([]string{"__journal_priority_keyword"}, "(.+)", "level", "$1"),
	}, logs)
	// end hostlogs
	return logs, nil
}

// syslogLogs is Promtail's syslog block (loki.source.syslog).
func syslogLogs(b *pipeline.Builder, listenAddr string) pipeline.Stream[ferry.Entry] {
	// hostlogs: syslog
	logs := pipeline.FromSource(b, "syslog", &syslog.Source{
		Addr:                 listenAddr, // listen_address, such as "0.0.0.0:1514"
		IdleTimeout:          60 * time.Second,
		LabelStructuredData:  true,
		UseIncomingTimestamp: true,
		Labels:               labels.FromStrings("job", "syslog"),
	})
	logs = pipeline.Relabel(b, "syslog_relabel", []relabel.Rule{
		relabel.Replace([]string{"__syslog_message_hostname"}, "(.+)", "host", "$1"),
		relabel.Replace([]string{"__syslog_message_app_name"}, "(.+)", "app", "$1"),
		relabel.Replace([]string{"__syslog_message_severity"}, "(.+)", "level", "$1"),
	}, logs)
	// end hostlogs
	return logs
}

// syslogFileLogs is Promtail's scrape of /var/log/syslog, the file rsyslog
// writes, with the regex stage people give it, done with stage.Syslog.
func syslogFileLogs(b *pipeline.Builder, dataDir, syslogPath string) (pipeline.Stream[ferry.Entry], error) {
	// hostlogs: syslogfile
	pos, err := positions.Open(filepath.Join(dataDir, "positions.json"), positions.Options{})
	if err != nil {
		return pipeline.Stream[ferry.Entry]{}, err
	}
	files := pipeline.Discover(b, "syslog_file", &file.Discoverer{Patterns: []file.Pattern{{
		Path:   syslogPath, // "/var/log/syslog"
		Labels: labels.FromStrings("job", "syslog"),
	}}})
	logs := pipeline.FromTargets(b, "syslog_tail", &filetail.Source{PositionsFile: pos}, files)
	parse, err := stage.New(
		&stage.Syslog{UseIncomingTimestamp: true},
		&stage.Labels{Values: map[string]string{"host": "hostname", "app": "app_name"}},
	)
	if err != nil {
		return pipeline.Stream[ferry.Entry]{}, err
	}
	logs = pipeline.Process(b, "syslog_parse", parse, logs)
	// end hostlogs
	return logs, nil
}

var (
	hostlogsStart = regexp.MustCompile(`^(\s*)// hostlogs: (\S+)$`)
	hostlogsEnd   = regexp.MustCompile(`^\s*// end hostlogs$`)
)

func TestHostLogsSnippetsInSync(t *testing.T) {
	src, err := os.ReadFile("hostlogs_test.go")
	if err != nil {
		t.Fatal(err)
	}
	regions := map[string]string{}
	var name, indent string
	var body []string
	for _, line := range strings.Split(string(src), "\n") {
		if m := hostlogsStart.FindStringSubmatch(line); m != nil {
			name, indent, body = m[2], m[1], nil
			continue
		}
		if name != "" && hostlogsEnd.MatchString(line) {
			regions[name] = strings.Join(body, "\n") + "\n"
			name = ""
			continue
		}
		if name != "" {
			body = append(body, strings.TrimPrefix(line, indent))
		}
	}
	if len(regions) != 3 {
		t.Fatalf("found regions %v", regions)
	}
	for name, code := range regions {
		path := filepath.Join("testdata", "hostlogs_"+name+".go.txt")
		if *update {
			if err := os.WriteFile(path, []byte(code), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != code {
			t.Errorf("%s differs from the hostlogs: %s region (err %v): run go test ./docs -run 'TestHostLogsSnippetsInSync|TestGuideInSync' -update", path, name, err)
		}
	}
}

// TestHostLogsSyslogSnippet runs the syslog snippet in a pipeline and
// sends it a message over TCP.
func TestHostLogsSyslogSnippet(t *testing.T) {
	b := pipeline.New()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	fake := runToFake(t, b, syslogLogs(b, addr))
	var c net.Conn
	deadline := time.Now().Add(10 * time.Second)
	for c == nil {
		if c, err = net.Dial("tcp", addr); err != nil {
			if time.Now().After(deadline) {
				t.Fatal(err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	fmt.Fprintf(c, "<27>1 2026-12-04T10:00:00Z web1 nginx 7 - - upstream timed out\n")
	c.Close()
	if !fake.WaitLen(1, 10*time.Second) {
		t.Fatal("no entry")
	}
	e := fake.Items()[0]
	for name, want := range map[string]string{"host": "web1", "app": "nginx", "level": "error", "job": "syslog"} {
		if got := e.Labels.Get(name); got != want {
			t.Errorf("%s = %q, want %q (%v)", name, got, want, e.Labels)
		}
	}
	if e.Line != "upstream timed out" || !e.Timestamp.Equal(time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)) {
		t.Errorf("entry = %q at %v", e.Line, e.Timestamp)
	}
}

// TestHostLogsJournalSnippet runs the journal snippet in a pipeline over
// journal files written by systemd-journal-remote.
func TestHostLogsJournalSnippet(t *testing.T) {
	remote := peers.Bin(t, "FERRY_JOURNAL_REMOTE_BIN", "scripts/setup/journal.sh")
	peers.Bin(t, "FERRY_JOURNALCTL_BIN", "scripts/setup/journal.sh")
	journalDir, dataDir := t.TempDir(), t.TempDir()
	var export bytes.Buffer
	now := time.Now().Add(-time.Minute)
	for i, f := range [][3]string{
		{"ssh.service", "6", "Accepted publickey for deploy"},
		{"cron.service", "3", "job failed\nwith two lines"},
	} {
		fmt.Fprintf(&export, "__REALTIME_TIMESTAMP=%d\n__MONOTONIC_TIMESTAMP=%d\n_BOOT_ID=0123456789abcdef0123456789abcdef\n_SYSTEMD_UNIT=%s\nPRIORITY=%s\n",
			now.Add(time.Duration(i)*time.Second).UnixMicro(), 1000+i, f[0], f[1])
		export.WriteString("MESSAGE\n")
		binary.Write(&export, binary.LittleEndian, uint64(len(f[2])))
		export.WriteString(f[2] + "\n\n")
	}
	in := filepath.Join(t.TempDir(), "in.export")
	os.WriteFile(in, export.Bytes(), 0o644)
	if out, err := exec.Command(remote, "--output="+filepath.Join(journalDir, "host.journal"), in).CombinedOutput(); err != nil {
		t.Fatalf("systemd-journal-remote: %v\n%s", err, out)
	}
	// The snippet runs journalctl from PATH: put the peer's first.
	t.Setenv("PATH", filepath.Dir(os.Getenv("FERRY_JOURNALCTL_BIN"))+string(os.PathListSeparator)+os.Getenv("PATH"))

	b := pipeline.New()
	logs, err := journalLogs(b, dataDir, journalDir)
	if err != nil {
		t.Fatal(err)
	}
	fake := &sinktest.Sink[ferry.Entry]{}
	pipeline.To(b, "fake", fake, logs)
	p, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	if !fake.WaitLen(2, 30*time.Second) {
		cancel()
		<-done
		t.Fatalf("got %d entries", len(fake.Items()))
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got := fake.Items()
	if got[0].Line != "Accepted publickey for deploy" || got[0].Labels.Get("unit") != "ssh.service" || got[0].Labels.Get("level") != "info" ||
		got[1].Line != "job failed\nwith two lines" || got[1].Labels.Get("unit") != "cron.service" || got[1].Labels.Get("level") != "error" ||
		got[1].Labels.Get("job") != "systemd-journal" {
		t.Errorf("entries: %+v", got)
	}
	// The pipeline saved the cursor of the last delivered entry.
	pos, err := positions.Open(filepath.Join(dataDir, "positions.json"), positions.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := pos.Get(journal.DefaultPositionKey); !ok || !strings.Contains(c, "i=2;") {
		t.Errorf("saved cursor %q", c)
	}
}

// TestHostLogsSyslogFileSnippet has a real rsyslogd write a syslog file as
// Debian's does (/var/log/syslog in RSYSLOG_FileFormat, RFC 3339 time and
// no PRI; and the older RSYSLOG_TraditionalFileFormat) from lines the test
// logs through it, and runs the syslogfile snippet over both files.
func TestHostLogsSyslogFileSnippet(t *testing.T) {
	bin := peers.Bin(t, "FERRY_RSYSLOGD_BIN", "scripts/setup/rsyslog.sh")
	dir := t.TempDir()
	input := filepath.Join(dir, "input.log")
	if err := os.WriteFile(input, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`global(workDirectory=%q localHostname="web1")
module(load="imfile")
input(type="imfile" File=%q Tag="sshd[4242]:" Facility="auth" Severity="err")
action(type="omfile" File=%q template="RSYSLOG_FileFormat")
action(type="omfile" File=%q template="RSYSLOG_TraditionalFileFormat")
`, dir, input, filepath.Join(dir, "syslog"), filepath.Join(dir, "syslog.traditional"))
	confFile := filepath.Join(dir, "rsyslog.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	// rsyslogd ends on SIGTERM when the test does (killed 10s later).
	rctx, stop := context.WithCancel(context.Background())
	cmd := exec.CommandContext(rctx, bin, "-n", "-f", confFile, "-i", filepath.Join(dir, "rsyslogd.pid"))
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	var rlog bytes.Buffer
	cmd.Stdout, cmd.Stderr = &rlog, &rlog
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stop(); cmd.Wait() }()
	const n = 3
	f, err := os.OpenFile(input, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		fmt.Fprintf(f, "Failed password for root from 10.0.0.%d port 22\n", i)
	}
	f.Close()

	b := pipeline.New()
	logs, err := syslogFileLogs(b, t.TempDir(), filepath.Join(dir, "syslog*"))
	if err != nil {
		t.Fatal(err)
	}
	fake := runToFake(t, b, logs)
	if !fake.WaitLen(2*n, 60*time.Second) {
		t.Fatalf("got %d entries, want %d; rsyslogd said:\n%s", len(fake.Items()), 2*n, rlog.String())
	}
	seen := map[string]int{}
	for _, e := range fake.Items() {
		seen[e.Labels.Get("filename")]++
		// A file line has no PRI: RFC 3164's relay rule makes it
		// user.notice.
		for name, want := range map[string]string{"host": "web1", "app": "sshd", "job": "syslog",
			"__syslog_message_proc_id": "4242", "__syslog_message_facility": "user", "__syslog_message_severity": "notice"} {
			if got := e.Labels.Get(name); got != want {
				t.Errorf("%s = %q, want %q (%v)", name, got, want, e.Labels)
			}
		}
		if !strings.HasPrefix(e.Line, "Failed password for root from 10.0.0.") || e.Labels.Has("__syslog_parse_error") {
			t.Errorf("entry %q %v", e.Line, e.Labels)
		}
		if time.Since(e.Timestamp) > time.Hour || time.Until(e.Timestamp) > time.Hour {
			t.Errorf("timestamp %v not rsyslog's", e.Timestamp)
		}
	}
	if len(seen) != 2 {
		t.Errorf("entries by file: %v", seen)
	}
}

// runToFake sends logs to a recording sink in a pipeline that runs until
// the test ends.
func runToFake(t *testing.T, b *pipeline.Builder, logs pipeline.Stream[ferry.Entry]) *sinktest.Sink[ferry.Entry] {
	t.Helper()
	fake := &sinktest.Sink[ferry.Entry]{}
	pipeline.To(b, "fake", fake, logs)
	p, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return fake
}
