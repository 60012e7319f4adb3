package httpclient

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"
)

// direct is a transport for plain GETs: it sends one over HTTP/1.1 on a
// pooled keep-alive connection that the caller's goroutine writes and reads
// itself. net/http's Transport keeps two goroutines for each connection (a
// reader and a writer, with a 4 KB buffer each) and hands every request and
// response between them and the caller. A Scraper holds a connection for
// each target, so that was 2000 goroutines, their stacks (some 10 MB) and
// their wake-ups at 1000 targets; a Docker source holds a log stream for
// each container. Responses are parsed by net/http itself (ReadResponse),
// and requests written as its Request.Write writes them (writeGET).
// Everything else, proxies, HTTP/2, requests with a body, goes to std.
type direct struct {
	std *http.Transport // its DialContext, timeouts and Proxy apply here too
	tls *tls.Config     // for https, HTTP/1.1 only

	mu   sync.Mutex
	idle map[string][]*dconn // by scheme and address

	// Buffers of connections in use: an idle connection holds none, so
	// that a thousand targets scraped in turn share a few.
	readers, writers sync.Pool
}

// dconn is one connection of direct.
type dconn struct {
	t    *direct
	key  string
	c    net.Conn
	br   *bufio.Reader // nil while idle
	idle *time.Timer   // closes the connection when it stays idle
}

// maxIdlePerKey bounds the idle connections kept for one target: a loop
// scrapes its target once at a time.
const maxIdlePerKey = 2

// NewDirect returns a transport that sends plain GETs itself, on
// connections dialed with std's DialContext and TLS settings and closed
// after std's IdleConnTimeout, with buffers of std's ReadBufferSize and
// WriteBufferSize (4 KB when zero); every other request goes through std.
// Its CloseIdleConnections closes std's too.
func NewDirect(std *http.Transport) http.RoundTripper { return newDirect(std) }

func newDirect(std *http.Transport) *direct {
	d := &direct{std: std, idle: map[string][]*dconn{}}
	d.readers.New = func() any { return bufio.NewReaderSize(nil, bufSize(std.ReadBufferSize)) }
	d.writers.New = func() any { return bufio.NewWriterSize(nil, bufSize(std.WriteBufferSize)) }
	if std.TLSClientConfig != nil {
		d.tls = std.TLSClientConfig.Clone()
	} else {
		d.tls = &tls.Config{}
	}
	d.tls.NextProtos = []string{"http/1.1"}
	return d
}

// RoundTrip implements http.RoundTripper.
func (d *direct) RoundTrip(req *http.Request) (*http.Response, error) {
	key, addr, ok := d.route(req)
	if !ok {
		return d.std.RoundTrip(req)
	}
	ctx := req.Context()
	for retry := 0; ; retry++ {
		pc, reused, err := d.conn(ctx, key, addr, req.URL.Hostname())
		if err != nil {
			return nil, err
		}
		resp, err := pc.roundTrip(req)
		if err == nil {
			return resp, nil
		}
		// A kept-alive connection the server had closed fails at once;
		// a GET is safe to send again, once, on a new connection.
		if !reused || retry > 0 || ctx.Err() != nil || !closedByPeer(err) {
			return nil, err
		}
	}
}

// route returns the pool key and dial address of a request direct sends,
// or false for one it leaves to std.
func (d *direct) route(req *http.Request) (key, addr string, ok bool) {
	if req.Method != http.MethodGet || (req.Body != nil && req.Body != http.NoBody) {
		return "", "", false
	}
	port := req.URL.Port()
	switch req.URL.Scheme {
	case "http":
		if port == "" {
			port = "80"
		}
	case "https":
		if d.std.Protocols != nil && d.std.Protocols.HTTP2() {
			return "", "", false
		}
		if port == "" {
			port = "443"
		}
	default:
		return "", "", false
	}
	if d.std.Proxy != nil {
		if u, err := d.std.Proxy(req); err != nil || u != nil {
			return "", "", false
		}
	}
	addr = net.JoinHostPort(req.URL.Hostname(), port)
	return req.URL.Scheme + "://" + addr, addr, true
}

// conn returns an idle connection for key, or dials one.
func (d *direct) conn(ctx context.Context, key, addr, host string) (*dconn, bool, error) {
	d.mu.Lock()
	if list := d.idle[key]; len(list) > 0 {
		pc := list[len(list)-1]
		list[len(list)-1] = nil
		d.idle[key] = list[:len(list)-1]
		if len(list) == 1 {
			delete(d.idle, key)
		}
		d.mu.Unlock()
		pc.idle.Stop()
		pc.br = d.reader(pc.c)
		return pc, true, nil
	}
	d.mu.Unlock()
	c, err := d.std.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, false, err
	}
	if key[:5] == "https" {
		cfg := d.tls
		if cfg.ServerName == "" {
			cfg = cfg.Clone()
			cfg.ServerName = host
		}
		tc := tls.Client(c, cfg)
		hctx, cancel := context.WithTimeout(ctx, d.std.TLSHandshakeTimeout)
		err = tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			c.Close()
			return nil, false, err
		}
		c = tc
	}
	pc := &dconn{t: d, key: key, c: c, br: d.reader(c)}
	pc.idle = time.AfterFunc(time.Hour, pc.expire)
	pc.idle.Stop()
	return pc, false, nil
}

// bufSize is a buffer size of http.Transport: 4 KB when zero.
func bufSize(n int) int {
	if n <= 0 {
		return 4 << 10
	}
	return n
}

// reader returns a pooled read buffer on c.
func (d *direct) reader(c net.Conn) *bufio.Reader {
	br := d.readers.Get().(*bufio.Reader)
	br.Reset(c)
	return br
}

// put keeps pc for the next request to its target, without its read
// buffer, which holds nothing between responses.
func (d *direct) put(pc *dconn) {
	leftover := pc.br.Buffered() > 0
	pc.br.Reset(nil)
	d.readers.Put(pc.br)
	pc.br = nil
	if leftover {
		pc.c.Close() // bytes after a whole response: not a connection to reuse
		return
	}
	d.mu.Lock()
	if len(d.idle[pc.key]) >= maxIdlePerKey {
		d.mu.Unlock()
		pc.c.Close()
		return
	}
	d.idle[pc.key] = append(d.idle[pc.key], pc)
	d.mu.Unlock()
	pc.idle.Reset(d.std.IdleConnTimeout)
}

// expire closes pc if it is still idle.
func (pc *dconn) expire() {
	d := pc.t
	d.mu.Lock()
	list := d.idle[pc.key]
	for i, x := range list {
		if x == pc {
			d.idle[pc.key] = append(list[:i], list[i+1:]...)
			if len(d.idle[pc.key]) == 0 {
				delete(d.idle, pc.key)
			}
			d.mu.Unlock()
			pc.c.Close()
			return
		}
	}
	d.mu.Unlock()
}

// CloseIdleConnections closes the idle connections of d and of std.
func (d *direct) CloseIdleConnections() {
	d.mu.Lock()
	idle := d.idle
	d.idle = map[string][]*dconn{}
	d.mu.Unlock()
	for _, list := range idle {
		for _, pc := range list {
			pc.idle.Stop()
			pc.c.Close()
		}
	}
	d.std.CloseIdleConnections()
}

// aLongTimeAgo is a deadline in the past: it makes blocked reads and
// writes return at once.
var aLongTimeAgo = time.Unix(1, 0)

// roundTrip sends req on pc and reads the response head; the body reads
// from pc, which goes back to the pool when the body was read to its end
// and closed. The request's context bounds all of it.
func (pc *dconn) roundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	// The context alone interrupts the connection, so that an
	// interrupted read or write always finds ctx.Err() set and reports it.
	stop := context.AfterFunc(ctx, func() { pc.c.SetDeadline(aLongTimeAgo) })
	bw := pc.t.writers.Get().(*bufio.Writer)
	bw.Reset(pc.c)
	err := writeGET(bw, req)
	if err == nil {
		err = bw.Flush()
	}
	bw.Reset(nil)
	pc.t.writers.Put(bw)
	var resp *http.Response
	for err == nil {
		resp, err = http.ReadResponse(pc.br, req)
		// Informational answers (103 Early Hints, say) come before the
		// response, as net/http's Transport skips them; 101 is final.
		if err != nil || resp.StatusCode < 100 || resp.StatusCode > 199 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
	}
	if err != nil {
		stop()
		pc.c.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	resp.Body = &dbody{pc: pc, rc: resp.Body, ctx: ctx, stop: stop, keep: !resp.Close && !req.Close}
	return resp, nil
}

// dbody is the body of a response of direct.
type dbody struct {
	pc   *dconn
	rc   io.ReadCloser
	ctx  context.Context
	stop func() bool
	keep bool // the connection may carry another request
	eof  bool
	done bool
}

func (b *dbody) Read(p []byte) (int, error) {
	if b.done {
		return 0, errors.New("http: read on closed response body")
	}
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.eof = true
	} else if err != nil && b.ctx.Err() != nil {
		err = b.ctx.Err()
	}
	return n, err
}

// Close gives the connection back if the body was read to its end, and
// closes it otherwise: draining what is left could take as long as the
// target likes.
func (b *dbody) Close() error {
	if b.done {
		return nil
	}
	b.done = true
	live := b.stop() // false: the context ended, the deadline is spoilt
	if !b.eof || !b.keep || !live {
		b.pc.c.Close()
		b.rc.Close()
		return nil
	}
	b.rc.Close()
	b.pc.t.put(b.pc)
	return nil
}

// closedByPeer reports whether err says the server closed the connection
// before answering, which happens to a kept-alive connection it had timed
// out.
func closedByPeer(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// SmallGETs tunes std for a component that sends small GETs and reads
// their bodies in chunks larger than 1 KB (a Scraper, whose request is a
// few hundred bytes and whose body goes to gzip's buffer or a
// bytes.Buffer, which bypass the transport's): buffers of 1 KB each way,
// not 4, and plain GETs through NewDirect. It is an Options.Transport.
func SmallGETs(std *http.Transport) http.RoundTripper {
	std.WriteBufferSize, std.ReadBufferSize = 1<<10, 1<<10
	return NewDirect(std)
}
