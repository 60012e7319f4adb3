package httpclient

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/common/config"
)

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("s3cret"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")
	for _, c := range []struct {
		name string
		cfg  *config.HTTPClientConfig
		want string // "" for valid
	}{
		{"nil", nil, ""},
		{"token file", &config.HTTPClientConfig{BearerTokenFile: token}, ""},
		{"missing token file", &config.HTTPClientConfig{BearerTokenFile: missing}, "credentials_file"},
		{"missing CA", &config.HTTPClientConfig{TLSConfig: config.TLSConfig{CAFile: missing}}, "tls_config"},
		{"bad CA", &config.HTTPClientConfig{TLSConfig: config.TLSConfig{CAFile: token}}, "tls_config"},
		{"missing password file", &config.HTTPClientConfig{BasicAuth: &config.BasicAuth{Username: "u", PasswordFile: missing}}, "password_file"},
		{"password ref", &config.HTTPClientConfig{BasicAuth: &config.BasicAuth{Username: "u", PasswordRef: "x"}}, "password_ref"},
		{"two auths", &config.HTTPClientConfig{BearerToken: "a", BasicAuth: &config.BasicAuth{Username: "u"}}, "at most one"},
	} {
		err := Validate(c.cfg)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: error %v, want one mentioning %q", c.name, err, c.want)
		case err != nil && strings.Contains(err.Error(), "s3cret"):
			t.Errorf("%s: error shows the secret: %v", c.name, err)
		}
		if _, nerr := New(c.cfg, "test"); (nerr == nil) != (err == nil) {
			t.Errorf("%s: New error %v, Validate error %v", c.name, nerr, err)
		}
	}
}

func ExampleNew() {
	c, err := New(nil, "example")
	fmt.Println(c != nil, err)
	_, err = New(&config.HTTPClientConfig{BearerTokenFile: "/nonexistent/token"}, "example")
	fmt.Println(err)
	// Output:
	// true <nil>
	// authorization credentials_file: open /nonexistent/token: no such file or directory
}
