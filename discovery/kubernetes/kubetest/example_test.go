package kubetest_test

import (
	"testing"

	"github.com/ferrydev/ferry/discovery/kubernetes"
	"github.com/ferrydev/ferry/discovery/kubernetes/kubetest"
)

// A test starts a real API server (or is skipped without the binaries of
// scripts/setup/kubernetes.sh) and points a discoverer at it. Not run here:
// it needs the peers.
func ExampleStart() {
	var t *testing.T // the test's
	s := kubetest.Start(t)
	d := &kubernetes.Discoverer{KubeConfig: s.Kubeconfig(t, kubetest.AdminToken), NodeName: "node-a"}
	_ = d
}
