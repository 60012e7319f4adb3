// Package peers starts the real programs Ferry's integration tests talk to —
// Prometheus, node exporter, VictoriaLogs, headless Chromium — on free
// 127.0.0.1 ports, and stops them when the test ends.
//
// The binaries come from the environment, as scripts/setup/*.sh print them
// (FERRY_PROMETHEUS_BIN and so on). Without one a test is skipped with a
// message naming the setup script, or fails when FERRY_REQUIRE_PEERS=1, as
// scripts/test.sh sets in CI.
package peers

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Bin returns the binary named by the environment variable env, or skips
// the test (fails it when FERRY_REQUIRE_PEERS=1). setup names the script
// that installs it, for the message.
func Bin(t testing.TB, env, setup string) string {
	t.Helper()
	bin := os.Getenv(env)
	msg := ""
	switch _, err := os.Stat(bin); {
	case bin == "":
		msg = env + " is not set: run " + setup + " (or scripts/test.sh) to install it"
	case err != nil:
		msg = env + ": " + err.Error()
	default:
		return bin
	}
	if os.Getenv("FERRY_REQUIRE_PEERS") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// FreeAddr returns a 127.0.0.1 address with a port nothing listens on.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Process is a peer program started by a test. Stop and Start may be called
// to simulate an outage; it is stopped when the test ends.
type Process struct {
	t     testing.TB
	bin   string
	args  []string
	ready string
	opt   Options
	log   string

	cmd    *exec.Cmd
	exited chan struct{}
}

// Start runs bin with args and waits until a GET of the ready URL answers
// 200 (within 30s). Its output goes to a log file shown if it fails to
// start.
func Start(t testing.TB, bin, ready string, args ...string) *Process {
	t.Helper()
	return StartWith(t, bin, ready, Options{}, args...)
}

// Options change how StartWith checks that a peer is ready; the zero value
// is Start's check.
type Options struct {
	// Client does the GET of the ready URL (http.DefaultClient when nil),
	// such as one that trusts the peer's self-signed certificate.
	Client *http.Client
	// Header is sent with the GET of the ready URL, such as the
	// Authorization the peer wants.
	Header http.Header
	// Timeout is how long to wait for the ready URL to answer 200 (30s
	// when zero).
	Timeout time.Duration
}

// StartWith is Start for a peer whose ready URL needs TLS or credentials,
// or that takes longer than 30s to be ready.
func StartWith(t testing.TB, bin, ready string, o Options, args ...string) *Process {
	t.Helper()
	if o.Timeout == 0 {
		o.Timeout = 30 * time.Second
	}
	p := &Process{t: t, bin: bin, args: args, ready: ready, opt: o,
		log: filepath.Join(t.TempDir(), filepath.Base(bin)+".log")}
	p.Start()
	t.Cleanup(p.Stop)
	return p
}

// Start starts the process again after Stop, with the same arguments (and
// so the same address and data directory).
func (p *Process) Start() {
	p.t.Helper()
	if p.cmd != nil {
		return
	}
	logf, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		p.t.Fatal(err)
	}
	cmd := exec.Command(p.bin, p.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		p.t.Fatal(err)
	}
	p.cmd, p.exited = cmd, make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(p.exited) }()
	deadline := time.Now().Add(p.opt.Timeout)
	for {
		select {
		case <-p.exited:
			out, _ := os.ReadFile(p.log)
			p.cmd = nil
			p.t.Fatalf("%s exited early:\n%s", p.bin, out)
		default:
		}
		if p.isReady() {
			return
		}
		if time.Now().After(deadline) {
			out, _ := os.ReadFile(p.log)
			p.t.Fatalf("%s not ready at %s within %v:\n%s", p.bin, p.ready, p.opt.Timeout, tail(out))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// isReady tells whether a GET of the ready URL answers 200.
func (p *Process) isReady() bool {
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, p.ready, nil)
	if err != nil {
		return false
	}
	for k, v := range p.opt.Header {
		req.Header[k] = v
	}
	c := p.opt.Client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// tail is the end of a log, short enough for a test failure message.
func tail(b []byte) []byte {
	if len(b) > 8000 {
		return b[len(b)-8000:]
	}
	return b
}

// Stop interrupts the process and waits for it to exit, killing it after
// 10s. It does nothing if the process is not running.
func (p *Process) Stop() {
	if p.cmd == nil {
		return
	}
	p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
	}
	p.cmd = nil
}

// Pid returns the process id, or 0 when stopped.
func (p *Process) Pid() int {
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Chromium returns the headless browser (FERRY_CHROMIUM_BIN).
func Chromium(t testing.TB) string {
	return Bin(t, "FERRY_CHROMIUM_BIN", "scripts/setup/chromium.sh")
}

// Browse runs headless Chromium on url with extra arguments (such as
// --dump-dom or --screenshot=FILE) and returns its standard output.
func Browse(t testing.TB, bin, url string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	all := append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--no-first-run", "--no-default-browser-check", "--disable-extensions", "--hide-scrollbars",
		"--user-data-dir=" + t.TempDir(),
	}, args...)
	cmd := exec.CommandContext(ctx, bin, append(all, url)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
	}
	return stdout.String()
}
