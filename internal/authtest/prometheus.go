package authtest

import (
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/common/config"

	"github.com/ferrydev/ferry/httpconf"
	"github.com/ferrydev/ferry/httpconf/promconfig"
)

// recorder is a server that notes what reaches it: the path and the
// headers a client adds for authentication or by configuration.
type recorder struct {
	name string
	mu   sync.Mutex
	got  []string
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.URL.Path == "/token" { // an OAuth2 token endpoint
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"access_token":"granted","token_type":"Bearer","expires_in":3600}`)
		return
	}
	if to := req.URL.Query().Get("to"); to != "" {
		http.Redirect(w, req, to, http.StatusFound)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, fmt.Sprintf("%s %s %s auth=%q token=%q cookie=%q", r.name, req.Proto, req.URL.Path,
		req.Header.Get("Authorization"), req.Header.Get("X-Token"), req.Header.Get("Cookie")))
}

func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	got := r.got
	r.got = nil
	return got
}

// AsPrometheus checks clients that build makes from what promconfig.Convert
// makes of Prometheus's config.HTTPClientConfig against
// config.NewClientFromConfig's: for each configuration (authentications,
// credential files, http_headers, redirects, OAuth2, TLS, proxies) both
// clients fetch the same URLs (plain, with a redirect to the same host and
// to another one, over TLS) and the servers must see the same requests from
// both, and the clients the same statuses.
func AsPrometheus(t *testing.T, build func(httpconf.Config) (*http.Client, error)) {
	t.Helper()
	dir := t.TempDir()
	write := func(name, text string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	a, b := &recorder{name: "a"}, &recorder{name: "b"}
	srvA, srvB := httptest.NewServer(a), httptest.NewServer(b)
	defer srvA.Close()
	defer srvB.Close()
	tlsRec := &recorder{name: "tls"}
	srvTLS := httptest.NewUnstartedServer(tlsRec)
	srvTLS.Config.ErrorLog = log.New(io.Discard, "", 0) // handshakes fail without the CA
	srvTLS.EnableHTTP2 = true
	srvTLS.StartTLS()
	defer srvTLS.Close()
	caFile := write("ca.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srvTLS.Certificate().Raw})))
	proxied := &recorder{name: "proxy"}
	proxy := httptest.NewServer(proxied)
	defer proxy.Close()
	proxyURL, _ := url.Parse(proxy.URL)

	// Server b under another host name than a's 127.0.0.1.
	other := strings.Replace(srvB.URL, "127.0.0.1", "localhost", 1)
	withHeaders := config.DefaultHTTPClientConfig
	withHeaders.HTTPHeaders = &config.Headers{Headers: map[string]config.Header{
		"X-Token": {Secrets: []config.Secret{"s3cret"}},
		"Cookie":  {Values: []string{"c=1"}},
	}}
	noRedirects := withHeaders
	noRedirects.FollowRedirects = false
	cases := map[string]config.HTTPClientConfig{
		"default":     config.DefaultHTTPClientConfig,
		"basic":       {BasicAuth: &config.BasicAuth{Username: "u", Password: "p"}, FollowRedirects: true},
		"basic-files": {BasicAuth: &config.BasicAuth{UsernameFile: write("user", "fu"), PasswordFile: write("pass", "fp")}, FollowRedirects: true},
		"bearer":      {BearerToken: "tok", FollowRedirects: true},
		"bearer-file": {BearerTokenFile: write("tok", "ftok"), FollowRedirects: true},
		"credentials": {Authorization: &config.Authorization{Type: "Custom", CredentialsFile: write("cred", "c")}, FollowRedirects: true},
		"headers":     withHeaders,
		"no-redirect": noRedirects,
		"oauth2":      {OAuth2: &config.OAuth2{ClientID: "id", ClientSecret: "sec", TokenURL: srvA.URL + "/token"}, FollowRedirects: true},
		"tls-ca-file": {TLSConfig: config.TLSConfig{CAFile: caFile, ServerName: "example.com"}, FollowRedirects: true},
		"proxy":       {ProxyConfig: config.ProxyConfig{ProxyURL: config.URL{URL: proxyURL}}, FollowRedirects: true},
		"no-proxy":    {ProxyConfig: config.ProxyConfig{ProxyURL: config.URL{URL: proxyURL}, NoProxy: "localhost"}, FollowRedirects: true},
		"http2":       {TLSConfig: config.TLSConfig{InsecureSkipVerify: true}, EnableHTTP2: true},
		"http1-only":  {TLSConfig: config.TLSConfig{InsecureSkipVerify: true}},
	}
	urls := []string{
		srvA.URL + "/metrics",
		srvA.URL + "/r?to=" + url.QueryEscape(srvA.URL+"/same"),
		srvA.URL + "/r?to=" + url.QueryEscape(other+"/away"),
		srvTLS.URL + "/secure",
	}
	seen := func(c *http.Client) []string {
		var out []string
		for _, u := range urls {
			resp, err := c.Get(u)
			if err != nil {
				out = append(out, "error") // the text differs between the two transports
				continue
			}
			resp.Body.Close()
			out = append(out, fmt.Sprintf("status %d", resp.StatusCode))
		}
		for _, r := range []*recorder{a, b, tlsRec, proxied} {
			out = append(out, r.take()...)
		}
		return out
	}
	for name, cfg := range cases {
		t.Run(name, func(t *testing.T) {
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			want, err := config.NewClientFromConfig(cfg, "test")
			if err != nil {
				t.Fatal(err)
			}
			conv, err := promconfig.Convert(cfg)
			if err != nil {
				t.Fatal(err)
			}
			got, err := build(conv)
			if err != nil {
				t.Fatal(err)
			}
			w, g := seen(want), seen(got)
			if !slices.Equal(w, g) {
				t.Errorf("config's client:\n%s\nnewClient:\n%s", strings.Join(w, "\n"), strings.Join(g, "\n"))
			}
			if len(w) < len(urls)+1 {
				t.Errorf("nothing reached the servers: %v", w)
			}
			t.Logf("%s", strings.Join(g, "; "))
		})
	}
}
