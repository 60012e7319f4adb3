package httpclient

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrydev/ferry/httpconf"
	"golang.org/x/net/http/httpproxy"
)

// New fails where Validate does, and builds a client otherwise.
func TestNewValidates(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	for _, c := range []struct {
		cfg  httpconf.Config
		want string // "" for valid
	}{
		{httpconf.Config{}, ""},
		{httpconf.Config{TLS: httpconf.TLS{CAFile: missing}}, "TLS CA file"},
		{httpconf.Config{Authorization: &httpconf.Authorization{CredentialsFile: missing}}, "Credentials file"},
		{httpconf.Config{BasicAuth: &httpconf.BasicAuth{}, Authorization: &httpconf.Authorization{}}, "at most one"},
	} {
		_, err := New(c.cfg, Options{})
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%+v: New error %v, want %q", c.cfg, err, c.want)
		}
		if verr := c.cfg.Validate(); (verr == nil) != (err == nil) {
			t.Errorf("%+v: New error %v, Validate error %v", c.cfg, err, verr)
		}
	}
}

// NoProxy means what NO_PROXY means to net/http: the answers are compared
// with golang.org/x/net/http/httpproxy's.
func TestNoProxy(t *testing.T) {
	lists := []string{
		"example.com", ".example.com", "*.example.com", "example.com:8080", "*",
		"10.0.0.0/8, 192.168.1.1", "192.168.1.1:80", "[::2]:443,::3", "a.test, b.test:80", "",
	}
	urls := []string{
		"http://example.com/", "http://www.example.com/x", "http://notexample.com/", "http://example.com:8080/",
		"https://example.com/", "http://10.1.2.3/", "http://192.168.1.1/", "http://192.168.1.1:81/",
		"https://[::2]/", "http://[::3]:9/", "http://b.test/", "http://localhost:1/", "http://127.0.0.1/", "http://[::1]/",
	}
	proxy, _ := url.Parse("http://proxy.test:3128")
	for _, list := range lists {
		want := (&httpproxy.Config{HTTPProxy: proxy.String(), HTTPSProxy: proxy.String(), NoProxy: list}).ProxyFunc()
		got := proxyFunc(httpconf.Config{ProxyURL: proxy, NoProxy: list})
		if list == "" {
			got = proxyFunc(httpconf.Config{ProxyURL: proxy, NoProxy: " "})
		}
		for _, us := range urls {
			u, _ := url.Parse(us)
			w, _ := want(u)
			g, _ := got(&http.Request{URL: u})
			if (w == nil) != (g == nil) {
				t.Errorf("NoProxy %q, %s: proxy %v, httpproxy says %v", list, us, g, w)
			}
		}
	}
}

// Credentials go with the request and with redirects on its host, not to
// another host after a redirect; neither do sensitive headers that Wrap
// adds.
func TestCredentialsOnRedirect(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	record := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if to := r.URL.Query().Get("to"); to != "" {
				http.Redirect(w, r, to, http.StatusFound)
				return
			}
			mu.Lock()
			seen = append(seen, fmt.Sprintf("%s%s auth=%q cookie=%q x=%q", name, r.URL.Path, r.Header.Get("Authorization"), r.Header.Get("Cookie"), r.Header.Get("X-Extra")))
			mu.Unlock()
		})
	}
	a, b := httptest.NewServer(record("a")), httptest.NewServer(record("b"))
	defer a.Close()
	defer b.Close()
	other := strings.Replace(b.URL, "127.0.0.1", "localhost", 1)
	c, err := New(httpconf.Config{
		Authorization: &httpconf.Authorization{Credentials: "tok"},
		Wrap: func(rt http.RoundTripper) http.RoundTripper {
			return rtFunc(func(r *http.Request) (*http.Response, error) {
				r = clone(r)
				r.Header.Set("Cookie", "c=1")
				r.Header.Set("X-Extra", "e")
				return rt.RoundTrip(r)
			})
		},
	}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{a.URL + "/plain", a.URL + "/r?to=" + url.QueryEscape(a.URL+"/same"), a.URL + "/r?to=" + url.QueryEscape(other+"/away")} {
		resp, err := c.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	want := []string{
		`a/plain auth="Bearer tok" cookie="c=1" x="e"`,
		`a/same auth="Bearer tok" cookie="c=1" x="e"`,
		`b/away auth="" cookie="" x="e"`,
	}
	if strings.Join(seen, "\n") != strings.Join(want, "\n") {
		t.Errorf("servers saw\n%s\nwant\n%s", strings.Join(seen, "\n"), strings.Join(want, "\n"))
	}

	c, _ = New(httpconf.Config{DisableRedirects: true}, Options{})
	resp, err := c.Get(a.URL + "/r?to=" + url.QueryEscape(a.URL+"/same"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Errorf("DisableRedirects: status %d, want 302", resp.StatusCode)
	}
}

type rtFunc func(*http.Request) (*http.Response, error)

func (f rtFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// selfSigned returns a self-signed certificate for server.test and its PEM.
func selfSigned(t *testing.T, name string) (tls.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		DNSNames:     []string{"server.test"},
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// A changed CA file is read again: the client trusts the server's new
// certificate once the file holds its CA, without a new client. The
// transport is wrapped by Options.Transport each time it is built.
func TestTLSFilesReloaded(t *testing.T) {
	certA, pemA := selfSigned(t, "a")
	certB, pemB := selfSigned(t, "b")
	var current atomic.Pointer[tls.Certificate]
	current.Store(&certA)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	srv.TLS = &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return current.Load(), nil }}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshake that fails on purpose
	srv.StartTLS()
	defer srv.Close()

	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pemA, 0o600); err != nil {
		t.Fatal(err)
	}
	var built atomic.Int32
	// ServerName makes the client send SNI, without which the server
	// would use httptest's own certificate.
	c, err := New(httpconf.Config{TLS: httpconf.TLS{CAFile: caFile, ServerName: "server.test"}}, Options{Transport: func(t *http.Transport) http.RoundTripper {
		built.Add(1)
		return t
	}})
	if err != nil {
		t.Fatal(err)
	}
	get := func() error {
		resp, err := c.Get(srv.URL)
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	}
	if err := get(); err != nil {
		t.Fatalf("with CA a: %v", err)
	}
	current.Store(&certB)
	srv.CloseClientConnections()
	c.CloseIdleConnections()
	if err := get(); err == nil {
		t.Fatal("certificate b accepted with CA a")
	}
	// A different size or modification time marks the change; the
	// size differs here only if the PEMs do, so set the time as well.
	if err := os.WriteFile(caFile, pemB, 0o600); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(caFile, later, later); err != nil {
		t.Fatal(err)
	}
	if err := get(); err != nil {
		t.Fatalf("with CA b in the file: %v", err)
	}
	if n := built.Load(); n != 2 {
		t.Errorf("transport built %d times, want 2", n)
	}
}

func ExampleNew() {
	c, err := New(httpconf.Config{}, Options{})
	fmt.Println(c != nil, err)
	_, err = New(httpconf.Config{Authorization: &httpconf.Authorization{CredentialsFile: "/nonexistent/token"}}, Options{})
	fmt.Println(err)
	// Output:
	// true <nil>
	// Authorization Credentials file: open /nonexistent/token: no such file or directory
}
