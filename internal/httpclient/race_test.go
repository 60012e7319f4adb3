//go:build race

package httpclient

// raceEnabled: the race detector makes sync.Pool drop some of what is put
// back, so allocation counts say nothing under it.
const raceEnabled = true
