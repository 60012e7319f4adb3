package docker_test

import (
	"strings"
	"testing"

	"github.com/ferrydev/ferry"

	"github.com/ferrydev/ferry/discovery/docker"
	"github.com/ferrydev/ferry/pipeline"
	"github.com/ferrydev/ferry/relabel"
	"github.com/ferrydev/ferry/sink/sinktest"
	"github.com/ferrydev/ferry/source/dockerlogs"
)

// The migration pitfall: a rule on the per-line log stream label placed in
// target relabeling compiles and silently does nothing. Build must say so,
// and must accept the same rule on a label Docker discovery does give.
func TestBuildRejectsLogStreamRuleOnTargets(t *testing.T) {
	build := func(source string) error {
		b := pipeline.New()
		targets := pipeline.Discover(b, "containers", &docker.Discoverer{})
		targets = pipeline.RelabelTargets(b, "relabel", []relabel.Rule{
			relabel.Replace([]string{source}, "(.*)", "stream", "$1"),
		}, targets)
		logs := pipeline.FromTargets(b, "logs", &dockerlogs.Source{}, targets)
		pipeline.To(b, "out", &sinktest.Sink[ferry.Entry]{}, logs)
		_, err := b.Build()
		return err
	}
	err := build(relabel.DockerLogStreamLabel)
	if err == nil || !strings.Contains(err.Error(), relabel.DockerLogStreamLabel) {
		t.Fatalf("Build with a log-stream rule on targets: %v, want an error naming the label", err)
	}
	if err := build(docker.LabelContainerName); err != nil {
		t.Fatalf("Build with a container-name rule: %v", err)
	}
}
