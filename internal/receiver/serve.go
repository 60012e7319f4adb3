package receiver

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// DefaultShutdownTimeout is how long Serving.Shutdown waits for requests
// in progress when given no timeout.
const DefaultShutdownTimeout = 5 * time.Second

// Serving is an http.Server serving one listener, from Serve to Shutdown.
type Serving struct {
	srv  *http.Server
	addr net.Addr
	done chan struct{} // closed when Serve returned
	err  error         // Serve's error, once done is closed
}

// Serve listens on addr, unless ln is given, and serves h there on a
// goroutine of its own. Errors of the server (failed handshakes, say) go
// to errLog at level Warn when it is not nil.
func Serve(addr string, ln net.Listener, h http.Handler, errLog *slog.Logger) (*Serving, error) {
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", addr); err != nil {
			return nil, err
		}
	}
	s := &Serving{
		srv:  &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second},
		addr: ln.Addr(),
		done: make(chan struct{}),
	}
	if errLog != nil {
		s.srv.ErrorLog = slog.NewLogLogger(errLog.Handler(), slog.LevelWarn)
	}
	go func() {
		s.err = s.srv.Serve(ln)
		close(s.done)
	}()
	return s, nil
}

// Addr returns the address served.
func (s *Serving) Addr() net.Addr { return s.addr }

// Done is closed when serving stopped; Err says why.
func (s *Serving) Done() <-chan struct{} { return s.done }

// Err returns the error serving stopped with (http.ErrServerClosed after
// Shutdown), once Done is closed, and nil before.
func (s *Serving) Err() error {
	select {
	case <-s.done:
		return s.err
	default:
		return nil
	}
}

// Shutdown stops listening, waits for requests in progress up to timeout
// (DefaultShutdownTimeout when zero) or ctx's deadline, then closes the
// connections left, and returns once serving stopped. Its error is
// http.Server.Shutdown's.
func (s *Serving) Shutdown(ctx context.Context, timeout time.Duration) error {
	if timeout <= 0 {
		timeout = DefaultShutdownTimeout
	}
	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := s.srv.Shutdown(sctx)
	if err != nil {
		s.srv.Close()
	}
	<-s.done
	return err
}
