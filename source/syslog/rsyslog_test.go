package syslog

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferrydev/ferry/internal/peers"
	"github.com/prometheus/common/config"
	"github.com/prometheus/prometheus/model/labels"
)

// TestRsyslog has a real rsyslogd (Debian's, from scripts/setup/rsyslog.sh)
// read lines the test appends to a file (imfile) and forward them to six
// Sources: TCP with octet counting (RFC 5424 with structured data), TCP
// with newline framing (RFC 3164 as rsyslog forwards it), UDP, and TLS
// through both of rsyslog's netstream drivers (gtls, ossl) with a
// certificate made by the test. Every source must receive every line, in
// order, with the labels of what rsyslog sent.
func TestRsyslog(t *testing.T) {
	bin := peers.Bin(t, "FERRY_RSYSLOGD_BIN", "scripts/setup/rsyslog.sh")
	dir := t.TempDir()
	certFile, keyFile, caFile := writeCert(t)

	type target struct {
		name, action string
		src          *Source
		r            *running
	}
	targets := []*target{
		{name: "tcp-octet", src: &Source{LabelStructuredData: true, UseIncomingTimestamp: true},
			action: `protocol="tcp" TCP_Framing="octet-counted" template="sd5424"`},
		{name: "tcp-newline", src: &Source{UseIncomingTimestamp: true},
			action: `protocol="tcp" template="RSYSLOG_TraditionalForwardFormat"`},
		{name: "udp", src: &Source{Protocol: UDP},
			action: `protocol="udp" template="RSYSLOG_SyslogProtocol23Format"`},
		{name: "tls-gtls", src: &Source{TLS: &config.TLSConfig{CertFile: certFile, KeyFile: keyFile}},
			action: `protocol="tcp" TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format" StreamDriver="gtls" StreamDriverMode="1" StreamDriverAuthMode="x509/name" StreamDriverPermittedPeers="localhost"`},
		{name: "tls-ossl", src: &Source{TLS: &config.TLSConfig{CertFile: certFile, KeyFile: keyFile}},
			action: `protocol="tcp" template="RSYSLOG_ForwardFormat" StreamDriver="ossl" StreamDriverMode="1" StreamDriverAuthMode="x509/name" StreamDriverPermittedPeers="localhost"`},
	}
	var actions strings.Builder
	for _, tg := range targets {
		tg.src.Labels = labels.FromStrings("target", tg.name)
		tg.r = startSource(t, tg.src, 64)
		host, port, _ := strings.Cut(tg.r.s.LocalAddr().String(), ":")
		fmt.Fprintf(&actions, "action(type=\"omfwd\" target=%q port=%q %s action.resumeRetryCount=\"-1\" action.resumeInterval=\"1\")\n", host, port, tg.action)
	}
	input := filepath.Join(dir, "input.log")
	if err := os.WriteFile(input, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`global(workDirectory=%q localHostname="ferryhost" maxMessageSize="64k"
       DefaultNetstreamDriverCAFile=%q DefaultNetstreamDriverCertFile=%q DefaultNetstreamDriverKeyFile=%q)
module(load="imfile")
input(type="imfile" File=%q Tag="ferrytest:" Facility="local3" Severity="warning")
template(name="sd5424" type="string"
  string="<%%PRI%%>1 %%TIMESTAMP:::date-rfc3339%% %%HOSTNAME%% %%APP-NAME%% 4242 MID [ferry@32473 file=\"input\" q=\"a\\\"b\"] %%msg%%")
%s`, dir, caFile, certFile, keyFile, input, actions.String())
	confFile := filepath.Join(dir, "rsyslog.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	check := exec.Command(bin, "-N1", "-f", confFile)
	if out, err := check.CombinedOutput(); err != nil {
		t.Fatalf("rsyslogd -N1: %v\n%s\n%s", err, out, conf)
	}
	var logs bytes.Buffer
	cmd := exec.Command(bin, "-n", "-f", confFile, "-i", filepath.Join(dir, "rsyslogd.pid"))
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})

	const n = 200
	f, err := os.OpenFile(input, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(-time.Second)
	for i := 0; i < n; i++ {
		fmt.Fprintf(f, "line %03d from the file %s\n", i, strings.Repeat("z", i))
	}
	f.Close()

	for _, tg := range targets {
		t.Run(tg.name, func(t *testing.T) {
			select {
			case <-exited:
				t.Fatalf("rsyslogd exited:\n%s", logs.String())
			default:
			}
			got := tg.r.collect(t, n, 60*time.Second)
			for i, e := range got {
				if want := fmt.Sprintf("line %03d from the file %s", i, strings.Repeat("z", i)); e.Line != want {
					t.Fatalf("entry %d line = %q, want %q", i, e.Line, want)
				}
				l := e.Labels
				for name, want := range map[string]string{
					LabelHostname: "ferryhost", LabelAppName: "ferrytest", LabelFacility: "local3",
					LabelSeverity: "warning", LabelConnectionIP: "127.0.0.1", "target": tg.name,
				} {
					if got := l.Get(name); got != want {
						t.Fatalf("entry %d: %s = %q, want %q (labels %v)", i, name, got, want, l)
					}
				}
				if l.Has(LabelParseError) {
					t.Fatalf("entry %d: parse error: %v", i, l)
				}
				if tg.name == "tcp-octet" {
					if l.Get("__syslog_message_sd_ferry_32473_file") != "input" || l.Get("__syslog_message_sd_ferry_32473_q") != `a"b` ||
						l.Get(LabelProcID) != "4242" || l.Get(LabelMsgID) != "MID" {
						t.Fatalf("entry %d: structured data labels: %v", i, l)
					}
				}
				if tg.src.UseIncomingTimestamp && (e.Timestamp.Before(start) || e.Timestamp.After(time.Now().Add(time.Second))) {
					t.Fatalf("entry %d: timestamp %v not from rsyslog (test started %v)", i, e.Timestamp, start)
				}
			}
			if st := tg.r.s.Stats(); st.Malformed != 0 || st.Truncated != 0 {
				t.Errorf("stats = %+v", st)
			}
		})
	}
}
