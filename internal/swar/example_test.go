package swar_test

import (
	"fmt"

	"github.com/ferrydev/ferry/internal/swar"
)

// The first byte of a word that is a space or '=', eight bytes tested at
// once.
func Example() {
	s := "level=info msg=ok"
	w := swar.Load(s, 0)
	fmt.Println(swar.First(swar.NotPrint(w) | swar.HasByte(w, '=')))
	// Output: 5
}
