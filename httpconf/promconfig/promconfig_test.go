package promconfig_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/common/config"
	"go.yaml.in/yaml/v2"

	"github.com/ferrydev/ferry/httpconf"
	"github.com/ferrydev/ferry/httpconf/promconfig"
	"github.com/ferrydev/ferry/internal/authtest"
	"github.com/ferrydev/ferry/internal/httpclient"
)

// A client built from a converted configuration sends what Prometheus's
// client sends.
func TestAsPrometheus(t *testing.T) {
	authtest.AsPrometheus(t, func(c httpconf.Config) (*http.Client, error) {
		return httpclient.New(c, httpclient.Options{})
	})
}

// Secret references need a secret manager, which Ferry has not; they fail
// at once, and Convert leaves the caller's configuration as it was.
func TestConvert(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  config.HTTPClientConfig
		want string
	}{
		{"password ref", config.HTTPClientConfig{BasicAuth: &config.BasicAuth{Username: "u", PasswordRef: "vault/x"}}, "password_ref"},
		{"ca ref", config.HTTPClientConfig{TLSConfig: config.TLSConfig{CARef: "x"}}, "ca_ref"},
		{"credentials ref", config.HTTPClientConfig{Authorization: &config.Authorization{CredentialsRef: "x"}}, "credentials_ref"},
		{"invalid", config.HTTPClientConfig{BearerToken: "a", BearerTokenFile: "b"}, "at most one"},
	} {
		if _, err := promconfig.Convert(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one mentioning %q", c.name, err, c.want)
		}
	}
	a := &config.Authorization{Credentials: "tok"}
	got, err := promconfig.Convert(config.HTTPClientConfig{Authorization: a})
	if err != nil {
		t.Fatal(err)
	}
	if a.Type != "" || got.Authorization.AuthType() != "Bearer" || got.Authorization.Credentials != "tok" {
		t.Errorf("caller's type %q; converted %+v", a.Type, *got.Authorization)
	}
}

// A Promtail client block's http_client_config, read from YAML, as Ferry
// takes it.
func ExampleConvert() {
	var cfg config.HTTPClientConfig
	err := yaml.UnmarshalStrict([]byte(`
basic_auth:
  username: promtail
  password_file: /etc/promtail/password
tls_config:
  ca_file: /etc/promtail/ca.pem
follow_redirects: false
`), &cfg)
	if err != nil {
		panic(err)
	}
	c, err := promconfig.Convert(cfg)
	fmt.Println(err)
	fmt.Println(c.BasicAuth.Username, c.BasicAuth.PasswordFile, c.TLS.CAFile, c.DisableRedirects, c.DisableHTTP2)
	// The converted configuration goes into a sink's HTTPClient field,
	// as in &loki.Sink{URL: ..., HTTPClient: c}.
	// Output:
	// <nil>
	// promtail /etc/promtail/password /etc/promtail/ca.pem true false
}
