package syslog

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/internal/poll"
)

// countingReporter records drops and health.
type countingReporter struct {
	mu      sync.Mutex
	dropped map[string]int
	health  ferry.Health
}

func newReporter() *countingReporter { return &countingReporter{dropped: map[string]int{}} }

func (r *countingReporter) Logger() *slog.Logger { return slog.New(slog.DiscardHandler) }
func (r *countingReporter) SetHealth(h ferry.Health, _ error) {
	r.mu.Lock()
	r.health = h
	r.mu.Unlock()
}
func (r *countingReporter) Dropped(reason string, n int) {
	r.mu.Lock()
	r.dropped[reason] += n
	r.mu.Unlock()
}
func (r *countingReporter) Retried() {}
func (r *countingReporter) drops(reason string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.dropped[reason]
}

// running is a started and running Source with its output.
type running struct {
	s    *Source
	out  chan ferry.Batch[ferry.Entry]
	rep  *countingReporter
	stop func()
}

// startSource starts s on 127.0.0.1:0 and runs it until the test ends.
// outCap is the capacity of the output channel.
func startSource(t testing.TB, s *Source, outCap int) *running {
	t.Helper()
	if s.Addr == "" && s.Listener == nil && s.PacketConn == nil {
		s.Addr = "127.0.0.1:0"
	}
	rep := newReporter()
	if err := s.Start(context.Background(), rep); err != nil {
		t.Fatal(err)
	}
	out := make(chan ferry.Batch[ferry.Entry], outCap)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, out) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Error("Run did not return within 10s of cancel")
			}
			s.Close(context.Background())
		})
	}
	t.Cleanup(stop)
	return &running{s: s, out: out, rep: rep, stop: stop}
}

// collect reads entries until n arrived or the deadline passed, acking
// each batch.
func (r *running) collect(t testing.TB, n int, timeout time.Duration) []ferry.Entry {
	t.Helper()
	var got []ferry.Entry
	deadline := time.After(timeout)
	for len(got) < n {
		select {
		case b := <-r.out:
			got = append(got, b.Items...)
			b.Done(nil)
		case <-deadline:
			t.Fatalf("got %d entries within %v, want %d", len(got), timeout, n)
		}
	}
	return got
}

// waitFor polls cond until it holds or 10s passed.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	waitWithin(t, 10*time.Second, what, cond)
}

// waitWithin polls cond until it holds or d passed.
func waitWithin(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	if !poll.Wait(d, cond) {
		t.Fatalf("timed out waiting for %s", what)
	}
}

// writeCert writes a self-signed certificate for 127.0.0.1/localhost, its
// key, and the same certificate as CA, and returns their paths.
func writeCert(t testing.TB) (certFile, keyFile, caFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "localhost"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, certFile
}
