// Package httpclient builds the HTTP clients of Ferry's components from an
// httpconf.Config, in one place: the transport and its TLS (reloaded when
// its files change), the proxy, HTTP/2, authentication, and what happens on
// redirects. A component tunes the transport through Options.
package httpclient

import (
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/ferrydev/ferry/httpconf"
)

// Options tune a client for its component.
type Options struct {
	// Transport, when set, is called with every *http.Transport built
	// (again when TLS files change): it may change its settings (buffer
	// sizes, idle pool) and returns the RoundTripper to send through,
	// the transport itself or one that uses it.
	Transport func(*http.Transport) http.RoundTripper
}

// New validates cfg and builds a client from it. The transport has
// Prometheus's settings (a large idle pool, idle connections closed after 5
// minutes, no transparent gzip: components ask for it themselves); requests
// carry cfg's credentials, except redirects that left the first request's
// host.
func New(cfg httpconf.Config, opts Options) (*http.Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	base, err := newBase(cfg, opts)
	if err != nil {
		return nil, err
	}
	var rt http.RoundTripper = base
	if cfg.Wrap != nil {
		rt = cfg.Wrap(stripOnRedirect{rt})
	}
	if cfg.BasicAuth != nil || cfg.Authorization != nil {
		rt = &auth{next: rt, basic: cfg.BasicAuth, authz: cfg.Authorization}
	}
	c := &http.Client{Transport: rt}
	if cfg.DisableRedirects {
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}
	return c, nil
}

// newBase returns the transport for cfg's TLS settings, one that builds a
// new transport when the TLS files change if there are any.
func newBase(cfg httpconf.Config, opts Options) (http.RoundTripper, error) {
	build := func() (http.RoundTripper, error) {
		tc, err := cfg.TLS.Load()
		if err != nil {
			return nil, err
		}
		t := transport(cfg, tc)
		if opts.Transport != nil {
			return opts.Transport(t), nil
		}
		return t, nil
	}
	files := cfg.TLS.Files()
	if len(files) == 0 {
		return build()
	}
	r := &reloading{files: files, build: build}
	r.stamp = r.stat()
	var err error
	if r.rt, err = build(); err != nil {
		return nil, err
	}
	return r, nil
}

// transport returns the *http.Transport of cfg with TLS settings tc.
func transport(cfg httpconf.Config, tc *tls.Config) *http.Transport {
	t := &http.Transport{
		Proxy:                 proxyFunc(cfg),
		DialContext:           dialCopying((&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext),
		TLSClientConfig:       tc,
		TLSHandshakeTimeout:   10 * time.Second,
		MaxIdleConns:          20000,
		MaxIdleConnsPerHost:   1000,
		IdleConnTimeout:       5 * time.Minute,
		DisableCompression:    true,
		ExpectContinueTimeout: time.Second,
	}
	if len(cfg.ProxyConnectHeader) > 0 {
		t.ProxyConnectHeader = http.Header{}
		for k, v := range cfg.ProxyConnectHeader {
			t.ProxyConnectHeader.Set(k, string(v))
		}
	}
	if !cfg.DisableHTTP2 {
		t.Protocols = new(http.Protocols)
		t.Protocols.SetHTTP1(true)
		t.Protocols.SetHTTP2(true)
		t.HTTP2 = &http.HTTP2Config{SendPingTimeout: time.Minute}
	}
	return t
}

// proxyFunc returns the Transport.Proxy of cfg: nil without a proxy (the
// environment is not consulted unless ProxyFromEnvironment says so).
func proxyFunc(cfg httpconf.Config) func(*http.Request) (*url.URL, error) {
	switch {
	case cfg.ProxyFromEnvironment:
		return http.ProxyFromEnvironment
	case cfg.ProxyURL == nil:
		return nil
	case cfg.NoProxy == "":
		return http.ProxyURL(cfg.ProxyURL)
	}
	np := parseNoProxy(cfg.NoProxy)
	return func(r *http.Request) (*url.URL, error) {
		if np.direct(r.URL) {
			return nil, nil
		}
		return cfg.ProxyURL, nil
	}
}

// noProxy is a NO_PROXY list, with the meaning net/http gives the
// variable (golang.org/x/net/http/httpproxy): "*" for every host; IP
// addresses and CIDR ranges; "example.com" for that host and its
// subdomains, ".example.com" or "*.example.com" for its subdomains only;
// each name or address may have a port. Requests to localhost and loopback
// addresses never go through the proxy.
type noProxy struct {
	all   bool
	nets  []*net.IPNet
	ips   []hostPort[net.IP]
	names []hostPort[string] // with a leading dot
	exact []bool             // names[i] also matches without its dot
}

type hostPort[T any] struct {
	host T
	port string
}

func parseNoProxy(list string) *noProxy {
	np := &noProxy{}
	for p := range strings.SplitSeq(list, ",") {
		p = strings.ToLower(strings.TrimSpace(p))
		if p == "" {
			continue
		}
		if p == "*" {
			np.all = true
			continue
		}
		if _, n, err := net.ParseCIDR(p); err == nil {
			np.nets = append(np.nets, n)
			continue
		}
		host, port, err := net.SplitHostPort(p)
		if err != nil {
			host, port = p, ""
		}
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
		if ip := net.ParseIP(host); ip != nil {
			np.ips = append(np.ips, hostPort[net.IP]{ip, port})
			continue
		}
		if host == "" {
			continue
		}
		host = strings.TrimPrefix(host, "*")
		exact := host[0] != '.'
		if exact {
			host = "." + host
		}
		np.names = append(np.names, hostPort[string]{host, port})
		np.exact = append(np.exact, exact)
	}
	return np
}

// direct reports whether a request to u bypasses the proxy.
func (np *noProxy) direct(u *url.URL) bool {
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443", "socks5": "1080"}[u.Scheme]
	}
	if np.all || host == "localhost" {
		return true
	}
	if ip := net.ParseIP(host); ip != nil {
		if ip.IsLoopback() {
			return true
		}
		for _, n := range np.nets {
			if n.Contains(ip) {
				return true
			}
		}
		for _, m := range np.ips {
			if m.host.Equal(ip) && (m.port == "" || m.port == port) {
				return true
			}
		}
		return false
	}
	for i, m := range np.names {
		if (strings.HasSuffix(host, m.host) || np.exact[i] && host == m.host[1:]) && (m.port == "" || m.port == port) {
			return true
		}
	}
	return false
}

// reloading sends through a transport built again, with its idle
// connections closed, when one of the TLS files changed (size or
// modification time, checked at every request: a stat per file).
type reloading struct {
	files []string
	build func() (http.RoundTripper, error)

	mu    sync.Mutex
	rt    http.RoundTripper
	stamp string
}

func (r *reloading) stat() string {
	var b strings.Builder
	for _, f := range r.files {
		if fi, err := os.Stat(f); err == nil {
			fmt.Fprintf(&b, "%d/%d;", fi.Size(), fi.ModTime().UnixNano())
		} else {
			b.WriteString("-;")
		}
	}
	return b.String()
}

// RoundTrip implements http.RoundTripper. A change whose files do not load
// (a certificate written before its key, say) fails the request, and is
// tried again at the next.
func (r *reloading) RoundTrip(req *http.Request) (*http.Response, error) {
	stamp := r.stat()
	r.mu.Lock()
	rt := r.rt
	if stamp != r.stamp {
		next, err := r.build()
		if err != nil {
			r.mu.Unlock()
			return nil, fmt.Errorf("TLS files changed: %w", err)
		}
		closeIdle(rt)
		r.rt, r.stamp, rt = next, stamp, next
	}
	r.mu.Unlock()
	return rt.RoundTrip(req)
}

// CloseIdleConnections closes the idle connections of the current transport.
func (r *reloading) CloseIdleConnections() {
	r.mu.Lock()
	rt := r.rt
	r.mu.Unlock()
	closeIdle(rt)
}

func closeIdle(rt http.RoundTripper) {
	if c, ok := rt.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// auth adds the Authorization header of BasicAuth or Authorization to
// requests that have none, unless the request is a redirect that left the
// first request's host.
type auth struct {
	next  http.RoundTripper
	basic *httpconf.BasicAuth
	authz *httpconf.Authorization
}

func (a *auth) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Header.Get("Authorization") != "" || leftHost(req) {
		return a.next.RoundTrip(req)
	}
	var v string
	if b := a.basic; b != nil {
		user, err := secret(httpconf.Secret(b.Username), b.UsernameFile)
		if err != nil {
			return nil, err
		}
		pass, err := secret(b.Password, b.PasswordFile)
		if err != nil {
			return nil, err
		}
		v = "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	} else {
		cred, err := secret(a.authz.Credentials, a.authz.CredentialsFile)
		if err != nil {
			return nil, err
		}
		v = a.authz.AuthType() + " " + cred
	}
	req = clone(req)
	req.Header.Set("Authorization", v)
	return a.next.RoundTrip(req)
}

// CloseIdleConnections closes the idle connections of the transport.
func (a *auth) CloseIdleConnections() { closeIdle(a.next) }

// secret returns an inline secret, or the contents of its file read now,
// trimmed of surrounding white space.
func secret(inline httpconf.Secret, file string) (string, error) {
	if file == "" {
		return string(inline), nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("reading credentials: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

func clone(req *http.Request) *http.Request {
	r := new(http.Request)
	*r = *req
	r.Header = req.Header.Clone()
	if r.Header == nil {
		r.Header = http.Header{}
	}
	return r
}

// stripOnRedirect removes, from a redirect that left the first request's
// host, the headers that net/http's client drops from such a redirect: the
// client cannot drop those that a RoundTripper beneath it (Config.Wrap)
// adds.
type stripOnRedirect struct{ next http.RoundTripper }

// sensitiveHeaders are the headers net/http's client does not send to
// another host after a redirect.
var sensitiveHeaders = []string{"Authorization", "Www-Authenticate", "Cookie", "Cookie2", "Proxy-Authorization", "Proxy-Authenticate"}

func (s stripOnRedirect) RoundTrip(req *http.Request) (*http.Response, error) {
	if leftHost(req) {
		req = clone(req)
		for _, h := range sensitiveHeaders {
			req.Header.Del(h)
		}
	}
	return s.next.RoundTrip(req)
}

// CloseIdleConnections closes the idle connections of the transport.
func (s stripOnRedirect) CloseIdleConnections() { closeIdle(s.next) }

// leftHost reports whether req is a redirect and some request of its chain
// went to a host that is neither the first request's host nor one of its
// subdomains: once left, credentials stay off for the rest of the chain,
// as net/http's client keeps them.
func leftHost(req *http.Request) bool {
	first := req
	for first.Response != nil && first.Response.Request != nil {
		first = first.Response.Request
	}
	if first == req {
		return false
	}
	origin := strings.ToLower(first.URL.Hostname())
	for r := req; r != first; r = r.Response.Request {
		if !sameSite(strings.ToLower(r.URL.Hostname()), origin) {
			return true
		}
	}
	return false
}

// sameSite reports whether host is origin or a subdomain of it; IP
// addresses (IPv6 ones with a colon, zones with a percent sign) only match
// themselves.
func sameSite(host, origin string) bool {
	if host == origin {
		return true
	}
	if origin == "" || strings.ContainsAny(host, ":%") {
		return false
	}
	return strings.HasSuffix(host, "."+origin)
}
