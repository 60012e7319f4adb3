// Package httpclient builds the HTTP clients of Ferry's components from a
// Prometheus config.HTTPClientConfig, and checks such a configuration, in
// one place.
package httpclient

import (
	"errors"
	"fmt"
	"net/http"
	"os"

	"github.com/prometheus/common/config"
)

// Config returns *cfg, or config.DefaultHTTPClientConfig when cfg is nil.
func Config(cfg *config.HTTPClientConfig) config.HTTPClientConfig {
	if cfg == nil {
		return config.DefaultHTTPClientConfig
	}
	return *cfg
}

// Validate checks cfg (nil is the default configuration) as a client built
// from it would use it: config's own rules, the TLS settings (reading the
// CA, certificate and key), and that every file it names can be read
// (bearer token, credentials, username, password, OAuth2 client secret).
// Secret references (*_ref) are refused: there is no secret manager. The
// errors name files, never secrets.
func Validate(cfg *config.HTTPClientConfig) error {
	c := Config(cfg)
	if err := c.Validate(); err != nil {
		return err
	}
	var errs []error
	if _, err := config.NewTLSConfig(&c.TLSConfig); err != nil {
		errs = append(errs, fmt.Errorf("tls_config: %w", err))
	}
	readable := func(what, path string) {
		if path == "" {
			return
		}
		f, err := os.Open(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", what, err))
			return
		}
		f.Close()
	}
	refused := func(what, ref string) {
		if ref != "" {
			errs = append(errs, fmt.Errorf("%s: secret references are not supported", what))
		}
	}
	readable("bearer_token_file", c.BearerTokenFile)
	if a := c.Authorization; a != nil {
		readable("authorization credentials_file", a.CredentialsFile)
		refused("authorization credentials_ref", a.CredentialsRef)
	}
	if a := c.BasicAuth; a != nil {
		readable("basic_auth username_file", a.UsernameFile)
		readable("basic_auth password_file", a.PasswordFile)
		refused("basic_auth username_ref", a.UsernameRef)
		refused("basic_auth password_ref", a.PasswordRef)
	}
	if o := c.OAuth2; o != nil {
		readable("oauth2 client_secret_file", o.ClientSecretFile)
		readable("oauth2 client_certificate_key_file", o.ClientCertificateKeyFile)
		refused("oauth2 client_secret_ref", o.ClientSecretRef)
		refused("oauth2 client_certificate_key_ref", o.ClientCertificateKeyRef)
	}
	return errors.Join(errs...)
}

// New validates cfg (nil is the default configuration) and builds a client
// from it with config.NewClientFromConfig; name labels its connections.
func New(cfg *config.HTTPClientConfig, name string, opts ...config.HTTPClientOption) (*http.Client, error) {
	if err := Validate(cfg); err != nil {
		return nil, err
	}
	return config.NewClientFromConfig(Config(cfg), name, opts...)
}
