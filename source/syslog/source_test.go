package syslog

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/prometheus/common/config"
	"github.com/prometheus/prometheus/model/labels"
)

func dial(t testing.TB, network string, addr net.Addr) net.Conn {
	t.Helper()
	c, err := net.Dial(network, addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestTCPLabelsAndFraming(t *testing.T) {
	r := startSource(t, &Source{
		Labels:                labels.FromStrings("job", "syslog"),
		LabelStructuredData:   true,
		UseIncomingTimestamp:  true,
		DisableHostnameLookup: true,
	}, 16)
	c := dial(t, "tcp", r.s.LocalAddr())
	m1 := `<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog 99 ID47 [exampleSDID@32473 iut="3" eventSource="App\"x"] An application event`
	m2 := "<34>Oct 11 22:14:15 mymachine su: 'su root' failed"
	m3 := "<13>1 2026-13-01T00:00:00Z h a - - - bad timestamp"
	fmt.Fprintf(c, "%d %s%s\n%s\n", len(m1), m1, m2, m3)
	got := r.collect(t, 3, 10*time.Second)

	e := got[0]
	if e.Line != "An application event" {
		t.Errorf("line = %q", e.Line)
	}
	if want := time.Date(2003, 10, 11, 22, 14, 15, 3e6, time.UTC); !e.Timestamp.Equal(want) {
		t.Errorf("timestamp = %v, want %v", e.Timestamp, want)
	}
	want := labels.FromStrings(
		LabelConnectionIP, "127.0.0.1",
		LabelSeverity, "notice",
		LabelFacility, "local4",
		LabelHostname, "mymachine.example.com",
		LabelAppName, "evntslog",
		LabelProcID, "99",
		LabelMsgID, "ID47",
		"__syslog_message_sd_exampleSDID_32473_iut", "3",
		"__syslog_message_sd_exampleSDID_32473_eventSource", `App"x`,
		"job", "syslog",
	)
	if !labels.Equal(e.Labels, want) {
		t.Errorf("labels\n got  %v\n want %v", e.Labels, want)
	}
	want2 := labels.FromStrings(LabelConnectionIP, "127.0.0.1", LabelSeverity, "critical", LabelFacility, "auth",
		LabelHostname, "mymachine", LabelAppName, "su", "job", "syslog")
	if !labels.Equal(got[1].Labels, want2) || got[1].Line != "'su root' failed" {
		t.Errorf("3164 entry = %v %q", got[1].Labels, got[1].Line)
	}
	if got[2].Labels.Get(LabelParseError) != ErrTimestamp.Error() || got[2].Line != m3 {
		t.Errorf("malformed entry = %v %q", got[2].Labels, got[2].Line)
	}
	if st := r.s.Stats(); st.Messages != 3 || st.Malformed != 1 {
		t.Errorf("stats = %+v", st)
	}
}

func TestKeepRawAndDropMalformed(t *testing.T) {
	r := startSource(t, &Source{KeepRaw: true, DropMalformed: true, DisableHostnameLookup: true}, 16)
	c := dial(t, "tcp", r.s.LocalAddr())
	io.WriteString(c, "garbage without pri\n<13>1 - h a - - - raw kept\n")
	got := r.collect(t, 1, 10*time.Second)
	if got[0].Line != "<13>1 - h a - - - raw kept" {
		t.Errorf("line = %q", got[0].Line)
	}
	waitFor(t, "malformed count", func() bool { return r.rep.drops(ReasonMalformed) == 1 })
}

func TestHostnameLookup(t *testing.T) {
	r := startSource(t, &Source{}, 16)
	c := dial(t, "tcp", r.s.LocalAddr())
	io.WriteString(c, "<13>1 - h a - - - x\n")
	got := r.collect(t, 1, 10*time.Second)
	names, _ := net.LookupAddr("127.0.0.1")
	if want := strings.Join(names, ","); got[0].Labels.Get(LabelConnectionHostname) != want {
		t.Errorf("hostname label = %q, want %q", got[0].Labels.Get(LabelConnectionHostname), want)
	}
}

func TestUDP(t *testing.T) {
	r := startSource(t, &Source{Protocol: UDP, DisableHostnameLookup: true}, 16)
	c := dial(t, "udp", r.s.LocalAddr())
	for i := 0; i < 5; i++ {
		fmt.Fprintf(c, "<14>Dec  4 10:00:0%d h app[%d]: udp %d", i, i, i)
	}
	got := r.collect(t, 5, 10*time.Second)
	for i, e := range got {
		if e.Line != fmt.Sprintf("udp %d", i) || e.Labels.Get(LabelProcID) != fmt.Sprint(i) || e.Labels.Get(LabelSeverity) != "informational" {
			t.Errorf("entry %d = %v %q", i, e.Labels, e.Line)
		}
	}
}

// UDP never blocks: with the pipeline full, one batch waits, a second
// fills, and the rest is dropped and counted.
func TestUDPDropsWhenFull(t *testing.T) {
	r := startSource(t, &Source{Protocol: UDP, BatchSize: 4, DisableHostnameLookup: true}, 0)
	c := dial(t, "udp", r.s.LocalAddr())
	const n = 20
	for i := 0; i < n; i++ {
		fmt.Fprintf(c, "<14>1 - h a - - - m%d", i)
		// Let the datagrams arrive one by one (the kernel would drop a
		// burst into a small buffer, which is not what this tests).
		waitFor(t, "datagram", func() bool { return r.s.Stats().Messages == int64(i+1) })
	}
	// At most two batches wait (one offered to the pipeline, one filling):
	// the first may be short, since a partial batch is offered after
	// DefaultUDPFlushInterval.
	d := r.rep.drops(ReasonPipelineFull)
	if d < n-8 || d >= n {
		t.Fatalf("dropped %d of %d, want %d to %d", d, n, n-8, n-2)
	}
	got := r.collect(t, n-d, 10*time.Second)
	for i, e := range got {
		if e.Line != fmt.Sprintf("m%d", i) {
			t.Errorf("entry %d = %q", i, e.Line)
		}
	}
}

func TestTLS(t *testing.T) {
	certFile, keyFile, caFile := writeCert(t)
	r := startSource(t, &Source{TLS: &config.TLSConfig{CertFile: certFile, KeyFile: keyFile}, DisableHostnameLookup: true}, 16)
	pem, _ := os.ReadFile(caFile)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	c, err := tls.Dial("tcp", r.s.LocalAddr().String(), &tls.Config{RootCAs: pool, ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "<13>1 - h a - - - over tls\n")
	got := r.collect(t, 1, 10*time.Second)
	if got[0].Line != "over tls" {
		t.Errorf("line = %q", got[0].Line)
	}
	// A plain-text client gets nothing through.
	p := dial(t, "tcp", r.s.LocalAddr())
	io.WriteString(p, "<13>1 - h a - - - plain\n")
	p.SetReadDeadline(time.Now().Add(5 * time.Second))
	io.Copy(io.Discard, p) // the server ends the failed handshake
	select {
	case b := <-r.out:
		t.Fatalf("plain text delivered over a TLS listener: %v", b.Items)
	default:
	}
}

func TestTLSValidate(t *testing.T) {
	s := &Source{Addr: "127.0.0.1:0", TLS: &config.TLSConfig{}}
	if err := s.Validate(); err == nil {
		t.Error("TLS without certificate validated")
	}
	s = &Source{Addr: "127.0.0.1:0", TLS: &config.TLSConfig{CertFile: "/nonexistent", KeyFile: "/nonexistent"}}
	if err := s.Start(context.Background(), ferry.NopReporter()); err == nil {
		t.Error("Start with missing certificate files succeeded")
	}
	for _, s := range []*Source{{}, {Addr: "x", Protocol: 7}, {Addr: "x", Protocol: UDP, TLSConfig: &tls.Config{}}, {Addr: "x", MaxConnections: -1},
		{Addr: "x", Labels: labels.FromStrings("bad-name", "v")}} {
		if err := s.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil", s)
		}
	}
}

// A full pipeline stops reading the connection: the sender's writes
// block, and nothing is lost once the pipeline drains.
func TestTCPBackpressure(t *testing.T) {
	r := startSource(t, &Source{BatchSize: 16, DisableHostnameLookup: true}, 0)
	c := dial(t, "tcp", r.s.LocalAddr())
	line := strings.Repeat("x", 200)
	sent := 0
	blocked := false
	for sent < 1_000_000 {
		c.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
		if _, err := fmt.Fprintf(c, "<13>1 - h a - - - %08d %s\n", sent, line); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				blocked = true
				break
			}
			t.Fatal(err)
		}
		sent++
	}
	if !blocked {
		t.Fatalf("wrote %d messages without blocking", sent)
	}
	// The partially written message is completed so that framing stays
	// intact, then everything must arrive, in order.
	c.SetWriteDeadline(time.Time{})
	go func() {
		fmt.Fprintf(c, "\n<13>1 - h a - - - end\n")
	}()
	seen := 0
	deadline := time.After(30 * time.Second)
	for {
		select {
		case b := <-r.out:
			for _, e := range b.Items {
				if e.Line == "end" {
					if seen < sent {
						t.Fatalf("end after %d of %d messages", seen, sent)
					}
					return
				}
				if strings.HasPrefix(e.Line, fmt.Sprintf("%08d ", seen)) {
					seen++
				}
			}
			b.Done(nil)
		case <-deadline:
			t.Fatalf("saw %d of %d", seen, sent)
		}
	}
}

func TestMaxConnectionsAndIdleTimeout(t *testing.T) {
	r := startSource(t, &Source{MaxConnections: 2, IdleTimeout: 300 * time.Millisecond, DisableHostnameLookup: true}, 16)
	a := dial(t, "tcp", r.s.LocalAddr())
	b := dial(t, "tcp", r.s.LocalAddr())
	waitFor(t, "two open connections", func() bool { return r.s.Stats().Open == 2 })
	c := dial(t, "tcp", r.s.LocalAddr())
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Error("third connection not closed")
	}
	if st := r.s.Stats(); st.Rejected != 1 {
		t.Errorf("rejected = %d", st.Rejected)
	}
	// Idle connections are closed after IdleTimeout.
	for _, x := range []net.Conn{a, b} {
		x.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := x.Read(make([]byte, 1)); err == nil || isTimeout(err) {
			t.Errorf("idle connection not closed: %v", err)
		}
	}
	waitFor(t, "no open connections", func() bool { return r.s.Stats().Open == 0 })
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

func TestRunRestartsOnSameListener(t *testing.T) {
	s := &Source{Addr: "127.0.0.1:0", DisableHostnameLookup: true}
	if err := s.Start(context.Background(), ferry.NopReporter()); err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	out := make(chan ferry.Batch[ferry.Entry], 4)
	for i := 0; i < 2; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx, out) }()
		c := dial(t, "tcp", s.LocalAddr())
		fmt.Fprintf(c, "<13>1 - h a - - - run %d\n", i)
		select {
		case b := <-out:
			if b.Items[0].Line != fmt.Sprintf("run %d", i) {
				t.Errorf("got %q", b.Items[0].Line)
			}
			b.Done(nil)
		case <-time.After(10 * time.Second):
			t.Fatal("no entry")
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal("second Close:", err)
	}
	if err := s.Run(context.Background(), out); !errors.Is(err, ferry.ErrClosed) {
		t.Fatalf("Run after Close = %v", err)
	}
	if err := (&Source{}).Close(context.Background()); err != nil {
		t.Fatal("Close without Start:", err)
	}
}

// Undelivered batches cannot be read again: they are counted.
func TestUndeliveredCounted(t *testing.T) {
	r := startSource(t, &Source{DisableHostnameLookup: true}, 16)
	c := dial(t, "tcp", r.s.LocalAddr())
	io.WriteString(c, "<13>1 - h a - - - a\n")
	b := <-r.out
	b.Done(fmt.Errorf("sink down"))
	if d := r.rep.drops(ReasonUndelivered); d != 1 {
		t.Fatalf("undelivered = %d", d)
	}
}
