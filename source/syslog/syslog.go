// Package syslog receives syslog messages over TCP, TLS and UDP, as
// Promtail's syslog target and Alloy's loki.source.syslog do, and emits
// them as log entries.
//
// A Source listens on one address. TCP and TLS streams may mix the two
// framings of RFC 6587, detected per message: octet counting ("LEN SP
// MSG") and newline-terminated messages. UDP takes one message per
// datagram. Messages are parsed as RFC 5424 or RFC 3164 with the usual
// vendor variants (see Parser.Parse) by a hand-written parser that does
// not allocate (package syslogmsg, which stage.Syslog shares for syslog
// lines read from files); each entry then costs one allocation, its
// labels: its line and label values are one string cut from a block that
// the entries of its batch share.
//
// # Labels
//
// Entries carry the labels Promtail gives syslog messages (internal labels,
// for relabeling; sinks drop names that start with "__"):
//
//	__syslog_connection_ip_address   the sender's address
//	__syslog_connection_hostname     its reverse DNS name, if any
//	__syslog_message_severity        emergency, alert, critical, error, warning, notice, informational, debug
//	__syslog_message_facility        kern, user, mail, daemon, auth, syslog, lpr, news, uucp, "clock daemon",
//	                                 authpriv, ftp, "NTP subsystem", "log audit", "log alert", cron, local0…local7
//	__syslog_message_hostname        HOSTNAME
//	__syslog_message_app_name        APP-NAME, or the RFC 3164 TAG
//	__syslog_message_proc_id         PROCID, or the RFC 3164 "[pid]"
//	__syslog_message_msg_id          MSGID, or Cisco's FACILITY-SEVERITY-MNEMONIC
//	__syslog_message_sd_<id>_<name>  structured data (with LabelStructuredData)
//	__syslog_parse_error             why a delivered message could not be parsed
//
// plus the Source's Labels. SD-IDs such as "origin@32473" become
// "origin_32473", as in Promtail; other characters not valid in a label
// name are replaced by "_" too.
//
// # Delivery contract
//
// Syslog has no positions and no way to ask a sender to send again, so
// delivery is as good as the transport allows:
//
//   - TCP and TLS: a connection's messages are read, parsed and sent in
//     batches by one goroutine; when the pipeline is full the send blocks
//     and the connection is not read, so the kernel's socket buffers fill
//     and the sender slows down (backpressure). Nothing is buffered beyond
//     one batch and one read buffer per connection: 2 KiB, grown to
//     MaxMessageLength for long messages and to 64 KiB while the sender is
//     ahead of the reads (each read fills the buffer), which takes fewer
//     reads and makes larger batches (BenchmarkSyslogTCP: 1.9 times the
//     messages per CPU second of 2 KiB reads).
//   - UDP: a datagram that arrives while the pipeline is full and the
//     pending batch is at BatchSize is dropped and counted with
//     Reporter.Dropped(ReasonPipelineFull). What overflows the socket's
//     receive buffer (ReadBuffer) the kernel drops; on Linux the Source
//     asks it to tell (SO_RXQ_OVFL) and counts those drops under
//     ReasonKernelBufferFull when the next datagram arrives.
//   - Acknowledgements are used only to count outcomes: entries whose
//     batch was not delivered (an error that is not permanent) cannot be
//     read again and are counted with Reporter.Dropped(ReasonUndelivered).
//   - Entries in flight when Run returns are lost, as with any syslog
//     receiver; senders that need more should use a reliable relay (RELP,
//     a disk-assisted rsyslog queue) in front.
//
// Malformed messages are delivered with their raw bytes as the line and a
// __syslog_parse_error label, or, with DropMalformed, dropped and counted
// (ReasonMalformed). Messages longer than MaxMessageLength are cut and
// counted (ReasonTruncated).
//
// # Metrics
//
// A Source is a prometheus.Collector, collected by the pipeline it runs
// in: ferry_syslog_messages_received_total, ferry_syslog_parse_errors_total,
// ferry_syslog_dropped_messages_total by reason, and
// ferry_syslog_connections_open, _accepted_total and _rejected_total, each
// with the label source=Name.
package syslog

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/internal/arena"
	"github.com/ferrydev/ferry/internal/lifecycle"
	"github.com/ferrydev/ferry/source"
	"github.com/ferrydev/ferry/source/syslog/syslogmsg"
	"github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
)

// Protocol is the transport a Source listens on.
type Protocol int

const (
	// TCP (the default): streams with octet-counted or newline framing;
	// TLS when the Source has a TLS configuration.
	TCP Protocol = iota
	// UDP: one message per datagram.
	UDP
)

func (p Protocol) String() string {
	switch p {
	case TCP:
		return "tcp"
	case UDP:
		return "udp"
	}
	return fmt.Sprintf("Protocol(%d)", int(p))
}

// Defaults of the zero Source.
const (
	DefaultIdleTimeout      = 120 * time.Second
	DefaultMaxConnections   = 1024
	DefaultMaxMessageLength = 8192
	DefaultBatchSize        = 512
	// DefaultUDPFlushInterval bounds how long a UDP message waits for its
	// batch to fill.
	DefaultUDPFlushInterval = 10 * time.Millisecond
)

// Reasons under which the Source counts entries with Reporter.Dropped.
const (
	ReasonPipelineFull = "pipeline_full"
	ReasonUndelivered  = "undelivered"
	ReasonMalformed    = "malformed"
	ReasonTruncated    = "too_long_truncated"
	// ReasonKernelBufferFull counts UDP datagrams the kernel dropped
	// because the socket's receive buffer was full (Linux, from
	// SO_RXQ_OVFL). The kernel tells of them with the next datagram it
	// delivers, so they are counted when one arrives.
	ReasonKernelBufferFull = "kernel_buffer_full"
)

// dropReasons index Source.stats.dropped.
var dropReasons = [...]string{ReasonPipelineFull, ReasonUndelivered, ReasonMalformed, ReasonTruncated, ReasonKernelBufferFull}

const (
	dropPipelineFull = iota
	dropUndelivered
	dropMalformed
	dropTruncated
	dropKernel
)

// drop counts n entries dropped for dropReasons[r], in the Source's
// metrics and with the Reporter.
func (s *Source) drop(rep ferry.Reporter, r, n int) {
	if n <= 0 {
		return
	}
	s.stats.dropped[r].Add(int64(n))
	rep.Dropped(dropReasons[r], n)
}

// The labels of syslog entries, as Promtail names them.
const (
	LabelConnectionIP       = "__syslog_connection_ip_address"
	LabelConnectionHostname = "__syslog_connection_hostname"
	LabelSeverity           = syslogmsg.LabelSeverity
	LabelFacility           = syslogmsg.LabelFacility
	LabelHostname           = syslogmsg.LabelHostname
	LabelAppName            = syslogmsg.LabelAppName
	LabelProcID             = syslogmsg.LabelProcID
	LabelMsgID              = syslogmsg.LabelMsgID
	LabelSDPrefix           = syslogmsg.LabelSDPrefix
	LabelParseError         = syslogmsg.LabelParseError
)

// Source listens for syslog messages on one address and emits them as
// entries. It implements source.Source[ferry.Entry], ferry.Starter and
// source.Closer; see the package doc for its delivery contract.
//
// Configuration fields must not change after Start. Start listens; Run
// serves connections (or datagrams) until its context ends, and may be
// called again after it returned (the listener stays open in between, so
// senders queue in the kernel's backlog); Close stops listening.
type Source struct {
	// Addr to listen on, such as "127.0.0.1:1514" or ":514". Required
	// unless Listener or PacketConn is set.
	Addr string
	// Protocol is TCP (default) or UDP.
	Protocol Protocol
	// Listener, if set, is used instead of listening on Addr (TCP, and
	// TLS if configured). Close closes it.
	Listener net.Listener
	// PacketConn, if set, is used instead of listening on Addr (UDP).
	// Close closes it.
	PacketConn net.PacketConn

	// TLS makes a TCP source accept TLS only, with the certificate and
	// key in CertFile and KeyFile (or Cert and Key); a CAFile (or CA)
	// makes it require and verify client certificates.
	TLS *config.TLSConfig
	// TLSConfig, if set, is used as is instead of TLS.
	TLSConfig *tls.Config

	// Labels are added to every entry.
	Labels labels.Labels
	// LabelStructuredData adds __syslog_message_sd_<id>_<name> labels for
	// RFC 5424 structured data.
	LabelStructuredData bool
	// UseIncomingTimestamp sets an entry's timestamp from the message's
	// own, when it has one; otherwise the time of receipt is used.
	UseIncomingTimestamp bool
	// KeepRaw makes the line the whole message as received (PRI and
	// header included) rather than its MSG part.
	KeepRaw bool
	// DropMalformed drops messages that cannot be parsed, counting them,
	// rather than delivering them raw with a __syslog_parse_error label.
	DropMalformed bool
	// Location of RFC 3164 timestamps, which carry no zone (default UTC).
	Location *time.Location
	// DisableHostnameLookup leaves out __syslog_connection_hostname, which
	// otherwise costs a reverse DNS lookup per connection (TCP) or per new
	// sender address (UDP, cached).
	DisableHostnameLookup bool

	// IdleTimeout closes TCP connections that sent nothing for this long
	// (default DefaultIdleTimeout); negative disables it.
	IdleTimeout time.Duration
	// MaxConnections bounds the open TCP connections (default
	// DefaultMaxConnections); connections beyond it are closed at once.
	MaxConnections int
	// MaxMessageLength bounds a message in bytes (default
	// DefaultMaxMessageLength); longer ones are cut. It is also the most a
	// connection's read buffer grows to, or 64 KiB if more, for a
	// connection whose sender is ahead of the reads.
	MaxMessageLength int
	// BatchSize bounds the entries of one batch (default
	// DefaultBatchSize).
	BatchSize int
	// ReadBuffer sets the UDP socket's receive buffer (SO_RCVBUF) in
	// bytes, which absorbs bursts while the Source is busy; the kernel
	// caps it at net.core.rmem_max. Zero asks for 4 MiB, best effort.
	ReadBuffer int
	// Name identifies the Source in its metrics (the "source" label);
	// default "<protocol>://<Addr>", such as "udp://:514".
	Name string

	life     lifecycle.State
	mu       sync.Mutex
	ln       net.Listener // the TCP listener; TLS is added per connection
	tlsConf  *tls.Config
	pc       net.PacketConn
	rep      ferry.Reporter
	running  bool
	conns    map[net.Conn]struct{}
	hostMu   sync.Mutex
	hostname map[netip.Addr]string // UDP reverse lookups

	udpOvfl bool // the kernel reports its drops (SO_RXQ_OVFL)

	descsOnce sync.Once
	descs     *descs

	stats struct {
		messages, malformed, truncated, accepted, rejected, open atomic.Int64
		// dropped by reason, in the order of dropReasons
		dropped [len(dropReasons)]atomic.Int64
		// the kernel's cumulative count of the UDP socket's drops
		kernelSeen atomic.Uint32
	}
}

// The errors of Run before Start and after Close.
var (
	errNotStarted = fmt.Errorf("syslog: Run before Start: %w", ferry.ErrNotStarted)
	errClosed     = fmt.Errorf("syslog: %w", ferry.ErrClosed)
)

var (
	_ source.Source[ferry.Entry] = (*Source)(nil)
	_ source.Closer              = (*Source)(nil)
	_ ferry.Starter              = (*Source)(nil)
)

// Stats are counters of a Source since it was created.
type Stats struct {
	// Messages received (including malformed and truncated ones).
	Messages int64
	// Malformed messages (delivered raw or dropped).
	Malformed int64
	// Truncated messages, longer than MaxMessageLength.
	Truncated int64
	// Accepted and Rejected TCP connections (over MaxConnections), and
	// Open ones now.
	Accepted, Rejected, Open int64
	// Dropped messages by reason (the Reason constants); truncated
	// messages are delivered cut, and counted here too.
	Dropped map[string]int64
}

// Stats returns the Source's counters.
func (s *Source) Stats() Stats {
	return Stats{
		Messages: s.stats.messages.Load(), Malformed: s.stats.malformed.Load(),
		Truncated: s.stats.truncated.Load(), Accepted: s.stats.accepted.Load(),
		Rejected: s.stats.rejected.Load(), Open: s.stats.open.Load(),
		Dropped: s.droppedMap(),
	}
}

func (s *Source) droppedMap() map[string]int64 {
	m := make(map[string]int64, len(dropReasons))
	for i, r := range dropReasons {
		m[r] = s.stats.dropped[i].Load()
	}
	return m
}

// Validate reports a configuration that cannot work.
func (s *Source) Validate() error {
	var errs []error
	if s.Addr == "" && s.Listener == nil && s.PacketConn == nil {
		errs = append(errs, errors.New("syslog: Addr, Listener or PacketConn is required"))
	}
	switch s.Protocol {
	case TCP:
		if s.PacketConn != nil {
			errs = append(errs, errors.New("syslog: PacketConn needs Protocol UDP"))
		}
	case UDP:
		if s.Listener != nil {
			errs = append(errs, errors.New("syslog: Listener needs Protocol TCP"))
		}
		if s.TLS != nil || s.TLSConfig != nil {
			errs = append(errs, errors.New("syslog: TLS needs Protocol TCP"))
		}
	default:
		errs = append(errs, fmt.Errorf("syslog: unknown Protocol %d", int(s.Protocol)))
	}
	if s.MaxConnections < 0 || s.MaxMessageLength < 0 || s.BatchSize < 0 || s.ReadBuffer < 0 {
		errs = append(errs, errors.New("syslog: negative limit"))
	}
	if s.TLS != nil && s.TLSConfig == nil {
		if (s.TLS.CertFile == "" && s.TLS.Cert == "") || (s.TLS.KeyFile == "" && string(s.TLS.Key) == "") {
			errs = append(errs, errors.New("syslog: TLS needs a certificate and a key"))
		}
	}
	s.Labels.Range(func(l labels.Label) {
		if !model.LegacyValidation.IsValidLabelName(l.Name) {
			errs = append(errs, fmt.Errorf("syslog: label name %q is invalid", l.Name))
		}
	})
	return errors.Join(errs...)
}

// Start listens on Addr (unless Listener or PacketConn is set), with TLS
// if configured, and keeps r for the Source's life. It fails if the
// configuration is invalid, the address cannot be bound, or the TLS files
// cannot be loaded.
func (s *Source) Start(ctx context.Context, r ferry.Reporter) error {
	if err := s.Validate(); err != nil {
		return err
	}
	if r == nil {
		r = ferry.NopReporter()
	}
	return s.life.Start(errClosed, func() error {
		s.mu.Lock()
		defer s.mu.Unlock()
		switch s.Protocol {
		case UDP:
			pc := s.PacketConn
			if pc == nil {
				var lc net.ListenConfig
				var err error
				if pc, err = lc.ListenPacket(ctx, "udp", s.Addr); err != nil {
					return fmt.Errorf("syslog: %w", err)
				}
			}
			if err := s.setupUDP(pc); err != nil {
				if s.PacketConn == nil {
					pc.Close()
				}
				return err
			}
			s.pc = pc
		default:
			ln := s.Listener
			if ln == nil {
				var lc net.ListenConfig
				var err error
				if ln, err = lc.Listen(ctx, "tcp", s.Addr); err != nil {
					return fmt.Errorf("syslog: %w", err)
				}
			}
			tc, err := s.tlsConfig()
			if err != nil {
				ln.Close()
				return err
			}
			s.ln, s.tlsConf = ln, tc
		}
		s.rep = r
		s.conns = map[net.Conn]struct{}{}
		return nil
	})
}

// setupUDP sets the receive buffer of a UDP socket and asks the kernel
// to report its drops.
func (s *Source) setupUDP(pc net.PacketConn) error {
	u, ok := pc.(*net.UDPConn)
	if !ok {
		return nil
	}
	if s.ReadBuffer > 0 {
		if err := u.SetReadBuffer(s.ReadBuffer); err != nil {
			return fmt.Errorf("syslog: ReadBuffer: %w", err)
		}
	} else {
		u.SetReadBuffer(4 << 20) // best effort: fewer kernel drops in bursts
	}
	s.udpOvfl = enableRxqOvfl(u)
	return nil
}

// tlsConfig builds the server TLS configuration, or returns nil for plain
// TCP.
func (s *Source) tlsConfig() (*tls.Config, error) {
	if s.TLSConfig != nil {
		return s.TLSConfig, nil
	}
	if s.TLS == nil {
		return nil, nil
	}
	read := func(file, inline string) ([]byte, error) {
		if file != "" {
			return os.ReadFile(file)
		}
		return []byte(inline), nil
	}
	certPEM, err := read(s.TLS.CertFile, s.TLS.Cert)
	if err != nil {
		return nil, fmt.Errorf("syslog: TLS certificate: %w", err)
	}
	keyPEM, err := read(s.TLS.KeyFile, string(s.TLS.Key))
	if err != nil {
		return nil, fmt.Errorf("syslog: TLS key: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("syslog: TLS certificate and key: %w", err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if v := uint16(s.TLS.MinVersion); v != 0 {
		tc.MinVersion = v
	}
	if s.TLS.CAFile != "" || s.TLS.CA != "" {
		caPEM, err := read(s.TLS.CAFile, s.TLS.CA)
		if err != nil {
			return nil, fmt.Errorf("syslog: TLS CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, errors.New("syslog: TLS CA: no certificate found")
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return tc, nil
}

// LocalAddr returns the address the Source listens on, once started
// (useful with port 0), or nil.
func (s *Source) LocalAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.ln != nil:
		return s.ln.Addr()
	case s.pc != nil:
		return s.pc.LocalAddr()
	}
	return nil
}

// Close stops listening and closes every connection. It is safe without
// Start and safe twice.
func (s *Source) Close(ctx context.Context) error {
	return s.life.Close(func(started bool) error {
		if !started {
			return nil
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		var err error
		if s.ln != nil {
			err = s.ln.Close()
		}
		if s.pc != nil {
			err = s.pc.Close()
		}
		for c := range s.conns {
			c.Close()
		}
		if errors.Is(err, net.ErrClosed) {
			err = nil
		}
		return err
	})
}

type limits struct {
	idle      time.Duration
	maxConns  int
	maxLen    int
	batchSize int
}

func (s *Source) cfg() limits {
	c := limits{idle: s.IdleTimeout, maxConns: s.MaxConnections, maxLen: s.MaxMessageLength, batchSize: s.BatchSize}
	if c.idle == 0 {
		c.idle = DefaultIdleTimeout
	}
	if c.maxConns == 0 {
		c.maxConns = DefaultMaxConnections
	}
	if c.maxLen == 0 {
		c.maxLen = DefaultMaxMessageLength
	}
	if c.batchSize == 0 {
		c.batchSize = DefaultBatchSize
	}
	return c
}

// Run serves until ctx is done: it accepts connections and reads them (TCP,
// TLS), or reads datagrams (UDP), and emits their messages on out. When ctx
// ends it closes the connections it accepted and returns once their
// goroutines finished; the listener stays open for the next Run. It
// returns an error if the Source was not started or the listener failed.
func (s *Source) Run(ctx context.Context, out chan<- ferry.Batch[ferry.Entry]) error {
	if err := s.life.Err(errNotStarted, errClosed); err != nil {
		return err
	}
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return errors.New("syslog: already running")
	}
	s.running = true
	ln, pc, rep, tc := s.ln, s.pc, s.rep, s.tlsConf
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.running = false
		s.mu.Unlock()
	}()
	rep.SetHealth(ferry.Healthy, nil)
	if pc != nil {
		return s.runUDP(ctx, pc, out, rep)
	}
	return s.runTCP(ctx, ln, tc, out, rep)
}

func (s *Source) runTCP(ctx context.Context, ln net.Listener, tc *tls.Config, out chan<- ferry.Batch[ferry.Entry], rep ferry.Reporter) error {
	c := s.cfg()
	log := rep.Logger()
	var wg sync.WaitGroup
	rctx, cancel := context.WithCancel(ctx)
	defer func() {
		cancel()
		s.mu.Lock()
		for conn := range s.conns {
			conn.Close()
		}
		s.mu.Unlock()
		wg.Wait()
	}()
	// Accept returns at once when ctx ends: a deadline in the past wakes
	// it, for listeners that support deadlines; others are unblocked by
	// the dummy connection below.
	stop := context.AfterFunc(ctx, func() { wakeAccept(ln) })
	defer stop()
	var delay time.Duration
	for {
		conn, err := ln.Accept()
		if ctx.Err() != nil {
			if conn != nil {
				conn.Close()
			}
			if d, ok := ln.(interface{ SetDeadline(time.Time) error }); ok {
				d.SetDeadline(time.Time{})
			}
			return nil
		}
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("syslog: listener closed: %w", err)
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				// A wake-up of an earlier Run that came late: clear it.
				if d, ok := ln.(interface{ SetDeadline(time.Time) error }); ok {
					d.SetDeadline(time.Time{})
				}
				continue
			}
			// Temporary failures (EMFILE, ECONNABORTED): back off and
			// retry, as net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			log.Warn("syslog: accept failed", "err", err, "retry_in", delay)
			rep.SetHealth(ferry.Degraded, err)
			select {
			case <-time.After(delay):
			case <-ctx.Done():
				return nil
			}
			continue
		}
		if delay != 0 {
			delay = 0
			rep.SetHealth(ferry.Healthy, nil)
		}
		s.mu.Lock()
		if len(s.conns) >= c.maxConns {
			s.mu.Unlock()
			s.stats.rejected.Add(1)
			log.Debug("syslog: too many connections, closing new one", "remote", conn.RemoteAddr())
			conn.Close()
			continue
		}
		s.conns[conn] = struct{}{}
		s.mu.Unlock()
		s.stats.accepted.Add(1)
		s.stats.open.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				conn.Close()
				s.mu.Lock()
				delete(s.conns, conn)
				s.mu.Unlock()
				s.stats.open.Add(-1)
			}()
			s.serveConn(rctx, conn, tc, out, rep, c)
		}()
	}
}

// wakeAccept makes a blocked Accept return.
func wakeAccept(ln net.Listener) {
	if d, ok := ln.(interface{ SetDeadline(time.Time) error }); ok {
		d.SetDeadline(time.Unix(1, 0))
		return
	}
	// A listener without deadlines: connect to it, so that Accept returns
	// and the loop sees ctx is done.
	if c, err := net.DialTimeout(ln.Addr().Network(), ln.Addr().String(), time.Second); err == nil {
		c.Close()
	}
}

// connInfo holds the per-sender label values, computed once.
type connInfo struct {
	ip, host string
}

func (s *Source) lookup(ctx context.Context, ip netip.Addr) string {
	if s.DisableHostnameLookup || !ip.IsValid() {
		return ""
	}
	lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	names, err := net.DefaultResolver.LookupAddr(lctx, ip.String())
	if err != nil {
		return ""
	}
	return strings.Join(names, ",")
}

func addrIP(a net.Addr) netip.Addr {
	switch a := a.(type) {
	case *net.TCPAddr:
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	case *net.UDPAddr:
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	}
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// serveConn reads one connection until it ends, fails, idles out or ctx is
// done.
func (s *Source) serveConn(ctx context.Context, conn net.Conn, tc *tls.Config, out chan<- ferry.Batch[ferry.Entry], rep ferry.Reporter, c limits) {
	log := rep.Logger()
	defer func() {
		// A bug in parsing must cost one connection, not the program.
		if r := recover(); r != nil {
			log.Error("syslog: connection handler panicked; connection closed", "remote", conn.RemoteAddr(), "panic", r)
		}
	}()
	ip := addrIP(conn.RemoteAddr())
	if tc != nil {
		// The handshake runs here, not in Accept, so that a slow or silent
		// client holds only its own goroutine; it gets IdleTimeout (or
		// 10s) to finish it.
		hs := c.idle
		if hs <= 0 {
			hs = 10 * time.Second
		}
		t := tls.Server(conn, tc)
		conn.SetDeadline(time.Now().Add(hs))
		if err := t.HandshakeContext(ctx); err != nil {
			log.Debug("syslog: TLS handshake failed", "remote", conn.RemoteAddr(), "err", err)
			return
		}
		conn.SetDeadline(time.Time{})
		conn = t
	}
	ci := connInfo{ip: ip.String(), host: s.lookup(ctx, ip)}
	if !ip.IsValid() {
		ci.ip = ""
	}
	e := s.newEmitter(out, rep, c.batchSize)
	f := newFramer(conn, c.maxLen)
	var sendErr error
	f.beforeRead = func() {
		if sendErr == nil {
			sendErr = e.flush(ctx)
		}
		if c.idle > 0 {
			conn.SetReadDeadline(time.Now().Add(c.idle))
		}
	}
	for {
		msg, truncated, err := f.next()
		if sendErr != nil {
			return
		}
		if msg != nil {
			s.handle(e, msg, truncated, &ci, time.Now())
			if len(e.batch) >= c.batchSize {
				if sendErr = e.flush(ctx); sendErr != nil {
					return
				}
			}
		}
		if err != nil {
			if sendErr == nil {
				e.flush(ctx)
			}
			var ne net.Error
			switch {
			case errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
				log.Debug("syslog: idle connection closed", "remote", conn.RemoteAddr())
			case ctx.Err() != nil, errors.Is(err, net.ErrClosed):
			default:
				if !isEOF(err) {
					log.Debug("syslog: connection ended", "remote", conn.RemoteAddr(), "err", err)
				}
			}
			return
		}
	}
}

func isEOF(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
}

// emitter gathers the entries of one connection (or of the UDP socket)
// into batches.
type emitter struct {
	s     *Source
	out   chan<- ferry.Batch[ferry.Entry]
	rep   ferry.Reporter
	batch []ferry.Entry
	last  int // the length of the last batch taken: the next one's capacity
	size  int
	sc    scratch
	text  arena.Arena // the strings of the batch's entries
}

func (s *Source) newEmitter(out chan<- ferry.Batch[ferry.Entry], rep ferry.Reporter, size int) *emitter {
	e := &emitter{s: s, out: out, rep: rep, size: size}
	e.sc.b.Strings = e.text.String
	return e
}

// take returns the pending batch and starts a new one.
func (e *emitter) take() ferry.Batch[ferry.Entry] {
	items := e.batch
	e.batch = nil
	e.last = len(items)
	e.text.Release() // the entries keep their strings' blocks
	rep, s := e.rep, e.s
	n := len(items)
	return ferry.NewBatch(items, func(err error) {
		if !ferry.Settled(err) {
			s.drop(rep, dropUndelivered, n)
		}
	})
}

// flush sends the pending batch, blocking while the pipeline is full.
func (e *emitter) flush(ctx context.Context) error {
	if len(e.batch) == 0 {
		return nil
	}
	return source.Send(ctx, e.out, e.take())
}

// scratch is the per-emitter memory reused for every message.
type scratch struct {
	msg  Message
	p    Parser
	b    syslogmsg.Builder
	lbls []labels.Label
	sb   labels.ScratchBuilder
}

// handle parses one message and appends its entry to the batch.
func (s *Source) handle(e *emitter, raw []byte, truncated bool, ci *connInfo, now time.Time) {
	s.stats.messages.Add(1)
	if truncated {
		s.stats.truncated.Add(1)
		s.drop(e.rep, dropTruncated, 1)
	}
	sc := &e.sc
	sc.p.Location = s.Location
	m := &sc.msg
	perr := sc.p.Parse(raw, m)
	if perr != nil {
		s.stats.malformed.Add(1)
		if s.DropMalformed {
			s.drop(e.rep, dropMalformed, 1)
			return
		}
	}
	var ent ferry.Entry
	s.buildEntry(sc, &ent, raw, perr, ci)
	ent.Timestamp = now
	if s.UseIncomingTimestamp && perr == nil && !m.Timestamp.IsZero() {
		ent.Timestamp = m.Timestamp
	}
	if e.batch == nil {
		// Sized like the last batch: one allocation a batch rather than a
		// doubling series, without reserving BatchSize for a trickle.
		e.batch = make([]ferry.Entry, 0, min(max(e.last, 16), max(e.size, 1)))
	}
	e.batch = append(e.batch, ent)
}

// buildEntry fills ent's line and labels from the parsed message (see
// syslogmsg.Builder), with the connection's and the Source's labels.
func (s *Source) buildEntry(sc *scratch, ent *ferry.Entry, raw []byte, perr error, ci *connInfo) {
	sc.b.KeepRaw, sc.b.StructuredData = s.KeepRaw, s.LabelStructuredData
	line, ml := sc.b.Build(&sc.msg, raw, perr)
	ent.Line = line
	lbls := sc.lbls[:0]
	if ci.ip != "" {
		lbls = append(lbls, labels.Label{Name: LabelConnectionIP, Value: ci.ip})
	}
	if ci.host != "" {
		lbls = append(lbls, labels.Label{Name: LabelConnectionHostname, Value: ci.host})
	}
	for _, l := range ml {
		lbls = append(lbls, labels.Label{Name: l.Name, Value: l.Value})
	}
	s.Labels.Range(func(l labels.Label) { lbls = append(lbls, l) })
	// Stable, so that of two labels with one name the later (the Source's
	// Labels, or the last SD parameter) is the one kept below.
	slices.SortStableFunc(lbls, func(a, b labels.Label) int { return strings.Compare(a.Name, b.Name) })
	sc.sb.Reset()
	for i, l := range lbls {
		if i+1 < len(lbls) && lbls[i+1].Name == l.Name {
			continue
		}
		sc.sb.Add(l.Name, l.Value)
	}
	ent.Labels = sc.sb.Labels()
	clear(lbls)
	sc.lbls = lbls[:0]
}

// runUDP reads datagrams until ctx is done.
func (s *Source) runUDP(ctx context.Context, pc net.PacketConn, out chan<- ferry.Batch[ferry.Entry], rep ferry.Reporter) error {
	c := s.cfg()
	log := rep.Logger()
	stop := context.AfterFunc(ctx, func() { pc.SetReadDeadline(time.Unix(1, 0)) })
	defer func() {
		stop()
		pc.SetReadDeadline(time.Time{})
	}()
	e := s.newEmitter(out, rep, c.batchSize)
	bufLen := min(c.maxLen, 65535) + 1
	buf := make([]byte, bufLen)
	udp, _ := pc.(*net.UDPConn)
	var oob []byte
	if s.udpOvfl {
		oob = make([]byte, oobSize)
	}
	var last netip.Addr
	var ci connInfo
	var pending *ferry.Batch[ferry.Entry]
	var deadline time.Time
	// trySend offers the pending batch without blocking.
	trySend := func() {
		if pending == nil && len(e.batch) > 0 {
			b := e.take()
			pending = &b
		}
		if pending == nil {
			return
		}
		select {
		case out <- *pending:
			pending = nil
			deadline = time.Time{}
		default:
		}
	}
	for {
		if ctx.Err() != nil {
			break
		}
		if pending != nil || len(e.batch) > 0 {
			if deadline.IsZero() {
				deadline = time.Now().Add(DefaultUDPFlushInterval)
			}
			pc.SetReadDeadline(deadline)
		} else {
			pc.SetReadDeadline(time.Time{})
		}
		var n int
		var ip netip.Addr
		var err error
		if udp != nil {
			var ap netip.AddrPort
			var drops uint32
			var ok bool
			n, ap, drops, ok, err = readUDP(udp, buf, oob)
			ip = ap.Addr().Unmap()
			if ok {
				s.kernelDrops(rep, drops)
			}
		} else {
			var a net.Addr
			n, a, err = pc.ReadFrom(buf)
			if a != nil {
				ip = addrIP(a)
			}
		}
		if ctx.Err() != nil {
			break
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				trySend()
				if pending != nil {
					deadline = time.Now().Add(DefaultUDPFlushInterval)
				}
				continue
			}
			if errors.Is(err, net.ErrClosed) {
				e.drop(pending)
				return fmt.Errorf("syslog: socket closed: %w", err)
			}
			log.Debug("syslog: UDP read failed", "err", err)
			continue
		}
		if ip != last || ci.ip == "" {
			last = ip
			ci = s.udpConnInfo(ctx, ip)
		}
		if pending != nil && len(e.batch) >= c.batchSize {
			// Pipeline full and the next batch full too: drop this one.
			s.drop(rep, dropPipelineFull, 1)
			s.stats.messages.Add(1)
			trySend()
			continue
		}
		msg := buf[:n]
		truncated := n == bufLen
		if truncated {
			msg = msg[:bufLen-1]
		}
		s.handle(e, msg, truncated, &ci, time.Now())
		if len(e.batch) >= c.batchSize {
			trySend()
		}
	}
	e.drop(pending)
	if len(e.batch) > 0 {
		b := e.take()
		b.Done(ctx.Err())
	}
	return nil
}

// kernelDrops counts the drops the kernel reported since it last did;
// total is its count since the socket was opened.
func (s *Source) kernelDrops(rep ferry.Reporter, total uint32) {
	seen := s.stats.kernelSeen.Load()
	if total == seen {
		return
	}
	s.stats.kernelSeen.Store(total)
	s.drop(rep, dropKernel, int(total-seen)) // modular: survives a wrap
}

// drop gives up a batch that could not be sent.
func (e *emitter) drop(b *ferry.Batch[ferry.Entry]) {
	if b != nil {
		b.Done(errors.New("syslog: stopped before the pipeline took the batch"))
	}
}

func (s *Source) udpConnInfo(ctx context.Context, ip netip.Addr) connInfo {
	ci := connInfo{}
	if ip.IsValid() {
		ci.ip = ip.String()
	}
	if s.DisableHostnameLookup || !ip.IsValid() {
		return ci
	}
	s.hostMu.Lock()
	h, ok := s.hostname[ip]
	s.hostMu.Unlock()
	if !ok {
		h = s.lookup(ctx, ip)
		s.hostMu.Lock()
		if s.hostname == nil || len(s.hostname) >= 4096 {
			s.hostname = map[netip.Addr]string{}
		}
		s.hostname[ip] = h
		s.hostMu.Unlock()
	}
	ci.host = h
	return ci
}
