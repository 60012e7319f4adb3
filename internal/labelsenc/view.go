//go:build !slicelabels && !dedupelabels

package labelsenc

import (
	"unsafe"

	"github.com/prometheus/prometheus/model/labels"
)

// View returns the labels encoded in b. With Prometheus's default labels
// implementation a labels.Labels is one string holding exactly that
// encoding, and b becomes it without a copy: b must not change afterwards
// (write such bytes only by appending). Should a later Prometheus change
// the layout, ZeroCopy is false and every view is a copy.
func View(b []byte) labels.Labels {
	if !ZeroCopy {
		return Decode(b)
	}
	return view(b)
}

// view is b as a labels.Labels, if a labels.Labels is a string.
func view(b []byte) labels.Labels {
	s := unsafe.String(unsafe.SliceData(b), len(b))
	return *(*labels.Labels)(unsafe.Pointer(&s))
}

// Raw returns the encoding of ls without a copy, if ZeroCopy.
func Raw(ls labels.Labels) (string, bool) {
	if !ZeroCopy {
		return "", false
	}
	return *(*string)(unsafe.Pointer(&ls)), true
}

// ZeroCopy reports whether a labels.Labels is a string holding the
// encoding Append writes: then View and Raw need not copy.
var ZeroCopy = viewsLabels()

func viewsLabels() bool {
	if unsafe.Sizeof(labels.Labels{}) != unsafe.Sizeof("") {
		return false
	}
	long := string(make([]byte, 300))
	for _, want := range []labels.Labels{
		labels.EmptyLabels(),
		labels.FromStrings("__name__", "up", "instance", "a:9100", "job", "node"),
		labels.FromStrings("a", "", "b", long, long, "c"),
	} {
		got := view(Append(nil, want))
		if !labels.Equal(got, want) || got.Hash() != want.Hash() || got.String() != want.String() {
			return false
		}
	}
	return true
}
