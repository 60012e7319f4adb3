package promsd

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/prometheus/prometheus/model/labels"
)

// podGroups returns groups shaped as Prometheus's kubernetes pod role
// sends them: one group per pod with about 25 pod labels, and three
// targets of 8 container labels each.
func podGroups(pods int) []*targetgroup.Group {
	out := make([]*targetgroup.Group, 0, pods)
	for i := range pods {
		g := &targetgroup.Group{Source: fmt.Sprintf("pod/ns-%d/pod-%d", i%50, i), Labels: model.LabelSet{}}
		for j := range 25 {
			g.Labels[model.LabelName(fmt.Sprintf("__meta_kubernetes_pod_label_key_%d", j))] = model.LabelValue(fmt.Sprintf("value-%d-%d", i, j))
		}
		for c := range 3 {
			t := model.LabelSet{"__address__": model.LabelValue(fmt.Sprintf("10.0.%d.%d:%d", i/256, i%256, 8080+c))}
			for j := range 8 {
				t[model.LabelName(fmt.Sprintf("__meta_kubernetes_pod_container_key_%d", j))] = model.LabelValue(fmt.Sprintf("c%d-%d", c, j))
			}
			g.Targets = append(g.Targets, t)
		}
		out = append(out, g)
	}
	return out
}

// modelAccumulator is the simplest accumulator, and the one this package
// had first: it keeps Prometheus's groups and builds every target's labels
// for every set. It is the reference of TestAccumulatorAgainstModel and
// the baseline of BenchmarkAccumulator.
type modelAccumulator struct {
	groups map[string]*targetgroup.Group
	lb     *labels.Builder
}

func (a *modelAccumulator) update(tgs []*targetgroup.Group) {
	for _, tg := range tgs {
		if tg == nil {
			continue
		}
		if len(tg.Targets) == 0 {
			delete(a.groups, tg.Source)
			continue
		}
		a.groups[tg.Source] = tg
	}
}

func (a *modelAccumulator) targets() []labels.Labels {
	var out []labels.Labels
	for _, s := range slices.Sorted(maps.Keys(a.groups)) {
		g := a.groups[s]
		for _, t := range g.Targets {
			out = append(out, GroupTarget(a.lb, g, t))
		}
	}
	return out
}

type accumulatorI interface {
	update([]*targetgroup.Group)
	targets() []labels.Labels
}

// TestAccumulatorAgainstModel sends random updates (new, changed, emptied
// and nil groups) to the accumulator and the model and requires the same
// sets.
func TestAccumulatorAgainstModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	acc := newAccumulator()
	m := &modelAccumulator{groups: map[string]*targetgroup.Group{}, lb: labels.NewBuilder(labels.EmptyLabels())}
	for step := range 2000 {
		var tgs []*targetgroup.Group
		for range rng.IntN(4) {
			src := fmt.Sprintf("src-%d", rng.IntN(20))
			g := &targetgroup.Group{Source: src, Labels: model.LabelSet{"g": model.LabelValue(fmt.Sprint(step))}}
			if rng.IntN(4) == 0 {
				tgs = append(tgs, g, nil) // emptied, and a nil group
				continue
			}
			for i := range rng.IntN(4) + 1 {
				g.Targets = append(g.Targets, model.LabelSet{"__address__": model.LabelValue(fmt.Sprintf("%s:%d", src, i)),
					"g": model.LabelValue(fmt.Sprint(rng.IntN(2)))})
			}
			tgs = append(tgs, g)
		}
		acc.update(tgs)
		m.update(tgs)
		if got, want := strs(acc.targets()), strs(m.targets()); !slices.Equal(got, want) {
			t.Fatalf("step %d:\n got %v\nwant %v", step, got, want)
		}
	}
}

// BenchmarkAccumulator measures what an accumulator keeps for 10,000 pod
// groups (30,000 targets) once Prometheus's groups are dropped
// (held-bytes/target: the heap it retains, the last set sent included),
// and the cost of one update of one group followed by the union sent
// (ns/op, B/op), for the accumulator and the model (the baseline).
func BenchmarkAccumulator(b *testing.B) {
	const pods = 10000
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	for _, bc := range []struct {
		name string
		acc  func() accumulatorI
	}{
		{"model", func() accumulatorI {
			return &modelAccumulator{groups: map[string]*targetgroup.Group{}, lb: labels.NewBuilder(labels.EmptyLabels())}
		}},
		{"held", func() accumulatorI { return newAccumulator() }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			before := heap()
			acc := bc.acc()
			acc.update(podGroups(pods))
			set := acc.targets()
			held := heap() - before
			one := podGroups(1)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				acc.update(one)
				set = acc.targets()
			}
			b.StopTimer()
			if len(set) != 3*pods {
				b.Fatalf("%d targets", len(set))
			}
			b.ReportMetric(float64(held)/(3*pods), "held-bytes/target")
		})
	}
}

func TestAccumulatorMerge(t *testing.T) {
	acc := newAccumulator()
	acc.update([]*targetgroup.Group{
		group("b", model.LabelSet{"g": "1", "shared": "group"}, model.LabelSet{"__address__": "b1", "shared": "target"}),
		group("a", model.LabelSet{"g": "2"}, model.LabelSet{"__address__": "a1"}, model.LabelSet{"__address__": "a2"}),
	})
	want := []string{`{__address__="a1", g="2"}`, `{__address__="a2", g="2"}`, `{__address__="b1", g="1", shared="target"}`}
	if got := strs(acc.targets()); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	acc.update([]*targetgroup.Group{group("a", nil), nil})
	want = want[2:]
	if got := strs(acc.targets()); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after removing a: got %v, want %v", got, want)
	}
}
