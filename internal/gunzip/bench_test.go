package gunzip

import (
	"bytes"
	"compress/gzip"
	"testing"

	kgzip "github.com/klauspost/compress/gzip"
)

// BenchmarkGunzip decompresses a node_exporter page, gzipped at the
// default level as client_golang's promhttp serves it and at BestSpeed,
// with Append and, as the baseline of the same run, with
// klauspost/compress's Reader the way scrape used it (one Reader Reset
// for each page, read into a reused buffer). MB/s are of the page.
func BenchmarkGunzip(b *testing.B) {
	data := page(b)
	for _, level := range []int{gzip.BestSpeed, gzip.DefaultCompression} {
		z := gz(b, data, level)
		name := map[int]string{gzip.BestSpeed: "fast", gzip.DefaultCompression: "default"}[level]
		b.Run(name+"/append", func(b *testing.B) {
			out := make([]byte, 0, 2*len(data))
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				var err error
				if out, err = Append(out[:0], z, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/klauspost", func(b *testing.B) {
			var out bytes.Buffer
			r, _ := kgzip.NewReader(bytes.NewReader(z))
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if err := r.Reset(bytes.NewReader(z)); err != nil {
					b.Fatal(err)
				}
				out.Reset()
				if _, err := out.ReadFrom(r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
