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
// once, across a restart on the same positions. The source watches every
// namespace, so it also gets the API server's own events; the test looks
// at those of its pod "web" only.
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
	ours := func(line string) bool { return strings.Contains(line, " name=web ") }
	waitMessages := func(t *testing.T, col *collector, want ...string) {
		t.Helper()
		waitMessagesOf(t, col, ours, want...)
	}

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
	defer col.mu.Unlock()
	for _, e := range col.entries {
		if ours(e.Line) {
			if got := e.Labels.Get("namespace"); got != "default" {
				t.Errorf("namespace label %q", got)
			}
			break
		}
	}
}

// TestAPIServerGone: a stored position that etcd has compacted away (the
// API server compacts every second here): the watch answers 410 Gone, the
// source lists again and sends the events newer than the position, each
// once, then follows new ones.
func TestAPIServerGone(t *testing.T) {
	s := kubetest.Start(t, "--etcd-compaction-interval=1s")
	c := s.Admin(t, 0)
	ctx := context.Background()
	// A namespace of the test's own: the API server writes events of its
	// own to the default namespace (its cluster IP repair), which the
	// source would rightly deliver too.
	const ns = "gone"
	if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for i, msg := range []string{"one", "two"} {
		now := metav1.NewTime(time.Now().Truncate(time.Second))
		if _, err := c.CoreV1().Events(ns).Create(ctx, &corev1.Event{
			ObjectMeta:     metav1.ObjectMeta{Name: fmt.Sprintf("web.%d", i), Namespace: ns},
			InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: "web"},
			Reason:         "Started", Message: msg, Type: corev1.EventTypeNormal, Count: 1,
			FirstTimestamp: now, LastTimestamp: now}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// Wait until a watch from resourceVersion 1 is refused.
	gone := func() bool {
		w, err := c.CoreV1().Events(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: "1"})
		if err != nil {
			return strings.Contains(err.Error(), "too old")
		}
		defer w.Stop()
		select {
		case ev := <-w.ResultChan():
			st, ok := ev.Object.(*metav1.Status)
			return ev.Type == "ERROR" && ok && st.Code == 410
		case <-time.After(5 * time.Second):
			return false
		}
	}
	if !poll.Wait(60*time.Second, gone) {
		t.Fatal("resourceVersion 1 still served after 60s of compactions")
	}
	pf := positions.Memory()
	pf.Set(DefaultPositionKey+ns, "1")
	col, rep, _ := start(t, &Source{KubeConfig: s.Kubeconfig(t, kubetest.AdminToken), Positions: pf,
		Namespaces: []string{ns}, Backoff: fast})
	waitMessages(t, col, "one", "two")
	if !strings.Contains(rep.Logs(), "listing again") {
		t.Errorf("no relist logged:\n%s", rep.Logs())
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
