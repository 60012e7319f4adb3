package filetail

import (
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ident is a file's identity on its file system.
type ident struct{ dev, ino uint64 }

func (i ident) known() bool { return i != ident{} }

// pos is a read position: the offset just past the last line handed on, in
// the file known by id and by the hash of its first fpLen bytes.
type pos struct {
	off   int64
	id    ident
	fpLen int
	fp    uint64
}

// String encodes p as stored in the positions file:
// "<offset> <device> <inode> <fingerprint length> <fingerprint hash, hex>".
func (p pos) String() string {
	b := make([]byte, 0, 64)
	b = strconv.AppendInt(b, p.off, 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, p.id.dev, 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, p.id.ino, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(p.fpLen), 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, p.fp, 16)
	return string(b)
}

// parsePos decodes a stored position. A bare number is accepted as an offset
// with unknown identity.
func parsePos(s string) (pos, bool) {
	f := strings.Fields(s)
	var p pos
	var err error
	if len(f) == 1 {
		p.off, err = strconv.ParseInt(f[0], 10, 64)
		return p, err == nil && p.off >= 0
	}
	if len(f) != 5 {
		return pos{}, false
	}
	var n int64
	if p.off, err = strconv.ParseInt(f[0], 10, 64); err != nil || p.off < 0 {
		return pos{}, false
	}
	if p.id.dev, err = strconv.ParseUint(f[1], 10, 64); err != nil {
		return pos{}, false
	}
	if p.id.ino, err = strconv.ParseUint(f[2], 10, 64); err != nil {
		return pos{}, false
	}
	if n, err = strconv.ParseInt(f[3], 10, 32); err != nil || n < 0 {
		return pos{}, false
	}
	p.fpLen = int(n)
	if p.fp, err = strconv.ParseUint(f[4], 16, 64); err != nil {
		return pos{}, false
	}
	return p, true
}

// fingerprint hashes the first min(size, max) bytes of f.
func fingerprint(f *os.File, size int64, maxLen int) (int, uint64, error) {
	n := int(min(size, int64(maxLen)))
	if n <= 0 {
		return 0, 0, nil
	}
	buf := make([]byte, n)
	m, err := f.ReadAt(buf, 0)
	if m < n {
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		return 0, 0, err
	}
	return n, hashBytes(buf), nil
}

func hashBytes(b []byte) uint64 {
	h := fnv.New64a()
	h.Write(b)
	return h.Sum64()
}

// prefixMatches reports whether the first n bytes of f hash to fp.
func prefixMatches(f *os.File, n int, fp uint64) bool {
	if n == 0 {
		return true
	}
	buf := make([]byte, n)
	m, _ := f.ReadAt(buf, 0)
	return m == n && hashBytes(buf) == fp
}

// findRotated looks, in the directory of path, for the file that was known
// by p before a rotation: the same device and inode (renamed), or, when
// byFingerprint is set, a different file that starts with the same bytes (a
// copy made by copytruncate). Candidates must be at least p.off long and
// not compressed. It returns an open file, or nil.
func findRotated(path string, p pos, byFingerprint bool, exclude ident) *os.File {
	dir := filepath.Dir(path)
	d, err := os.Open(dir)
	if err != nil {
		return nil
	}
	names, _ := d.Readdirnames(10000)
	d.Close()
	var best *os.File
	var bestMod int64
	for _, name := range names {
		full := filepath.Join(dir, name)
		if full == path || strings.HasSuffix(name, ".gz") || strings.HasSuffix(name, ".bz2") ||
			strings.HasSuffix(name, ".zst") || strings.HasSuffix(name, ".xz") {
			continue
		}
		fi, err := os.Stat(full)
		if err != nil || !fi.Mode().IsRegular() || fi.Size() < p.off {
			continue
		}
		id := identOf(fi)
		if id.known() && id == exclude {
			continue
		}
		sameID := p.id.known() && id == p.id
		if !sameID && (!byFingerprint || p.fpLen == 0) {
			continue
		}
		f, err := os.Open(full)
		if err != nil {
			continue
		}
		if !prefixMatches(f, p.fpLen, p.fp) {
			f.Close()
			continue
		}
		if sameID {
			if best != nil {
				best.Close()
			}
			return f
		}
		if best == nil || fi.ModTime().UnixNano() > bestMod {
			if best != nil {
				best.Close()
			}
			best, bestMod = f, fi.ModTime().UnixNano()
			continue
		}
		f.Close()
	}
	return best
}
