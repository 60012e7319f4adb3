package dockertest

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Proxy forwards a unix socket to the engine's, so that a test can cut a
// component off the engine (as a daemon restart does) without touching the
// engine itself, which other tests share.
type Proxy struct {
	path, target string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// NewProxy starts a proxy to the local engine socket (DOCKER_HOST if it is
// a unix:// address, else /var/run/docker.sock). t.Cleanup stops it.
func NewProxy(t testing.TB) *Proxy {
	t.Helper()
	target := "/var/run/docker.sock"
	if h, ok := strings.CutPrefix(os.Getenv("DOCKER_HOST"), "unix://"); ok {
		target = h
	}
	// Socket paths are limited to about 100 bytes: t.TempDir() can be longer.
	dir, err := os.MkdirTemp("", "ferry-proxy-")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{path: filepath.Join(dir, "docker.sock"), target: target, conns: map[net.Conn]struct{}{}}
	if err := p.Restore(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Break()
		p.wg.Wait()
		os.RemoveAll(dir)
	})
	return p
}

// Host is the proxy's address for a Docker client ("unix://...").
func (p *Proxy) Host() string { return "unix://" + p.path }

// Break closes every connection and stops accepting new ones, as an engine
// that went away.
func (p *Proxy) Break() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
	os.Remove(p.path)
}

// Restore accepts connections again.
func (p *Proxy) Restore() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		return nil
	}
	os.Remove(p.path)
	ln, err := net.Listen("unix", p.path)
	if err != nil {
		return fmt.Errorf("dockertest: proxy: %w", err)
	}
	p.ln = ln
	p.wg.Add(1)
	go p.accept(ln)
	return nil
}

func (p *Proxy) accept(ln net.Listener) {
	defer p.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("unix", p.target)
		if err != nil {
			c.Close()
			continue
		}
		if !p.track(ln, c, u) {
			c.Close()
			u.Close()
			return
		}
		p.wg.Add(2)
		go p.pipe(c, u)
		go p.pipe(u, c)
	}
}

func (p *Proxy) track(ln net.Listener, cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != ln {
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *Proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	io.Copy(dst, src)
	dst.Close()
	src.Close()
}
