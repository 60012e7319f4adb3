//go:build !slicelabels && !dedupelabels

package scrape

import (
	"unsafe"

	"github.com/prometheus/prometheus/model/labels"
)

// viewLabels returns the labels encoded in b. With Prometheus's default
// labels implementation a labels.Labels is one string holding exactly
// that encoding, and b becomes it without a copy: b must not change
// afterwards, which holds for loop.held and the scrape arenas (written
// only by appending). Should a later Prometheus change the layout, the
// check in viewsLabels fails and every view is a copy.
func viewLabels(b []byte) labels.Labels {
	if !zeroCopy {
		return decodeLabels(b)
	}
	s := unsafe.String(unsafe.SliceData(b), len(b))
	return *(*labels.Labels)(unsafe.Pointer(&s))
}

var zeroCopy = viewsLabels()

// viewsLabels reports whether a labels.Labels is a string holding the
// encoding appendLabelBytes writes: then viewLabels need not copy.
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
		b := appendLabelBytes(nil, want)
		s := unsafe.String(unsafe.SliceData(b), len(b))
		got := *(*labels.Labels)(unsafe.Pointer(&s))
		if !labels.Equal(got, want) || got.Hash() != want.Hash() || got.String() != want.String() {
			return false
		}
	}
	return true
}
