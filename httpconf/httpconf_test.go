package httpconf_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferrydev/ferry/httpconf"
)

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	token := write("token", "s3cret")
	notPEM := write("ca.pem", "s3cret")
	missing := filepath.Join(dir, "missing")
	proxy, _ := url.Parse("http://proxy:3128")
	ftp, _ := url.Parse("ftp://proxy")
	for _, c := range []struct {
		name string
		cfg  httpconf.Config
		want string // "" for valid
	}{
		{"zero", httpconf.Config{}, ""},
		{"token file", httpconf.Config{Authorization: &httpconf.Authorization{CredentialsFile: token}}, ""},
		{"missing token file", httpconf.Config{Authorization: &httpconf.Authorization{CredentialsFile: missing}}, "Credentials file"},
		{"token twice", httpconf.Config{Authorization: &httpconf.Authorization{Credentials: "x", CredentialsFile: token}}, "both inline and as a file"},
		{"basic type", httpconf.Config{Authorization: &httpconf.Authorization{Type: "basic", Credentials: "x"}}, "use BasicAuth"},
		{"two auths", httpconf.Config{BasicAuth: &httpconf.BasicAuth{Username: "u"}, Authorization: &httpconf.Authorization{Credentials: "x"}}, "at most one"},
		{"missing password file", httpconf.Config{BasicAuth: &httpconf.BasicAuth{Username: "u", PasswordFile: missing}}, "Password file"},
		{"missing CA", httpconf.Config{TLS: httpconf.TLS{CAFile: missing}}, "TLS CA file"},
		{"CA not PEM", httpconf.Config{TLS: httpconf.TLS{CAFile: notPEM}}, "no PEM certificate in " + notPEM},
		{"inline CA not PEM", httpconf.Config{TLS: httpconf.TLS{CA: "s3cret"}}, "no PEM certificate in (inline"},
		{"cert without key", httpconf.Config{TLS: httpconf.TLS{CertFile: token}}, "needs its key"},
		{"key not PEM", httpconf.Config{TLS: httpconf.TLS{Cert: "x", Key: "s3cret"}}, "client certificate"},
		{"versions", httpconf.Config{TLS: httpconf.TLS{MinVersion: 0x0304, MaxVersion: 0x0303}}, "MaxVersion"},
		{"proxy", httpconf.Config{ProxyURL: proxy, NoProxy: "localhost"}, ""},
		{"proxy scheme", httpconf.Config{ProxyURL: ftp}, "scheme"},
		{"no proxy without proxy", httpconf.Config{NoProxy: "x"}, "NoProxy needs ProxyURL"},
		{"two proxies", httpconf.Config{ProxyURL: proxy, ProxyFromEnvironment: true}, "both set"},
		{"connect header", httpconf.Config{ProxyConnectHeader: map[string]httpconf.Secret{"Proxy-Authorization": "s3cret"}}, "ProxyConnectHeader needs"},
	} {
		err := c.cfg.Validate()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: error %v, want one mentioning %q", c.name, err, c.want)
		case err != nil && strings.Contains(err.Error(), "s3cret"):
			t.Errorf("%s: error shows the secret: %v", c.name, err)
		}
	}
}

// Secrets do not show when a Config is printed, logged or encoded.
func TestSecretsDoNotPrint(t *testing.T) {
	cfg := httpconf.Config{
		BasicAuth: &httpconf.BasicAuth{Username: "u", Password: "s3cret"},
		TLS:       httpconf.TLS{Key: "s3cret"},
	}
	var logged strings.Builder
	slog.New(slog.NewTextHandler(&logged, nil)).Info("cfg", "cfg", cfg, "basic", cfg.BasicAuth)
	j, err := json.Marshal(cfg.BasicAuth)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{fmt.Sprintf("%v %+v %#v", cfg, *cfg.BasicAuth, *cfg.BasicAuth), logged.String(), string(j)} {
		if strings.Contains(s, "s3cret") {
			t.Errorf("secret shown: %s", s)
		}
		if !strings.Contains(s, "secret>") && !strings.Contains(s, `secret\u003e`) {
			t.Errorf("no <secret> in %s", s)
		}
	}
}

func ExampleConfig_Validate() {
	cfg := httpconf.Config{
		Authorization: &httpconf.Authorization{CredentialsFile: "/nonexistent/token"},
		TLS:           httpconf.TLS{CertFile: "/etc/ssl/client.pem"},
	}
	fmt.Println(cfg.Validate())
	// Output:
	// Authorization Credentials file: open /nonexistent/token: no such file or directory
	// TLS: a client certificate needs its key, and a key its certificate
}
