// Package authtest holds the client-authentication cases that the tests of
// Ferry's HTTP clients (scrape, remote write) share: each an
// httpconf.Config and a test server that only serves requests carrying what
// that configuration must send.
package authtest

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/ferrydev/ferry/httpconf"
)

// Case is one way for a client to authenticate.
type Case struct {
	Name   string
	Config httpconf.Config
	// TLS says the server speaks HTTPS (with a certificate the Config
	// does not verify).
	TLS   bool
	check func(*http.Request) bool
}

// Cases returns basic auth, a bearer token and TLS.
func Cases() []Case {
	return []Case{
		{Name: "basic", Config: httpconf.Config{BasicAuth: &httpconf.BasicAuth{Username: "u", Password: "p"}}, check: func(r *http.Request) bool {
			u, pw, ok := r.BasicAuth()
			return ok && u == "u" && pw == "p"
		}},
		{Name: "bearer", Config: httpconf.Config{Authorization: &httpconf.Authorization{Credentials: "tok"}}, check: func(r *http.Request) bool {
			return r.Header.Get("Authorization") == "Bearer tok"
		}},
		{Name: "tls", Config: httpconf.Config{TLS: httpconf.TLS{InsecureSkipVerify: true}}, TLS: true, check: func(r *http.Request) bool {
			return r.TLS != nil
		}},
	}
}

// Server starts h on a loopback address, over HTTPS when c.TLS, answering
// 401 to requests that lack c's credentials. It is closed when the test
// ends.
func (c Case) Server(t testing.TB, h http.Handler) *httptest.Server {
	guard := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !c.check(r) {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
	var srv *httptest.Server
	if c.TLS {
		srv = httptest.NewTLSServer(guard)
	} else {
		srv = httptest.NewServer(guard)
	}
	t.Cleanup(srv.Close)
	return srv
}
