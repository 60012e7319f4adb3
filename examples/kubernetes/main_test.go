package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrydev/ferry/discovery/kubernetes/kubetest"
	"github.com/ferrydev/ferry/internal/peers"
)

func TestRequiresNode(t *testing.T) {
	t.Setenv("NODE_NAME", "")
	err := run(context.Background(), []string{"-listen="}, &bytes.Buffer{}, nil)
	if err == nil || !strings.Contains(err.Error(), "NODE_NAME") {
		t.Fatalf("run = %v", err)
	}
}

// TestNotInCluster: without a kubeconfig outside a cluster the agent stops
// at once with a clear error.
func TestNotInCluster(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("KUBERNETES_SERVICE_PORT", "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := run(ctx, []string{"-node=n", "-listen=", "-positions="}, &bytes.Buffer{}, nil)
	if err == nil || !strings.Contains(err.Error(), "not running in a cluster") {
		t.Fatalf("run = %v", err)
	}
}

func kubectl(t *testing.T, kubeconfig string, args ...string) string {
	t.Helper()
	bin := peers.Bin(t, "FERRY_KUBECTL_BIN", "scripts/setup/kubernetes.sh")
	cmd := exec.Command(bin, append([]string{"--kubeconfig=" + kubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestManifests validates the manifests with `kubectl apply
// --dry-run=client` against a real API server (kubectl needs one for the
// kinds and the OpenAPI schema it validates against).
func TestManifests(t *testing.T) {
	peers.Bin(t, "FERRY_KUBECTL_BIN", "scripts/setup/kubernetes.sh")
	s := kubetest.Start(t)
	admin := s.Kubeconfig(t, kubetest.AdminToken)
	out := kubectl(t, admin, "apply", "--dry-run=client", "--validate=strict", "-f", ".")
	for _, want := range []string{"namespace/ferry", "serviceaccount/ferry-agent", "clusterrole.rbac.authorization.k8s.io/ferry-agent",
		"clusterrolebinding.rbac.authorization.k8s.io/ferry-agent", "daemonset.apps/ferry-agent"} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl output lacks %q:\n%s", want, out)
		}
	}
}

type syncBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	changed chan struct{} // closed and replaced on every Write
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.changed != nil {
		close(s.changed)
		s.changed = nil
	}
	return s.b.Write(p)
}

// waitFor waits until the output contains text, and reports whether it
// did within timeout.
func (s *syncBuffer) waitFor(text string, timeout time.Duration) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		found := strings.Contains(s.b.String(), text)
		if s.changed == nil {
			s.changed = make(chan struct{})
		}
		changed := s.changed
		s.mu.Unlock()
		if found {
			return true
		}
		select {
		case <-changed:
		case <-deadline.C:
			return false
		}
	}
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestAgent runs the agent against a real API server with the service
// account and RBAC of rbac.yaml (applied for real), creates a pod on its
// node, writes the pod's log as kubelet does, and measures the time from
// the pod's creation to its first line printed.
func TestAgent(t *testing.T) {
	peers.Bin(t, "FERRY_KUBECTL_BIN", "scripts/setup/kubernetes.sh")
	s := kubetest.Start(t)
	admin := s.Kubeconfig(t, kubetest.AdminToken)
	kubectl(t, admin, "apply", "-f", "rbac.yaml")
	root := t.TempDir()
	out := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-node=node-a", "-kubeconfig=" + s.Kubeconfig(t, kubetest.AgentToken),
			"-root=" + root, "-positions=" + filepath.Join(t.TempDir(), "pos.json"), "-listen=127.0.0.1:0"}, out, nil)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent: %v", err)
		}
	}()

	pod := `apiVersion: v1
kind: Pod
metadata: {name: %s, namespace: default}
spec:
  nodeName: %s
  containers: [{name: app, image: registry.example/app:1}]
`
	manifest := filepath.Join(t.TempDir(), "pod.yaml")
	create := func(name, node string) (uid string, created time.Time) {
		os.WriteFile(manifest, []byte(fmt.Sprintf(pod, name, node)), 0o644)
		created = time.Now()
		kubectl(t, admin, "apply", "-f", manifest)
		kubectl(t, admin, "patch", "pod", name, "--subresource=status", "--type=merge",
			"-p", `{"status":{"phase":"Running","podIP":"10.1.0.5","podIPs":[{"ip":"10.1.0.5"}]}}`)
		uid = strings.TrimSpace(kubectl(t, admin, "get", "pod", name, "-o", "jsonpath={.metadata.uid}"))
		return uid, created
	}
	writeLog := func(name, uid, msg string) {
		dir := filepath.Join(root, "default_"+name+"_"+uid, "app")
		os.MkdirAll(dir, 0o755)
		f, err := os.OpenFile(filepath.Join(dir, "0.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(f, "%s stdout F %s\n", time.Now().UTC().Format(time.RFC3339Nano), msg)
		f.Close()
	}
	// A pod of another node is not read.
	otherUID, _ := create("elsewhere", "node-b")
	writeLog("elsewhere", otherUID, "from node-b")

	uid, created := create("web", "node-a")
	writeLog("web", uid, "hello from web")
	if !out.waitFor("hello from web", 60*time.Second) {
		t.Fatalf("no line within 60s; output:\n%s", out.String())
	}
	t.Logf("pod creation to first line delivered: %v (kubectl apply and status patch included)", time.Since(created).Round(time.Millisecond))
	got := out.String()
	for _, want := range []string{`namespace="default"`, `pod="web"`, `container="app"`, `node="node-a"`} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %s:\n%s", want, got)
		}
	}
	if strings.Contains(got, "from node-b") {
		t.Errorf("a pod of another node was read:\n%s", got)
	}
}

// discoveryServer answers the API discovery requests kubectl makes to map
// the manifests' kinds (/api, /apis and the group versions), and nothing
// else: enough for `kubectl apply --dry-run=client --validate=false`
// without a real API server.
func discoveryServer(t *testing.T) string {
	t.Helper()
	res := func(name, kind string, namespaced bool) map[string]any {
		return map[string]any{"name": name, "singularName": strings.ToLower(kind), "namespaced": namespaced, "kind": kind,
			"verbs": []string{"create", "delete", "get", "list", "patch", "update", "watch"}}
	}
	docs := map[string]any{
		"/api": map[string]any{"kind": "APIVersions", "versions": []string{"v1"},
			"serverAddressByClientCIDRs": []any{map[string]any{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}}},
		"/apis": map[string]any{"kind": "APIGroupList", "apiVersion": "v1", "groups": []any{
			map[string]any{"name": "apps", "versions": []any{map[string]any{"groupVersion": "apps/v1", "version": "v1"}},
				"preferredVersion": map[string]any{"groupVersion": "apps/v1", "version": "v1"}},
			map[string]any{"name": "rbac.authorization.k8s.io", "versions": []any{map[string]any{"groupVersion": "rbac.authorization.k8s.io/v1", "version": "v1"}},
				"preferredVersion": map[string]any{"groupVersion": "rbac.authorization.k8s.io/v1", "version": "v1"}},
		}},
		"/api/v1": map[string]any{"kind": "APIResourceList", "groupVersion": "v1", "resources": []any{
			res("namespaces", "Namespace", false), res("serviceaccounts", "ServiceAccount", true), res("pods", "Pod", true)}},
		"/apis/apps/v1": map[string]any{"kind": "APIResourceList", "groupVersion": "apps/v1", "resources": []any{
			res("daemonsets", "DaemonSet", true)}},
		"/apis/rbac.authorization.k8s.io/v1": map[string]any{"kind": "APIResourceList", "groupVersion": "rbac.authorization.k8s.io/v1",
			"resources": []any{res("clusterroles", "ClusterRole", false), res("clusterrolebindings", "ClusterRoleBinding", false)}},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		doc, ok := docs[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(doc)
	}))
	t.Cleanup(srv.Close)
	p := filepath.Join(t.TempDir(), "kubeconfig")
	os.WriteFile(p, []byte(fmt.Sprintf("apiVersion: v1\nkind: Config\nclusters: [{name: d, cluster: {server: %s}}]\n"+
		"users: [{name: d, user: {}}]\ncontexts: [{name: d, context: {cluster: d, user: d}}]\ncurrent-context: d\n", srv.URL)), 0o600)
	return p
}

// TestManifestsWithoutAPIServer runs `kubectl apply --dry-run=client`
// where no API server is available: kinds are mapped by a discovery-only
// server, and schema validation (which needs the server's OpenAPI) is off.
func TestManifestsWithoutAPIServer(t *testing.T) {
	peers.Bin(t, "FERRY_KUBECTL_BIN", "scripts/setup/kubernetes.sh")
	out := kubectl(t, discoveryServer(t), "apply", "--dry-run=client", "--validate=false", "-f", ".")
	for _, want := range []string{"namespace/ferry", "serviceaccount/ferry-agent", "clusterrole.rbac.authorization.k8s.io/ferry-agent",
		"clusterrolebinding.rbac.authorization.k8s.io/ferry-agent", "daemonset.apps/ferry-agent"} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl output lacks %q:\n%s", want, out)
		}
	}
}
