//go:build linux && (amd64 || arm64 || riscv64 || loong64 || s390x)

package buffer

import (
	"os"
	"syscall"
)

// startWriteBack starts the write-out of the dirty pages of f in [off,
// off+n) and returns without waiting for it (sync_file_range with
// SYNC_FILE_RANGE_WRITE). It is a hint: durability still comes from
// fsync, and an error is ignored.
func startWriteBack(f *os.File, off, n int64) {
	const syncFileRangeWrite = 2
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) {
		syscall.Syscall6(syscall.SYS_SYNC_FILE_RANGE, fd, uintptr(off), uintptr(n), syncFileRangeWrite, 0, 0)
	})
}
