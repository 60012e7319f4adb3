// Package kubetest starts a real Kubernetes API server for tests: etcd
// (Debian's etcd-server) and a kube-apiserver built from k8s.io/kubernetes,
// both installed by scripts/setup/kubernetes.sh, which prints
// FERRY_ETCD_BIN and FERRY_KUBE_APISERVER_BIN. Both listen on 127.0.0.1
// only, on free ports, with their data in the test's temporary directory,
// and are stopped when the test ends.
//
// The server authorizes with RBAC and authenticates with static tokens:
// AdminToken (group system:masters), AgentToken (the user of service
// account ferry/ferry-agent, as examples/kubernetes/rbac.yaml names it)
// and ReaderToken (service account ferry/reader); the last two have no
// rights until a test grants them.
package kubetest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/ferrydev/ferry/internal/peers"
)

// The static tokens the server accepts.
const (
	AdminToken = "ferry-admin-token"
	AgentToken = "ferry-agent-token"
	AgentUser  = "system:serviceaccount:ferry:ferry-agent"

	ReaderToken = "ferry-reader-token"
	ReaderUser  = "system:serviceaccount:ferry:reader"
)

// APIServer is a running kube-apiserver with its etcd.
type APIServer struct {
	// URL is the server's https URL (a self-signed certificate).
	URL string
	// CAFile is the server's self-signed certificate with its CA, for a
	// client that verifies the server (as the ca.crt of a service
	// account).
	CAFile string

	t testing.TB
	p *peers.Process
}

// Start starts etcd and kube-apiserver, or skips the test (fails it when
// FERRY_REQUIRE_PEERS=1) when their binaries are not set. args are added
// to kube-apiserver's (e.g. "--etcd-compaction-interval=1s").
func Start(t testing.TB, args ...string) *APIServer {
	t.Helper()
	etcdBin := peers.Bin(t, "FERRY_ETCD_BIN", "scripts/setup/kubernetes.sh")
	apiBin := peers.Bin(t, "FERRY_KUBE_APISERVER_BIN", "scripts/setup/kubernetes.sh")
	dir := t.TempDir()
	client, peer := peers.FreeAddr(t), peers.FreeAddr(t)
	peers.Start(t, etcdBin, "http://"+client+"/health",
		"--name=default", "--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls=http://"+client, "--advertise-client-urls=http://"+client,
		"--listen-peer-urls=http://"+peer, "--initial-advertise-peer-urls=http://"+peer,
		"--initial-cluster=default=http://"+peer, "--log-level=warn")

	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "sa.key")
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	tokens := filepath.Join(dir, "tokens.csv")
	csv := fmt.Sprintf("%s,admin,admin,\"system:masters\"\n"+
		"%s,%s,agent-uid,\"system:serviceaccounts,system:serviceaccounts:ferry\"\n"+
		"%s,%s,reader-uid,\"system:serviceaccounts,system:serviceaccounts:ferry\"\n",
		AdminToken, AgentToken, AgentUser, ReaderToken, ReaderUser)
	if err := os.WriteFile(tokens, []byte(csv), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := peers.FreeAddr(t)
	_, port, _ := splitHostPort(addr)
	s := &APIServer{t: t, URL: "https://" + addr, CAFile: filepath.Join(dir, "certs", "apiserver.crt")}
	ready := peers.Options{
		Client:  Client(),
		Header:  http.Header{"Authorization": {"Bearer " + AdminToken}},
		Timeout: 120 * time.Second,
	}
	s.p = peers.StartWith(t, apiBin, s.URL+"/readyz", ready, append([]string{
		"--etcd-servers=http://" + client,
		"--bind-address=127.0.0.1", "--secure-port=" + port,
		// The advertised address is not used (no endpoints reconciled); it
		// may not be a loopback address.
		"--advertise-address=10.255.255.1", "--endpoint-reconciler-type=none",
		"--cert-dir=" + filepath.Join(dir, "certs"),
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file=" + keyFile, "--service-account-signing-key-file=" + keyFile,
		"--token-auth-file=" + tokens,
		"--authorization-mode=RBAC",
		"--service-cluster-ip-range=10.96.0.0/16",
		"--enable-priority-and-fairness=false",
		"--disable-admission-plugins=ServiceAccount",
		"--v=0"}, args...)...)
	return s
}

func splitHostPort(a string) (string, string, error) {
	for i := len(a) - 1; i >= 0; i-- {
		if a[i] == ':' {
			return a[:i], a[i+1:], nil
		}
	}
	return a, "", fmt.Errorf("no port in %q", a)
}

// Client returns an HTTP client that trusts the server's self-signed
// certificate.
func Client() *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // a test server's self-signed certificate
}

// Start starts kube-apiserver again after Stop, on the same address, and
// waits until /readyz answers 200 (within 120s).
func (s *APIServer) Start() {
	s.t.Helper()
	s.p.Start()
}

// Stop stops kube-apiserver (interrupt, then kill after 10s). Start
// starts it again.
func (s *APIServer) Stop() { s.p.Stop() }

// Kubeconfig writes a kubeconfig file for the server with token and
// returns its path.
func (s *APIServer) Kubeconfig(t testing.TB, token string) string {
	t.Helper()
	return Kubeconfig(t, s.URL, token, true)
}

// Kubeconfig writes a kubeconfig file for the server at url with token and
// returns its path. insecure skips verifying the server's certificate.
func Kubeconfig(t testing.TB, url, token string, insecure bool) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "kubeconfig")
	skip := ""
	if insecure {
		skip = "\n    insecure-skip-tls-verify: true"
	}
	c := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: %s%s
users:
- name: test
  user:
    token: %q
contexts:
- name: test
  context: {cluster: test, user: test}
current-context: test
`, url, skip, token)
	if err := os.WriteFile(p, []byte(c), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Admin returns a client of the server with AdminToken, allowed qps
// requests a second (client-go's default, 5, when 0).
func (s *APIServer) Admin(t testing.TB, qps float32) *k8s.Clientset {
	t.Helper()
	c, err := k8s.NewForConfig(&rest.Config{Host: s.URL, BearerToken: AdminToken, QPS: qps, Burst: int(2 * qps),
		TLSClientConfig: rest.TLSClientConfig{Insecure: true}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// GrantClusterRole creates ClusterRole name allowing get, list and watch
// of the core resources and binds it to user, at the cluster scope.
func GrantClusterRole(t testing.TB, c *k8s.Clientset, name, user string, resources ...string) {
	t.Helper()
	ctx := context.Background()
	if _, err := c.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: resources, Verbs: []string{"get", "list", "watch"}}}},
		metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: name},
		Subjects: []rbacv1.Subject{{Kind: "User", Name: user}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}
