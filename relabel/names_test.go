package relabel

import (
	"strings"
	"testing"
)

func TestNamesContains(t *testing.T) {
	n := Names(DockerTargetLabels())
	for name, want := range map[string]bool{
		AddressLabel:                          true,
		"__meta_docker_container_name":        true,
		"__meta_docker_container_label_app":   true,
		"__meta_docker_network_label_x":       true,
		"__meta_docker_port_public_ip":        true,
		DockerLogStreamLabel:                  false,
		"__meta_docker_container_label":       false,
		"__meta_docker_container_name_suffix": false,
		PathLabel:                             false,
	} {
		if got := n.Contains(name); got != want {
			t.Errorf("Contains(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestCheckReadsAndWrites(t *testing.T) {
	r := MustNew(
		Copy("a", "b"),
		KeepEqual([]string{"b"}, "c"), // reads c as well
		Keep([]string{"b", "missing"}, ".*"),
	)
	err := r.CheckReads(Names{"a"})
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	for _, want := range []string{"rule 1 (keepequal) reads c", "rule 2 (keep) reads missing"} {
		if !strings.Contains(msg, want) {
			t.Errorf("%q does not contain %q", msg, want)
		}
	}
	if strings.Contains(msg, "reads b") || strings.Contains(msg, "reads a") {
		t.Errorf("%q reports a label that exists", msg)
	}
	if w, ok := r.Writes(); !ok || len(w) != 1 || w[0] != "b" {
		t.Errorf("Writes = %v, %v", w, ok)
	}
	if _, ok := MustNew(LabelMap("(.*)", "x_$1")).Writes(); ok {
		t.Error("labelmap writes known names?")
	}
	if err := (*Rules)(nil).CheckReads(nil); err != nil {
		t.Error(err)
	}
}
