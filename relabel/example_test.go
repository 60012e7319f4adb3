package relabel_test

import (
	"fmt"

	"github.com/ferrydev/ferry/relabel"
	"github.com/prometheus/prometheus/model/labels"
)

// The two rules of the Alloy migration config: container name without its
// slash, and the compose service.
func Example() {
	rules, err := relabel.New(
		relabel.Replace([]string{"__meta_docker_container_name"}, "/(.*)", "container", "$1"),
		relabel.Replace([]string{"__meta_docker_container_label_com_docker_compose_service"}, "(.+)", "service", "$1"),
	)
	if err != nil {
		panic(err)
	}
	target := labels.FromStrings(
		"__meta_docker_container_name", "/shop-web-1",
		"__meta_docker_container_label_com_docker_compose_service", "web",
	)
	out, keep := rules.Apply(target)
	fmt.Println(keep, out.Get("container"), out.Get("service"))
	// Output:
	// true shop-web-1 web
}
