//go:build unix

package filetail

import (
	"os"
	"syscall"
)

// identOf returns the device and inode of fi, or zeros when the platform
// does not report them.
func identOf(fi os.FileInfo) ident {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return ident{dev: uint64(st.Dev), ino: uint64(st.Ino)} //nolint:unconvert // types differ per platform
	}
	return ident{}
}
