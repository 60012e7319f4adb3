package kubeevents

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/discovery/kubernetes/kubetest"
	"github.com/ferrydev/ferry/internal/poll"
	"github.com/ferrydev/ferry/positions"
)

// TestAPIServer reads events from a real kube-apiserver as the service
// account of examples/kubernetes: refused (Failing, the server's message)
// until RBAC grants it, then the events created before and after, each
// once, across a restart on the same positions.
func TestAPIServer(t *testing.T) {
	s := kubetest.Start(t)
	c := s.Admin(t, 0)
	ctx := context.Background()
	n := 0
	create := func(ns, msg string) {
		t.Helper()
		n++
		now := metav1.NewTime(time.Now().Truncate(time.Second))
		_, err := c.CoreV1().Events(ns).Create(ctx, &corev1.Event{
			ObjectMeta:     metav1.ObjectMeta{Name: fmt.Sprintf("web.%d", n), Namespace: ns},
			InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: "web", APIVersion: "v1"},
			Reason:         "Started", Message: msg, Type: corev1.EventTypeNormal, Count: 1,
			Source:         corev1.EventSource{Component: "kubelet", Host: "node-a"},
			FirstTimestamp: now, LastTimestamp: now}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}
	create("default", "before the agent")

	pf := positions.Memory()
	kc := s.Kubeconfig(t, kubetest.AgentToken)
	col, rep, stop := start(t, &Source{KubeConfig: kc, Positions: pf, Backoff: fast})
	if !poll.Wait(30*time.Second, func() bool {
		h, err := rep.Health()
		return h == ferry.Failing && err != nil && contains(err.Error(), "403", `cannot list resource "events"`)
	}) {
		h, err := rep.Health()
		t.Fatalf("health %v %v", h, err)
	}
	kubetest.GrantClusterRole(t, c, "events", kubetest.AgentUser, "events")
	waitMessages(t, col, "before the agent")
	create("kube-system", "while running")
	waitMessages(t, col, "before the agent", "while running")
	if !poll.Wait(10*time.Second, func() bool { h, _ := rep.Health(); return h == ferry.Healthy }) {
		t.Error("not Healthy once granted")
	}
	stop()

	create("default", "while stopped")
	col, _, _ = start(t, &Source{KubeConfig: kc, Positions: pf, Backoff: fast})
	waitMessages(t, col, "while stopped")
	create("default", "after the restart")
	waitMessages(t, col, "while stopped", "after the restart")
	col.mu.Lock()
	e := col.entries[0]
	col.mu.Unlock()
	if got := e.Labels.Get("namespace"); got != "default" {
		t.Errorf("namespace label %q", got)
	}
}

func contains(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
