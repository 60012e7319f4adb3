package snappyenc

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/golang/snappy"
)

// TestDecodesWithGolangSnappy checks that what Encode writes is a Snappy
// block golang/snappy decodes to the input, for empty, small, repetitive,
// random-looking and large inputs, reusing one dst.
func TestDecodesWithGolangSnappy(t *testing.T) {
	var big bytes.Buffer
	for i := range 100000 {
		fmt.Fprintf(&big, "ts=%d level=info msg=\"request %d served\"\n", i, i*7919%1000003)
	}
	var dst []byte
	for _, src := range [][]byte{nil, []byte("a"), bytes.Repeat([]byte("abc"), 5000), big.Bytes()} {
		dst = Encode(dst, src)
		got, err := snappy.Decode(nil, dst)
		if err != nil {
			t.Fatalf("%d bytes: %v", len(src), err)
		}
		if !bytes.Equal(got, src) {
			t.Fatalf("%d bytes: decoded %d different bytes", len(src), len(got))
		}
	}
}

func ExampleEncode() {
	block := Encode(nil, []byte("hello, hello, hello, hello"))
	line, _ := snappy.Decode(nil, block)
	fmt.Println(string(line))
	// Output: hello, hello, hello, hello
}
