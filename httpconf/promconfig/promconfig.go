// Package promconfig converts a Prometheus http_client_config
// (config.HTTPClientConfig of github.com/prometheus/common, as Prometheus,
// Promtail and Alloy configurations write it) to an httpconf.Config, for
// programs that migrate such configurations or read them from YAML.
//
// It is a package of its own because prometheus/common/config brings some
// 5 MB of code into a binary (go-conntrack, x/net/trace and, through it,
// html/template, x/oauth2, golang-jwt): a program that sets an
// httpconf.Config itself does not link any of it.
package promconfig

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/ferrydev/ferry/httpconf"
	"github.com/prometheus/common/config"
)

// Convert returns the httpconf.Config whose client sends what
// config.NewClientFromConfig's client for c sends: the same TLS settings and
// files, basic auth, Authorization (bearer_token and bearer_token_file
// become it, as in Prometheus), proxy settings, redirects and HTTP/2. OAuth2
// and http_headers, which httpconf.Config has no fields for, go through its
// Wrap with Prometheus's own round trippers.
//
// c is checked with its Validate first. Secret references (*_ref) are
// refused: there is no secret manager. Note that a config.HTTPClientConfig
// literal has FollowRedirects and EnableHTTP2 false, and so does the
// result; config.DefaultHTTPClientConfig (what YAML starts from) has both
// true.
func Convert(c config.HTTPClientConfig) (httpconf.Config, error) {
	// Validate moves bearer_token into Authorization and defaults its
	// type, on a copy: the pointers of c stay the caller's.
	if c.Authorization != nil {
		a := *c.Authorization
		c.Authorization = &a
	}
	if err := c.Validate(); err != nil {
		return httpconf.Config{}, err
	}
	var errs []error
	ref := func(what, r string) {
		if r != "" {
			errs = append(errs, fmt.Errorf("%s: secret references are not supported", what))
		}
	}
	t := c.TLSConfig
	ref("tls_config ca_ref", t.CARef)
	ref("tls_config cert_ref", t.CertRef)
	ref("tls_config key_ref", t.KeyRef)
	out := httpconf.Config{
		TLS: httpconf.TLS{
			CA: t.CA, CAFile: t.CAFile,
			Cert: t.Cert, CertFile: t.CertFile,
			Key: httpconf.Secret(t.Key), KeyFile: t.KeyFile,
			ServerName:         t.ServerName,
			InsecureSkipVerify: t.InsecureSkipVerify,
			MinVersion:         uint16(t.MinVersion),
			MaxVersion:         uint16(t.MaxVersion),
		},
		NoProxy:              c.NoProxy,
		ProxyFromEnvironment: c.ProxyFromEnvironment,
		DisableRedirects:     !c.FollowRedirects,
		DisableHTTP2:         !c.EnableHTTP2,
	}
	if b := c.BasicAuth; b != nil {
		ref("basic_auth username_ref", b.UsernameRef)
		ref("basic_auth password_ref", b.PasswordRef)
		out.BasicAuth = &httpconf.BasicAuth{
			Username: b.Username, UsernameFile: b.UsernameFile,
			Password: httpconf.Secret(b.Password), PasswordFile: b.PasswordFile,
		}
	}
	if a := c.Authorization; a != nil {
		ref("authorization credentials_ref", a.CredentialsRef)
		out.Authorization = &httpconf.Authorization{
			Type:        a.Type,
			Credentials: httpconf.Secret(a.Credentials), CredentialsFile: a.CredentialsFile,
		}
	}
	if u := c.ProxyURL.URL; u != nil && u.String() != "" {
		out.ProxyURL = u
	}
	if len(c.ProxyConnectHeader) > 0 {
		out.ProxyConnectHeader = map[string]httpconf.Secret{}
		for k, vs := range c.ProxyConnectHeader {
			s := make([]string, len(vs))
			for i, v := range vs {
				s[i] = string(v)
			}
			out.ProxyConnectHeader[k] = httpconf.Secret(strings.Join(s, ", "))
		}
	}
	var wraps []func(http.RoundTripper) http.RoundTripper
	if o := c.OAuth2; o != nil {
		ref("oauth2 client_secret_ref", o.ClientSecretRef)
		ref("oauth2 client_certificate_key_ref", o.ClientCertificateKeyRef)
		var cred config.SecretReader
		switch {
		case o.GrantType == "urn:ietf:params:oauth:grant-type:jwt-bearer":
			cred = secret(o.ClientCertificateKey, o.ClientCertificateKeyFile)
		default:
			cred = secret(o.ClientSecret, o.ClientSecretFile)
		}
		wraps = append(wraps, func(rt http.RoundTripper) http.RoundTripper {
			return config.NewOAuth2RoundTripper(cred, o, rt)
		})
	}
	if h := c.HTTPHeaders; h != nil && len(h.Headers) > 0 {
		wraps = append(wraps, func(rt http.RoundTripper) http.RoundTripper {
			return config.NewHeadersRoundTripper(h, rt)
		})
	}
	if len(wraps) > 0 {
		out.Wrap = func(rt http.RoundTripper) http.RoundTripper {
			for _, w := range wraps {
				rt = w(rt)
			}
			return rt
		}
	}
	if err := errors.Join(errs...); err != nil {
		return httpconf.Config{}, err
	}
	return out, nil
}

func secret(inline config.Secret, file string) config.SecretReader {
	if file != "" {
		return config.NewFileSecret(file)
	}
	return config.NewInlineSecret(string(inline))
}
