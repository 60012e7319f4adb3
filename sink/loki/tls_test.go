package loki

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrydev/ferry/httpconf"
)

// writeCert creates a key pair signed by parent (self-signed when parent is
// nil), writes cert and key as PEM files in dir and returns them.
func writeCert(t *testing.T, dir, name string, isCA bool, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey, string, string) {
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
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IsCA:         isCA, BasicConstraintsValid: true,
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	kder, _ := x509.MarshalECPrivateKey(key)
	cf, kf := filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	os.WriteFile(cf, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(kf, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	return cert, key, cf, kf
}

func TestTLSWithClientCertificate(t *testing.T) {
	dir := t.TempDir()
	ca, caKey, caFile, _ := writeCert(t, dir, "ca", true, nil, nil)
	_, _, srvCert, srvKey := writeCert(t, dir, "server", false, ca, caKey)
	_, _, cliCert, cliKey := writeCert(t, dir, "client", false, ca, caKey)

	f := newFakeLoki(t, nil)
	f.srv.Close()
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	kp, err := tls.LoadX509KeyPair(srvCert, srvKey)
	if err != nil {
		t.Fatal(err)
	}
	var clientCN atomic.Value
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			clientCN.Store(r.TLS.PeerCertificates[0].Subject.CommonName)
		}
		f.serve(w, r)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{kp}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	srv.StartTLS()
	defer srv.Close()

	cfg := httpconf.Config{TLS: httpconf.TLS{CAFile: caFile, CertFile: cliCert, KeyFile: cliKey}}
	s := started(t, &Sink{URL: srv.URL + "/loki/api/v1/push", HTTPClient: cfg, BatchWait: 5 * time.Millisecond}, nil)
	defer closeSink(t, s)
	acks := newAckRecorder()
	s.Send(context.Background(), acks.batch(testEntries()[:1]))
	if err := acks.wait(t, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if cn, _ := clientCN.Load().(string); cn != "client" || len(f.received()) != 1 {
		t.Fatalf("client certificate %q, %d requests", cn, len(f.received()))
	}
}

func TestProxy(t *testing.T) {
	var via atomic.Value
	f := &fakeLoki{t: t}
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		via.Store(r.URL.String()) // absolute URI: the request came as to a proxy
		f.serve(w, r)
	}))
	defer proxy.Close()
	pu, _ := url.Parse(proxy.URL)
	s := started(t, &Sink{URL: "http://loki.invalid:3100/loki/api/v1/push", HTTPClient: httpconf.Config{ProxyURL: pu}, BatchWait: 5 * time.Millisecond}, nil)
	defer closeSink(t, s)
	acks := newAckRecorder()
	s.Send(context.Background(), acks.batch(testEntries()[:1]))
	if err := acks.wait(t, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if v, _ := via.Load().(string); v != "http://loki.invalid:3100/loki/api/v1/push" {
		t.Fatalf("proxy saw %q", v)
	}
}
