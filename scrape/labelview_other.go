//go:build slicelabels || dedupelabels

package scrape

import "github.com/prometheus/prometheus/model/labels"

// viewLabels returns the labels encoded in b. With the slicelabels and
// dedupelabels implementations that is a copy.
func viewLabels(b []byte) labels.Labels { return decodeLabels(b) }

const zeroCopy = false
