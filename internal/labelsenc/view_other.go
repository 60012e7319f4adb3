//go:build slicelabels || dedupelabels

package labelsenc

import "github.com/prometheus/prometheus/model/labels"

// View returns the labels encoded in b. With the slicelabels and
// dedupelabels implementations that is a copy.
func View(b []byte) labels.Labels { return Decode(b) }

// Raw returns the encoding of ls without a copy: never, with the
// slicelabels and dedupelabels implementations.
func Raw(labels.Labels) (string, bool) { return "", false }

// ZeroCopy is false: with the slicelabels and dedupelabels implementations
// View copies.
const ZeroCopy = false
