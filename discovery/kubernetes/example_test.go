package kubernetes_test

import (
	"fmt"

	"github.com/ferrydev/ferry/discovery/kubernetes"
)

// A DaemonSet agent discovers the pods of its own node: the API server
// filters them with the field selector spec.nodeName, and with node
// metadata attached only that node is watched too.
func ExampleDiscoverer_nodeName() {
	d := &kubernetes.Discoverer{
		NodeName:       "node-a", // os.Getenv("NODE_NAME") from the downward API
		Namespaces:     []string{"default", "web"},
		AttachMetadata: kubernetes.AttachMetadata{Node: true},
	}
	cfg, err := d.SDConfig()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("role:", cfg.Role, "namespaces:", cfg.NamespaceDiscovery.Names)
	for _, s := range cfg.Selectors {
		fmt.Printf("%s selector: field %q\n", s.Role, s.Field)
	}
	// Output:
	// role: pod namespaces: [default web]
	// pod selector: field "spec.nodeName=node-a"
	// node selector: field "metadata.name=node-a"
}
