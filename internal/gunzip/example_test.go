package gunzip_test

import (
	"bytes"
	"compress/gzip"
	"fmt"

	"github.com/ferrydev/ferry/internal/gunzip"
)

// A gzip body decompressed whole, appended to a buffer the caller keeps,
// and a limit that stops a body decompressing to more.
func Example() {
	var body bytes.Buffer
	zw := gzip.NewWriter(&body)
	zw.Write([]byte("up 1\n"))
	zw.Close()

	page, err := gunzip.Append(nil, body.Bytes(), 1<<20)
	fmt.Printf("%q %v\n", page, err)
	_, err = gunzip.Append(nil, body.Bytes(), 4)
	fmt.Println(err)
	// Output:
	// "up 1\n" <nil>
	// gunzip: decompressed data over the limit
}
