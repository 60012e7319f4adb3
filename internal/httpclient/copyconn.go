package httpclient

import (
	"context"
	"io"
	"net"
	"sync"
)

// dialCopying wraps dial so that its connections copy request bodies
// through pooled buffers (copyConn).
func dialCopying(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return copyConn{c}, nil
	}
}

// copyConn is a dialed connection whose ReadFrom copies through a buffer
// of a shared pool.
//
// net/http writes a request body of known length as an io.LimitedReader,
// which a TCP connection's own ReadFrom can neither splice nor sendfile:
// it falls back to io.Copy, which makes a new buffer of up to 32 KiB for
// every request. At the rates of a remote-write sink that was a fifth of
// all the garbage of an agent scraping 1000 targets (BENCHMARKS.md,
// 2026-12-06 evening). Bodies here are in memory, so nothing is lost by
// not splicing.
type copyConn struct{ net.Conn }

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// ReadFrom copies r to the connection.
func (c copyConn) ReadFrom(r io.Reader) (int64, error) {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	// The struct hides c.Conn's own ReadFrom, which would allocate.
	return io.CopyBuffer(struct{ io.Writer }{c.Conn}, r, *bp)
}
