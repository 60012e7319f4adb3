package labelsenc

import (
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
)

// canonical re-encodes ls with Prometheus's own builder.
func canonical(ls labels.Labels) labels.Labels {
	sb := labels.NewScratchBuilder(8)
	ls.Range(func(l labels.Label) { sb.Add(l.Name, l.Value) })
	return sb.Labels()
}

func TestLabelBytes(t *testing.T) {
	if !ZeroCopy {
		t.Error("labels.Labels is no longer the string Append writes: every sample's labels are copied (see viewsLabels)")
	}
	long, huge := strings.Repeat("v", 254), strings.Repeat("w", 70000)
	for _, ls := range []labels.Labels{
		labels.EmptyLabels(),
		labels.FromStrings("__name__", "up"),
		labels.FromStrings("__name__", "m", "a", "", "b", long, long+"x", huge),
		labels.FromStrings("ü", "ö", "job", "node"),
	} {
		b := Append(nil, ls)
		if raw, ok := Raw(ls); !ok || raw != string(b) {
			t.Errorf("%s: Raw gives %q, %v", ls, raw, ok)
		}
		for _, got := range []labels.Labels{View(b), Decode(b)} {
			if !labels.Equal(got, ls) || got.String() != ls.String() || !labels.Equal(canonical(got), ls) {
				t.Errorf("%s: got %s", ls, got)
			}
		}
	}
}

func FuzzLabelBytes(f *testing.F) {
	f.Add("__name__=up,instance=h:1,job=j")
	f.Add("a=,b=2")
	f.Fuzz(func(t *testing.T, set string) {
		b := labels.NewBuilder(labels.EmptyLabels())
		for _, kv := range strings.Split(set, ",") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				b.Set(k, v)
			}
		}
		ls := b.Labels()
		enc := Append(nil, ls)
		for _, got := range []labels.Labels{View(enc), Decode(enc)} {
			if !labels.Equal(got, ls) || got.Hash() != ls.Hash() {
				t.Fatalf("%s: got %s", ls, got)
			}
		}
	})
}
