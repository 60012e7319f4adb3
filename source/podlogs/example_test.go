package podlogs_test

import (
	"fmt"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/ferrydev/ferry/relabel"
	"github.com/ferrydev/ferry/source/podlogs"
)

// The rules turn a pod target of Prometheus's kubernetes SD into the glob
// of its container's log files and the labels of its lines.
func ExampleRules() {
	pod := labels.FromStrings(
		"__address__", "10.1.0.5:8080",
		"__meta_kubernetes_namespace", "shop",
		"__meta_kubernetes_pod_name", "cart-7d9f",
		"__meta_kubernetes_pod_uid", "0b7e-41",
		"__meta_kubernetes_pod_container_name", "cart",
		"__meta_kubernetes_pod_node_name", "node-a",
	)
	rules := relabel.MustNew(podlogs.Rules(podlogs.DefaultRoot)...)
	t, _ := rules.Apply(pod)
	for _, name := range []string{"__path__", "namespace", "pod", "container", "node"} {
		fmt.Printf("%s=%s\n", name, t.Get(name))
	}
	// Output:
	// __path__=/var/log/pods/shop_cart-7d9f_0b7e-41/cart/*.log
	// namespace=shop
	// pod=cart-7d9f
	// container=cart
	// node=node-a
}
