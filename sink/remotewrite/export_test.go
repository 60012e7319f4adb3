package remotewrite

import "github.com/ferrydev/ferry"

// TestEncoder gives the external tests' end-to-end harness the sink's own
// encoder, which it measures alone as part of the limit of the path.
type TestEncoder struct{ e encoder }

// EncodeV1 returns the remote-write 1.0 protobuf of samples.
func (t *TestEncoder) EncodeV1(samples []ferry.Sample) []byte {
	t.e.pb = t.e.encodeV1At(samples, nil, 0)
	return t.e.pb
}

// Compress returns pb snappy-compressed, as the sink sends it.
func (t *TestEncoder) Compress(pb []byte) []byte { return t.e.compress(pb) }

// TargetSamples returns the samples of targets copies of a text page, each
// with its own instance label (see targetSamples).
func TargetSamples(page []byte, targets int) ([]ferry.Sample, error) {
	return targetSamples(page, targets)
}
