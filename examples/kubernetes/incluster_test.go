package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferrydev/ferry/discovery/kubernetes/kubetest"
	"github.com/ferrydev/ferry/internal/peers"
	"github.com/ferrydev/ferry/internal/poll"
)

// docker runs the docker CLI and returns its combined output.
func docker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("docker", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestInClusterImage builds the image with build.sh and runs it as the
// DaemonSet runs it: in a container, with the in-cluster configuration
// (KUBERNETES_SERVICE_HOST/PORT and a service account directory holding
// the token of rbac.yaml's service account, the server's CA and the
// namespace) against a real API server, /var/log/pods mounted read-only.
// Without the token the agent stops at once naming it; with it, a pod
// created on its node has its first line printed.
func TestInClusterImage(t *testing.T) {
	if _, err := exec.LookPath("docker"); err != nil {
		if os.Getenv("FERRY_REQUIRE_PEERS") == "1" {
			t.Fatal("docker not found")
		}
		t.Skip("docker not found")
	}
	peers.Bin(t, "FERRY_KUBECTL_BIN", "scripts/setup/kubernetes.sh")
	s := kubetest.Start(t)
	admin := s.Kubeconfig(t, kubetest.AdminToken)
	kubectl(t, admin, "apply", "-f", "rbac.yaml")

	tmp := t.TempDir()
	image := fmt.Sprintf("ferry-agent:test-%d", os.Getpid())
	build := exec.Command("./build.sh", image)
	build.Env = append(os.Environ(), "OUT="+filepath.Join(tmp, "out"))
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build.sh: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("docker", "rmi", "-f", image).Run() })

	sa, root := filepath.Join(tmp, "sa"), filepath.Join(tmp, "pods")
	for _, d := range []string{sa, root} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	host, port, _ := strings.Cut(strings.TrimPrefix(s.URL, "https://"), ":")
	start := func(name string) {
		t.Helper()
		docker(t, "run", "-d", "--name", name, "--network", "host",
			"-e", "NODE_NAME=node-a", "-e", "KUBERNETES_SERVICE_HOST="+host, "-e", "KUBERNETES_SERVICE_PORT="+port,
			"-v", sa+":/var/run/secrets/kubernetes.io/serviceaccount:ro", "-v", root+":/var/log/pods:ro",
			image, "-positions=", "-listen=")
		t.Cleanup(func() { exec.Command("docker", "rm", "-f", name).Run() })
	}
	logs := func(name string) string {
		out, _ := exec.Command("docker", "logs", name).CombinedOutput()
		return string(out)
	}

	// No service account token mounted: the agent stops, naming it.
	noToken := fmt.Sprintf("ferry-agent-notoken-%d", os.Getpid())
	start(noToken)
	if !poll.Wait(60*time.Second, func() bool { return strings.Contains(logs(noToken), "service account token") }) {
		t.Fatalf("without a token: %s", logs(noToken))
	}
	if st := strings.TrimSpace(docker(t, "wait", noToken)); st != "1" {
		t.Errorf("exit status %s without a token, want 1", st)
	}

	ca, err := os.ReadFile(s.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"token": []byte(kubetest.AgentToken), "ca.crt": ca, "namespace": []byte("ferry")} {
		if err := os.WriteFile(filepath.Join(sa, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	agent := fmt.Sprintf("ferry-agent-%d", os.Getpid())
	start(agent)
	pod := filepath.Join(tmp, "pod.yaml")
	os.WriteFile(pod, []byte("apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: default}\n"+
		"spec: {nodeName: node-a, containers: [{name: app, image: registry.example/app:1}]}\n"), 0o644)
	kubectl(t, admin, "apply", "-f", pod)
	kubectl(t, admin, "patch", "pod", "web", "--subresource=status", "--type=merge",
		"-p", `{"status":{"phase":"Running","podIP":"10.1.0.5","podIPs":[{"ip":"10.1.0.5"}]}}`)
	uid := strings.TrimSpace(kubectl(t, admin, "get", "pod", "web", "-o", "jsonpath={.metadata.uid}"))
	dir := filepath.Join(root, "default_web_"+uid, "app")
	os.MkdirAll(dir, 0o755)
	line := time.Now().UTC().Format(time.RFC3339Nano) + " stdout F hello from a container\n"
	if err := os.WriteFile(filepath.Join(dir, "0.log"), []byte(line), 0o640); err != nil {
		t.Fatal(err)
	}
	if !poll.Wait(60*time.Second, func() bool { return strings.Contains(logs(agent), "hello from a container") }) {
		t.Fatalf("no line within 60s; agent output:\n%s", logs(agent))
	}
	out := logs(agent)
	for _, want := range []string{`namespace="default"`, `pod="web"`, `container="app"`, `node="node-a"`} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %s:\n%s", want, out)
		}
	}
}
