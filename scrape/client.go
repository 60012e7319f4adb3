package scrape

import (
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/common/config"
)

// newClient builds the Scraper's HTTP client from a validated cfg. It
// behaves as config.NewClientFromConfig's (authentication, OAuth2, TLS
// whose files are read again when they change, proxies, extra headers,
// redirects, HTTP/2; TestClientAsConfig compares the two), but on an
// http.Transport of its own: config's dials through go-conntrack, which
// keeps a trace log of some 9 KB for every connection, and a Scraper holds
// a connection per target. Its buffers are 1 KB, not 4. Plain GETs do not
// reach that Transport either but go through direct (direct.go), which
// needs no goroutines of its own for a connection.
func newClient(cfg config.HTTPClientConfig) (*http.Client, error) {
	tlsConfig, err := config.NewTLSConfig(&cfg.TLSConfig)
	if err != nil {
		return nil, err
	}
	var files config.TLSRoundTripperSettings
	tc := cfg.TLSConfig
	if files.CA, err = secret(config.Secret(tc.CA), tc.CAFile, tc.CARef); err != nil {
		return nil, err
	}
	if files.Cert, err = secret(config.Secret(tc.Cert), tc.CertFile, tc.CertRef); err != nil {
		return nil, err
	}
	if files.Key, err = secret(tc.Key, tc.KeyFile, tc.KeyRef); err != nil {
		return nil, err
	}
	newRT := func(tlsConfig *tls.Config) (http.RoundTripper, error) { return roundTripper(cfg, tlsConfig) }
	var rt http.RoundTripper
	if immutable(files.CA) && immutable(files.Cert) && immutable(files.Key) {
		rt, err = newRT(tlsConfig)
	} else {
		rt, err = config.NewTLSRoundTripper(tlsConfig, files, newRT)
	}
	if err != nil {
		return nil, err
	}
	c := &http.Client{Transport: rt}
	if !cfg.FollowRedirects {
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}
	return c, nil
}

// roundTripper is the transport for tlsConfig wrapped in what cfg asks
// for, in config's order.
func roundTripper(cfg config.HTTPClientConfig, tlsConfig *tls.Config) (http.RoundTripper, error) {
	t := &http.Transport{
		Proxy:                 cfg.Proxy(),
		ProxyConnectHeader:    cfg.GetProxyConnectHeader(),
		DialContext:           (&net.Dialer{}).DialContext,
		TLSClientConfig:       tlsConfig,
		TLSHandshakeTimeout:   10 * time.Second,
		MaxIdleConns:          20000,
		MaxIdleConnsPerHost:   1000,
		IdleConnTimeout:       5 * time.Minute, // above any sane scrape interval
		DisableCompression:    true,            // fetch asks for gzip itself
		ExpectContinueTimeout: time.Second,
		// 1 KB each way, not 4: a scrape's request is a few hundred
		// bytes, and fetch reads a body in chunks larger than 1 KB
		// (gzip's own buffer, or bytes.Buffer's), which bypass this one.
		WriteBufferSize: 1 << 10,
		ReadBufferSize:  1 << 10,
	}
	if cfg.EnableHTTP2 {
		t.Protocols = new(http.Protocols)
		t.Protocols.SetHTTP1(true)
		t.Protocols.SetHTTP2(true)
		t.HTTP2 = &http.HTTP2Config{SendPingTimeout: time.Minute}
	}
	var rt http.RoundTripper = newDirect(t)
	if a := cfg.Authorization; a != nil {
		s, err := secret(a.Credentials, a.CredentialsFile, a.CredentialsRef)
		if err != nil {
			return nil, err
		}
		rt = config.NewAuthorizationCredentialsRoundTripper(a.Type, s, rt)
	}
	if cfg.BearerToken != "" || cfg.BearerTokenFile != "" {
		s, _ := secret(cfg.BearerToken, cfg.BearerTokenFile, "")
		rt = config.NewAuthorizationCredentialsRoundTripper("Bearer", s, rt)
	}
	if b := cfg.BasicAuth; b != nil {
		user, err := secret(config.Secret(b.Username), b.UsernameFile, b.UsernameRef)
		if err != nil {
			return nil, err
		}
		pass, err := secret(b.Password, b.PasswordFile, b.PasswordRef)
		if err != nil {
			return nil, err
		}
		rt = config.NewBasicAuthRoundTripper(user, pass, rt)
	}
	if o := cfg.OAuth2; o != nil {
		s, err := secret(o.ClientSecret, o.ClientSecretFile, o.ClientSecretRef)
		if o.GrantType == "urn:ietf:params:oauth:grant-type:jwt-bearer" {
			s, err = secret(o.ClientCertificateKey, o.ClientCertificateKeyFile, o.ClientCertificateKeyRef)
		}
		if err != nil {
			return nil, err
		}
		rt = config.NewOAuth2RoundTripper(s, o, rt)
	}
	if cfg.HTTPHeaders != nil {
		if cfg.FollowRedirects {
			rt = stripOnRedirect{rt}
		}
		rt = config.NewHeadersRoundTripper(cfg.HTTPHeaders, rt)
	}
	return rt, nil
}

// secret reads a secret given inline, in a file (read at each use) or by
// reference, as config does; a Scraper has no secret manager for
// references.
func secret(inline config.Secret, file, ref string) (config.SecretReader, error) {
	switch {
	case inline != "":
		return config.NewInlineSecret(string(inline)), nil
	case file != "":
		return config.NewFileSecret(file), nil
	case ref != "":
		return nil, errors.New("cannot use secret ref without manager")
	}
	return nil, nil
}

func immutable(s config.SecretReader) bool { return s == nil || s.Immutable() }

// stripOnRedirect removes the headers that net/http's client drops on a
// redirect to another host from such a request: the extra headers of
// config.NewHeadersRoundTripper are added below the client, so the client
// cannot drop them itself.
type stripOnRedirect struct{ next http.RoundTripper }

// Headers not to send to another host, as net/http's client has them.
var sensitiveHeaders = []string{"Authorization", "Www-Authenticate", "Cookie", "Cookie2", "Proxy-Authorization", "Proxy-Authenticate"}

func (s stripOnRedirect) RoundTrip(req *http.Request) (*http.Response, error) {
	if leftHost(req) {
		req = req.Clone(req.Context())
		for _, h := range sensitiveHeaders {
			req.Header.Del(h)
		}
	}
	return s.next.RoundTrip(req)
}

// CloseIdleConnections closes the transport's idle connections.
func (s stripOnRedirect) CloseIdleConnections() {
	if c, ok := s.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// leftHost reports whether req is a redirect and some request of its chain
// went to a host that is neither the first request's host nor one of its
// subdomains: once left, credentials stay off for the rest of the chain.
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
