package pipeline_test

import (
	"context"
	"strings"
	"testing"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/discovery"
	"github.com/ferrydev/ferry/pipeline"
	"github.com/ferrydev/ferry/relabel"
	"github.com/ferrydev/ferry/sink/sinktest"
	"github.com/prometheus/prometheus/model/labels"
)

// dockerLike is a discoverer that declares Docker discovery's labels, as
// discovery/docker.Discoverer does.
type dockerLike struct{ discovery.Func }

func (dockerLike) TargetLabels() []string { return relabel.DockerTargetLabels() }

func idle() discovery.Func {
	return func(ctx context.Context, up chan<- []labels.Labels) error { <-ctx.Done(); return nil }
}

// buildTargets builds discoverers -> RelabelTargets steps -> a target source
// and returns Build's error.
func buildTargets(t *testing.T, d discovery.Discoverer, steps ...[]relabel.Rule) error {
	t.Helper()
	b := pipeline.New()
	targets := pipeline.Discover(b, "disc", d)
	for i, rules := range steps {
		targets = pipeline.RelabelTargets(b, "step"+string(rune('a'+i)), rules, targets)
	}
	pipeline.To(b, "sink", &sinktest.Sink[ferry.Entry]{}, pipeline.FromTargets(b, "src", &targetEcho{}, targets))
	_, err := b.Build()
	return err
}

// TestBuildReportsUnreadableTargetLabel is the regression test for the
// migration pitfall: a RelabelTargets rule on a label that exists only on
// log entries compiled and silently did nothing; Build now reports it.
func TestBuildReportsUnreadableTargetLabel(t *testing.T) {
	logStream := relabel.Replace([]string{relabel.DockerLogStreamLabel}, "(.*)", "stream", "$1")
	err := buildTargets(t, dockerLike{idle()}, []relabel.Rule{
		relabel.Replace([]string{"__meta_docker_container_name"}, "/(.*)", "container", "$1"),
		logStream,
	})
	if err == nil {
		t.Fatal("Build accepted a target rule on __meta_docker_container_log_stream")
	}
	for _, want := range []string{`relabel "stepa"`, "relabel rule 1 (replace) reads __meta_docker_container_log_stream", "dockerlogs.Source.Rules"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

func TestBuildLabelCheckSaysNothingWhenUnsure(t *testing.T) {
	logStream := relabel.Replace([]string{relabel.DockerLogStreamLabel}, "(.*)", "stream", "$1")
	for name, tc := range map[string]struct {
		d     discovery.Discoverer
		steps [][]relabel.Rule
	}{
		"undeclared discoverer": {idle(), [][]relabel.Rule{{logStream}}},
		"labels of docker targets": {dockerLike{idle()}, [][]relabel.Rule{{
			relabel.Replace([]string{"__meta_docker_container_label_com_docker_compose_service"}, "(.+)", "service", "$1"),
			relabel.Keep([]string{"__meta_docker_network_ip", relabel.AddressLabel}, ".+"),
			relabel.DropEqual([]string{"__meta_docker_port_private"}, "__meta_docker_port_public"),
		}}},
		"written by an earlier rule": {dockerLike{idle()}, [][]relabel.Rule{{
			relabel.Set("__tmp_x", "1"),
			relabel.Keep([]string{"__tmp_x"}, "1"),
		}}},
		"written by an earlier step": {dockerLike{idle()}, [][]relabel.Rule{
			{relabel.Copy("__meta_docker_container_name", "container")},
			{relabel.Keep([]string{"container"}, ".+")},
		}},
		"after a templated target": {dockerLike{idle()}, [][]relabel.Rule{{
			relabel.Replace([]string{"__meta_docker_container_name"}, "/(.*)", "${1}_x", "y"),
			logStream,
		}}},
		"after a labelmap step": {dockerLike{idle()}, [][]relabel.Rule{
			{relabel.LabelMap("__meta_docker_container_label_(.+)", "$1")},
			{relabel.Keep([]string{"app"}, ".+")},
		}},
		"static targets": {discovery.Addresses([]string{"localhost:9100"}, "env", "prod"), [][]relabel.Rule{{
			relabel.Keep([]string{"env", relabel.AddressLabel}, ".+"),
		}}},
	} {
		t.Run(name, func(t *testing.T) {
			if err := buildTargets(t, tc.d, tc.steps...); err != nil {
				t.Errorf("Build: %v", err)
			}
		})
	}
}

func TestBuildLabelCheckFollowsStepsAndStatic(t *testing.T) {
	err := buildTargets(t, discovery.Addresses([]string{"localhost:9100"}, "env", "prod"), [][]relabel.Rule{{
		relabel.Keep([]string{"__meta_docker_container_name"}, ".+"),
	}}...)
	if err == nil || !strings.Contains(err.Error(), "reads __meta_docker_container_name") {
		t.Errorf("static targets: %v", err)
	}
	err = buildTargets(t, dockerLike{idle()},
		[]relabel.Rule{relabel.Copy("__meta_docker_container_name", "container")},
		[]relabel.Rule{relabel.Keep([]string{"contianer"}, ".+")},
	)
	if err == nil || !strings.Contains(err.Error(), `relabel "stepb": relabel rule 0 (keep) reads contianer`) {
		t.Errorf("second step: %v", err)
	}
}
