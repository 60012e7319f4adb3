package ferry

import (
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

// Entry is one log line with its stream labels.
//
// Labels identify the stream (Loki's stream selector); labels whose names
// start with "__" are internal and are removed by sinks before delivery.
// Metadata is Loki's structured metadata: per-entry key/value pairs that are
// not part of the stream identity. The zero Timestamp means "not known"; sinks
// that need one use the time of sending.
type Entry struct {
	Labels    labels.Labels
	Timestamp time.Time
	Line      string
	Metadata  labels.Labels
}

// Size is the number of payload bytes of e: its line plus its metadata. It is
// what byte-based limits and the pipeline's byte counters measure.
func (e *Entry) Size() int {
	if e.Metadata.IsEmpty() {
		return len(e.Line)
	}
	return e.sizeWithMetadata()
}

func (e *Entry) sizeWithMetadata() int {
	n := len(e.Line)
	e.Metadata.Range(func(l labels.Label) { n += len(l.Name) + len(l.Value) })
	return n
}

// Sample is one value of one series at one time, as Prometheus stores it.
//
// T is milliseconds since the Unix epoch. Labels hold the full series
// identity including __name__. Native histograms and exemplars will be added
// as further optional fields of this type, so that one batch type carries
// every kind of sample.
type Sample struct {
	Labels labels.Labels
	T      int64
	V      float64
}

// Size is the approximate encoded size of s in bytes, used by byte counters.
func (s *Sample) Size() int { return int(s.Labels.ByteSize()) + 16 }
