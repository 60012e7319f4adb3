// Package labelsenc writes and reads label sets in the encoding of
// Prometheus's default labels implementation (stringlabels): for each label
// in name order its name, then its value, each preceded by its length in
// one byte (0-254) or in 255 and three bytes little-endian. With that
// implementation a labels.Labels is a string holding exactly those bytes,
// so bytes written here become a labels.Labels without a copy (View), and
// a labels.Labels gives its bytes to an encoder without decoding (Raw).
// Other builds (slicelabels, dedupelabels) copy instead, and so does a
// Prometheus whose layout stopped matching (ZeroCopy reports which).
package labelsenc

import (
	"github.com/prometheus/prometheus/model/labels"
)

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

// AppendLabel appends the encoding of one label.
func AppendLabel(b []byte, l labels.Label) []byte {
	b = appendSize(b, len(l.Name))
	b = append(b, l.Name...)
	b = appendSize(b, len(l.Value))
	return append(b, l.Value...)
}

// Append appends the encoding of ls.
func Append(b []byte, ls labels.Labels) []byte {
	ls.Range(func(l labels.Label) { b = AppendLabel(b, l) })
	return b
}

// Decode builds a labels.Labels from encoded bytes, copying them.
func Decode(b []byte) labels.Labels {
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
