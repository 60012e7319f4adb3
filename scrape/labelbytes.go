package scrape

import (
	"github.com/prometheus/prometheus/model/labels"
)

// A loop keeps the final labels of its series as bytes, not as one
// labels.Labels a series: all of them in one slice (loop.held), each series
// a range of it (cacheEntry.off and n). The bytes are in the encoding of
// Prometheus's default labels implementation (stringlabels): for each label
// in name order its name, then its value, each preceded by its length in
// one byte (0-254) or in 255 and three bytes little-endian. With that
// implementation a range is viewed as a labels.Labels without a copy (see
// viewLabels). One slice a target instead of a string a series saves the
// size-class rounding and the string header of each, and leaves the cache
// with no pointers for the garbage collector to trace: at 1000 targets of
// 550 series that is some 9 MB and half a million objects fewer.

// appendSize appends the encoded length n.
func appendSize(b []byte, n int) []byte {
	if n < 255 {
		return append(b, byte(n))
	}
	return append(b, 255, byte(n), byte(n>>8), byte(n>>16))
}

// readSize decodes the length at b[i:] and returns it with the offset
// after it.
func readSize(b []byte, i int) (n, next int) {
	if b[i] < 255 {
		return int(b[i]), i + 1
	}
	return int(b[i+1]) | int(b[i+2])<<8 | int(b[i+3])<<16, i + 4
}

// appendLabel appends one encoded label.
func appendLabel(b []byte, l labels.Label) []byte {
	b = appendSize(b, len(l.Name))
	b = append(b, l.Name...)
	b = appendSize(b, len(l.Value))
	return append(b, l.Value...)
}

// appendLabelBytes appends the encoding of ls.
func appendLabelBytes(b []byte, ls labels.Labels) []byte {
	ls.Range(func(l labels.Label) { b = appendLabel(b, l) })
	return b
}

// decodeLabels builds a labels.Labels from encoded bytes, copying them.
func decodeLabels(b []byte) labels.Labels {
	sb := labels.NewScratchBuilder(8)
	for i := 0; i < len(b); {
		n, j := readSize(b, i)
		name := string(b[j : j+n])
		v, k := readSize(b, j+n)
		sb.Add(name, string(b[k:k+v]))
		i = k + v
	}
	return sb.Labels()
}
