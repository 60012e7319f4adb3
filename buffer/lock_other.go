//go:build !unix

package buffer

import (
	"os"
	"path/filepath"
)

// lockDir creates dir/lock; without flock only the in-process check
// guards the directory.
func lockDir(dir string) (*os.File, error) {
	return os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
}
