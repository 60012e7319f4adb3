package relabel_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/relabel"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	prom "github.com/prometheus/prometheus/model/relabel"
)

func TestHelpersMatchPrometheusSemantics(t *testing.T) {
	in := labels.FromStrings(
		"__meta_docker_container_name", "/web-1",
		"__meta_docker_container_label_com_docker_compose_service", "web",
		"__meta_docker_container_id", "abc",
		"env", "Prod",
	)
	cases := []struct {
		name string
		rule relabel.Rule
		want labels.Labels
		keep bool
	}{
		{"replace", relabel.Replace([]string{"__meta_docker_container_name"}, "/(.*)", "container", "$1"),
			labels.NewBuilder(in).Set("container", "web-1").Labels(), true},
		{"replace no match is no-op", relabel.Replace([]string{"env"}, "dev", "x", "$1"), in, true},
		{"copy", relabel.Copy("env", "environment"), labels.NewBuilder(in).Set("environment", "Prod").Labels(), true},
		{"set", relabel.Set("cluster", "eu"), labels.NewBuilder(in).Set("cluster", "eu").Labels(), true},
		{"keep match", relabel.Keep([]string{"env"}, "Prod|Dev"), in, true},
		{"keep no match", relabel.Keep([]string{"env"}, "Dev"), labels.EmptyLabels(), false},
		{"drop", relabel.Drop([]string{"__meta_docker_container_id"}, "abc"), labels.EmptyLabels(), false},
		{"labelmap", relabel.LabelMap("__meta_docker_container_label_com_docker_compose_(.+)", "$1"),
			labels.NewBuilder(in).Set("service", "web").Labels(), true},
		{"labeldrop", relabel.LabelDrop("__meta_.*"), labels.FromStrings("env", "Prod"), true},
		{"labelkeep", relabel.LabelKeep("env"), labels.FromStrings("env", "Prod"), true},
		{"lowercase", relabel.Lowercase([]string{"env"}, "env_lc"), labels.NewBuilder(in).Set("env_lc", "prod").Labels(), true},
		{"uppercase", relabel.Uppercase([]string{"env"}, "env"), labels.NewBuilder(in).Set("env", "PROD").Labels(), true},
		{"keepequal", relabel.KeepEqual([]string{"env"}, "env"), in, true},
		{"dropequal", relabel.DropEqual([]string{"env"}, "env"), labels.EmptyLabels(), false},
		{"hashmod", relabel.HashMod([]string{"__meta_docker_container_id"}, 1, "shard"), labels.NewBuilder(in).Set("shard", "0").Labels(), true},
		{"fromconfig defaults", relabel.FromConfig(prom.Config{SourceLabels: model.LabelNames{"env"}, TargetLabel: "copy"}),
			labels.NewBuilder(in).Set("copy", "Prod").Labels(), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := relabel.New(c.rule)
			if err != nil {
				t.Fatal(err)
			}
			got, keep := r.Apply(in)
			if keep != c.keep || (keep && !labels.Equal(got, c.want)) {
				t.Fatalf("got %v %v, want %v %v", got, keep, c.want, c.keep)
			}
		})
	}
}

func TestNewReportsEveryInvalidRule(t *testing.T) {
	_, err := relabel.New(
		relabel.Replace([]string{"a"}, "(", "x", "$1"),     // bad regex
		relabel.Replace([]string{"a"}, ".*", "", "$1"),     // no target
		relabel.HashMod([]string{"a"}, 0, "x"),             // zero modulus
		relabel.Keep([]string{"a"}, "ok"),                  // fine
		relabel.FromConfig(prom.Config{Action: "explode"}), // unknown action
	)
	if err == nil {
		t.Fatal("want an error")
	}
	for _, want := range []string{"rule 0", "rule 1", "rule 2", "rule 4"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s: %v", want, err)
		}
	}
	if strings.Contains(err.Error(), "rule 3") {
		t.Errorf("valid rule reported: %v", err)
	}
}

func TestTargets(t *testing.T) {
	r := relabel.MustNew(
		relabel.Drop([]string{"skip"}, "yes"),
		relabel.Replace([]string{"__meta_name"}, "/(.*)", "container", "$1"),
	)
	got := r.Targets([]labels.Labels{
		labels.FromStrings("__meta_name", "/a"),
		labels.FromStrings("__meta_name", "/b", "skip", "yes"),
	})
	if len(got) != 1 || got[0].Get("container") != "a" {
		t.Fatalf("got %v", got)
	}
}

func TestProcessorCachesAndFilters(t *testing.T) {
	r := relabel.MustNew(
		relabel.Drop([]string{"level"}, "debug"),
		relabel.Replace([]string{"__meta_name"}, "/(.*)", "container", "$1"),
		relabel.LabelDrop("__meta_.*"),
	)
	p := relabel.Entries(r)
	mk := func(name, level, line string) ferry.Entry {
		return ferry.Entry{Labels: labels.FromStrings("__meta_name", name, "level", level), Line: line}
	}
	for round := range 3 { // later rounds are served from the cache
		b := ferry.NewBatch([]ferry.Entry{
			mk("/a", "info", "1"), mk("/a", "debug", "2"), mk("/b", "info", "3"), mk("/a", "info", "4"),
		}, nil)
		out, err := p.Process(context.Background(), b)
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Items) != 3 {
			t.Fatalf("round %d: %d items, want 3", round, len(out.Items))
		}
		want := []string{`{container="a", level="info"}`, `{container="b", level="info"}`, `{container="a", level="info"}`}
		for i, e := range out.Items {
			if e.Labels.String() != want[i] {
				t.Fatalf("round %d item %d: %s, want %s", round, i, e.Labels, want[i])
			}
		}
	}
}

func TestProcessorCacheBound(t *testing.T) {
	r := relabel.MustNew(relabel.Set("x", "y"))
	p := relabel.NewProcessor(r, func(s *ferry.Sample) *labels.Labels { return &s.Labels }, 8)
	for i := range 100 {
		b := ferry.NewBatch([]ferry.Sample{{Labels: labels.FromStrings("i", strings.Repeat("a", i))}}, nil)
		out, _ := p.Process(context.Background(), b)
		if out.Items[0].Labels.Get("x") != "y" || len(out.Items[0].Labels.Get("i")) != i {
			t.Fatalf("wrong result at %d: %v", i, out.Items[0].Labels)
		}
	}
}

// entries returns n entries spread over streams distinct label sets, as
// docker discovery would produce them.
func entries(n, streams int) []ferry.Entry {
	out := make([]ferry.Entry, n)
	now := time.Unix(1700000000, 0)
	for i := range out {
		s := i % streams
		out[i] = ferry.Entry{
			Labels: labels.FromStrings(
				"__meta_docker_container_id", strings.Repeat("0123456789abcdef", 4)[:60]+string(rune('a'+s%26))+string(rune('a'+s/26%26)),
				"__meta_docker_container_label_com_docker_compose_service", "svc",
				"__meta_docker_container_log_stream", "stdout",
				"__meta_docker_container_name", "/container-"+string(rune('a'+s%26)),
			),
			Timestamp: now.Add(time.Duration(i)),
			Line:      "level=info msg=\"request served\" path=/api/v1/items status=200 duration=1.2ms",
		}
	}
	return out
}

// BenchmarkProcessor compares the caching Processor with the plain
// ProcessBuilder loop over the same entries.
func BenchmarkProcessor(b *testing.B) {
	r := relabel.MustNew(
		relabel.Replace([]string{"__meta_docker_container_name"}, "/(.*)", "container", "$1"),
		relabel.Replace([]string{"__meta_docker_container_label_com_docker_compose_service"}, "(.+)", "service", "$1"),
		relabel.LabelDrop("__meta_docker_container_(id|label_.*)"),
	)
	src := entries(1024, 20)
	b.Run("plain_loop", func(b *testing.B) {
		lb := labels.NewBuilder(labels.EmptyLabels())
		work := make([]ferry.Entry, len(src))
		b.ReportAllocs()
		for b.Loop() {
			copy(work, src)
			for i := range work {
				lb.Reset(work[i].Labels)
				if r.ProcessBuilder(lb) {
					work[i].Labels = lb.Labels()
				}
			}
		}
		b.ReportMetric(float64(b.N*len(src))/b.Elapsed().Seconds(), "entries/s")
	})
	b.Run("processor", func(b *testing.B) {
		p := relabel.Entries(r)
		work := make([]ferry.Entry, len(src))
		b.ReportAllocs()
		for b.Loop() {
			copy(work, src)
			p.Process(context.Background(), ferry.Batch[ferry.Entry]{Items: work})
		}
		b.ReportMetric(float64(b.N*len(src))/b.Elapsed().Seconds(), "entries/s")
	})
}
