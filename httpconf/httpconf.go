// Package httpconf holds the HTTP client settings of the Ferry components
// that make requests (sink/loki, sink/remotewrite, sink/otlp, scrape): TLS
// and client certificates, basic auth, an Authorization header such as a
// bearer token, a proxy, redirects and HTTP/2.
//
// The zero Config is the default: no authentication, the system's CAs,
// redirects followed, HTTP/2 over TLS, no proxy. Files named in a Config
// are read as Prometheus reads them: credentials at every request (a
// rotated token file is picked up at once), TLS files again whenever they
// change. Validate reads every file once, so a configuration that cannot
// work fails when the pipeline is built, not at the first request.
//
// The package depends on the standard library only. A Prometheus
// http_client_config (config.HTTPClientConfig of prometheus/common, as in
// Prometheus, Promtail and Alloy configurations) converts to a Config with
// package httpconf/promconfig, which also carries OAuth2 and http_headers;
// a program pays for Prometheus's client code only when it imports that
// package.
package httpconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
)

// Secret is a string that does not print: fmt, slog and encoders that use
// MarshalText show "<secret>". Untyped string constants convert to it.
type Secret string

const redacted = "<secret>"

// String returns "<secret>".
func (Secret) String() string { return redacted }

// GoString returns "<secret>", for %#v.
func (Secret) GoString() string { return `"` + redacted + `"` }

// MarshalText returns "<secret>", so that a Config encoded as JSON does not
// show its secrets.
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// Config is the HTTP client configuration of a component. Its zero value is
// the default; at most one of BasicAuth and Authorization may be set.
type Config struct {
	// TLS configures https: the CAs that verify the server, a client
	// certificate, the server name.
	TLS TLS
	// BasicAuth, when set, sends HTTP basic authentication.
	BasicAuth *BasicAuth
	// Authorization, when set, sends an Authorization header such as
	// "Bearer <token>".
	Authorization *Authorization

	// ProxyURL is the proxy for every request (http, https or socks5),
	// except to the hosts NoProxy names. Its user and password, if any,
	// are sent to the proxy.
	ProxyURL *url.URL
	// NoProxy lists hosts, domains (".example.com"), IP addresses and
	// CIDR ranges, comma-separated, not to send through ProxyURL.
	NoProxy string
	// ProxyFromEnvironment uses HTTP_PROXY, HTTPS_PROXY and NO_PROXY
	// instead of ProxyURL.
	ProxyFromEnvironment bool
	// ProxyConnectHeader is sent to the proxy in CONNECT requests (for
	// https through a proxy), such as Proxy-Authorization.
	ProxyConnectHeader map[string]Secret

	// DisableRedirects returns a 3xx response as it is instead of
	// following it. A followed redirect to another host carries neither
	// credentials nor sensitive headers (Authorization, Cookie and the
	// others net/http's client drops).
	DisableRedirects bool
	// DisableHTTP2 speaks HTTP/1.1 only. By default HTTP/2 is offered
	// over TLS.
	DisableHTTP2 bool

	// Wrap, when set, wraps the transport the client sends through, with
	// TLS, proxy and connection pooling applied, beneath the
	// authentication of BasicAuth and Authorization: for what Config
	// lacks, such as OAuth2 or request signing. Sensitive headers it adds
	// are removed from redirects to another host.
	Wrap func(http.RoundTripper) http.RoundTripper
}

// TLS configures the TLS side of a client. Each of CA, Cert and Key is
// given inline or as a file, not both.
type TLS struct {
	// CA is PEM text of the certificates that verify the server; CAFile
	// names a file of them. Neither: the system's roots.
	CA     string
	CAFile string
	// Cert and Key are the PEM client certificate and its key, inline or
	// in files; both or neither.
	Cert     string
	CertFile string
	Key      Secret
	KeyFile  string
	// ServerName is the name to verify the server's certificate against,
	// instead of the URL's host.
	ServerName string
	// InsecureSkipVerify accepts any server certificate.
	InsecureSkipVerify bool
	// MinVersion and MaxVersion bound the TLS version (tls.VersionTLS12,
	// tls.VersionTLS13); zero is crypto/tls's default.
	MinVersion, MaxVersion uint16
}

// BasicAuth is HTTP basic authentication. Each of the user name and the
// password is given inline or as a file (read at every request, surrounding
// white space trimmed), not both.
type BasicAuth struct {
	Username     string
	UsernameFile string
	Password     Secret
	PasswordFile string
}

// Authorization sends "Authorization: <Type> <credentials>", the
// credentials inline or from a file (read at every request, surrounding
// white space trimmed), not both.
type Authorization struct {
	// Type is the scheme, "Bearer" when empty. "Basic" is refused: use
	// BasicAuth.
	Type            string
	Credentials     Secret
	CredentialsFile string
}

// AuthType returns a's Type, or "Bearer" when it is empty.
func (a *Authorization) AuthType() string {
	if t := strings.TrimSpace(a.Type); t != "" {
		return t
	}
	return "Bearer"
}

// Validate checks c as a client built from it would use it: at most one
// authentication, each value inline or in a file, every file readable, the
// CA and the client certificate and key parseable, the proxy settings
// consistent. Its errors name fields and files, never secrets.
func (c *Config) Validate() error {
	var errs []error
	if c.BasicAuth != nil && c.Authorization != nil {
		errs = append(errs, errors.New("at most one of BasicAuth and Authorization may be set"))
	}
	if a := c.BasicAuth; a != nil {
		errs = append(errs, oneOf("BasicAuth Username", a.Username != "", a.UsernameFile),
			oneOf("BasicAuth Password", a.Password != "", a.PasswordFile))
	}
	if a := c.Authorization; a != nil {
		if strings.EqualFold(a.AuthType(), "basic") {
			errs = append(errs, errors.New(`Authorization Type "Basic" is not allowed: use BasicAuth`))
		}
		if strings.ContainsAny(a.Type, "\r\n") {
			errs = append(errs, errors.New("Authorization Type has a line break"))
		}
		errs = append(errs, oneOf("Authorization Credentials", a.Credentials != "", a.CredentialsFile))
	}
	if _, err := c.TLS.Load(); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, c.validateProxy())
	return errors.Join(errs...)
}

func (c *Config) validateProxy() error {
	if u := c.ProxyURL; u != nil {
		switch u.Scheme {
		case "http", "https", "socks5", "socks5h":
		default:
			return fmt.Errorf("ProxyURL %s: scheme must be http, https, socks5 or socks5h", u.Redacted())
		}
		if u.Host == "" {
			return fmt.Errorf("ProxyURL %s has no host", u.Redacted())
		}
		if c.ProxyFromEnvironment {
			return errors.New("ProxyURL and ProxyFromEnvironment are both set")
		}
	}
	if c.NoProxy != "" && c.ProxyURL == nil {
		return errors.New("NoProxy needs ProxyURL")
	}
	if len(c.ProxyConnectHeader) > 0 && c.ProxyURL == nil && !c.ProxyFromEnvironment {
		return errors.New("ProxyConnectHeader needs ProxyURL or ProxyFromEnvironment")
	}
	return nil
}

// oneOf checks that a value is given at most once, and that its file, if
// that is how it is given, can be read.
func oneOf(what string, inline bool, file string) error {
	if file == "" {
		return nil
	}
	if inline {
		return fmt.Errorf("%s is given both inline and as a file", what)
	}
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("%s file: %w", what, err)
	}
	f.Close()
	return nil
}

// Files returns the files t names (CA, certificate, key), which a client
// reloads when they change.
func (t *TLS) Files() []string {
	var files []string
	for _, f := range []string{t.CAFile, t.CertFile, t.KeyFile} {
		if f != "" {
			files = append(files, f)
		}
	}
	return files
}

// Load reads the files t names and returns the *tls.Config of a client:
// RootCAs from CA or CAFile, the client certificate, ServerName,
// InsecureSkipVerify and the versions. Its errors name the files, never
// their contents.
func (t *TLS) Load() (*tls.Config, error) {
	if t.CA != "" && t.CAFile != "" {
		return nil, errors.New("TLS: CA is given both inline and as a file")
	}
	if t.Cert != "" && t.CertFile != "" {
		return nil, errors.New("TLS: Cert is given both inline and as a file")
	}
	if t.Key != "" && t.KeyFile != "" {
		return nil, errors.New("TLS: Key is given both inline and as a file")
	}
	hasCert, hasKey := t.Cert != "" || t.CertFile != "", t.Key != "" || t.KeyFile != ""
	if hasCert != hasKey {
		return nil, errors.New("TLS: a client certificate needs its key, and a key its certificate")
	}
	if t.MinVersion != 0 && t.MaxVersion != 0 && t.MaxVersion < t.MinVersion {
		return nil, errors.New("TLS: MaxVersion is below MinVersion")
	}
	cfg := &tls.Config{
		ServerName:         t.ServerName,
		InsecureSkipVerify: t.InsecureSkipVerify,
		MinVersion:         t.MinVersion,
		MaxVersion:         t.MaxVersion,
	}
	if t.CA != "" || t.CAFile != "" {
		pem, where, err := read(t.CA, t.CAFile, "TLS CA")
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("TLS: no PEM certificate in %s", where)
		}
		cfg.RootCAs = pool
	}
	if hasCert {
		cert, where, err := read(t.Cert, t.CertFile, "TLS Cert")
		if err != nil {
			return nil, err
		}
		key, kwhere, err := read(string(t.Key), t.KeyFile, "TLS Key")
		if err != nil {
			return nil, err
		}
		pair, err := tls.X509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("TLS: client certificate %s and key %s: %w", where, kwhere, err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// read returns an inline value or a file's contents, and how to name it in
// an error.
func read(inline, file, what string) ([]byte, string, error) {
	if file == "" {
		return []byte(inline), "(inline " + what + ")", nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, "", fmt.Errorf("%s file: %w", what, err)
	}
	return b, file, nil
}
