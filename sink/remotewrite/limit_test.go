package remotewrite_test

import (
	"bytes"
	"fmt"
	"runtime"
	"strconv"
	"time"
	"unsafe"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"

	"github.com/ferrydev/ferry/internal/cpuclock"
	"github.com/ferrydev/ferry/internal/gunzip"
	"github.com/ferrydev/ferry/sink/remotewrite"
)

// limit is what a scrape-and-remote-write agent cannot avoid per sample of
// the benchmark's page, each part measured alone on one thread: gunzip of
// the page (Ferry's internal/gunzip, the fastest Go inflater we know;
// its BenchmarkGunzip compares klauspost/compress's), finding each
// sample's series and value in the text (a line split and a
// ParseFloat, less than any parser does), the remote-write 1.0 protobuf of
// the samples (the sink's own encoder, in requests of
// DefaultMaxSamplesPerSend), and its snappy compression. It leaves out the
// HTTP both ways, the scheduling and the garbage collection, which an agent
// keeps small but cannot make zero; so an agent's cost divided by the sum
// of these says how much of its work is not the work itself.
type limit struct {
	gunzip, split, encode, snappy time.Duration // per sample
	textparse                     time.Duration // per sample, Prometheus's parser, for reference
}

func (l limit) sum() time.Duration { return l.gunzip + l.split + l.encode + l.snappy }

// rate is the samples per CPU second of the limit.
func (l limit) rate() float64 { return 1 / l.sum().Seconds() }

func (l limit) String() string {
	return fmt.Sprintf("limit %.0f samples per CPU second: gunzip %.0f ns + split %.0f ns + encode %.0f ns + snappy %.0f ns per sample (Prometheus textparse alone: %.0f ns)",
		l.rate(), ns(l.gunzip), ns(l.split), ns(l.encode), ns(l.snappy), ns(l.textparse))
}

func ns(d time.Duration) float64 { return float64(d) / float64(time.Nanosecond) }

// measureLimit measures the limit of the page as gz serves it, for samples
// that carry the target labels instance and job.
func measureLimit(page, gz []byte) (limit, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var l limit
	const rounds = 200

	// The samples of several targets' pages, a request's worth; n is the
	// samples of one page.
	one, err := remotewrite.TargetSamples(page, 1)
	if err != nil {
		return l, err
	}
	n := len(one)
	samples, err := remotewrite.TargetSamples(page, (remotewrite.DefaultMaxSamplesPerSend+n-1)/n)
	if err != nil {
		return l, err
	}

	out := make([]byte, 0, len(page)+64)
	t0 := cpuclock.Thread()
	for range rounds {
		if out, err = gunzip.Append(out[:0], gz, 0); err != nil {
			return l, err
		}
	}
	l.gunzip = (cpuclock.Thread() - t0) / time.Duration(rounds*n)
	if !bytes.Equal(out, page) {
		return l, fmt.Errorf("gunzip: the page came out different")
	}

	var sum float64
	t0 = cpuclock.Thread()
	for range rounds {
		sum += splitPage(page)
	}
	l.split = (cpuclock.Thread() - t0) / time.Duration(rounds*n)

	t0 = cpuclock.Thread()
	for range rounds / 10 {
		p := textparse.NewPromParser(page, labels.NewSymbolTable(), false)
		for {
			et, err := p.Next()
			if err != nil {
				break
			}
			if et == textparse.EntrySeries {
				_, _, v := p.Series()
				sum += v
			}
		}
	}
	l.textparse = (cpuclock.Thread() - t0) / time.Duration(rounds/10*n)

	var enc remotewrite.TestEncoder
	var pb []byte
	t0 = cpuclock.Thread()
	for range rounds {
		pb = enc.EncodeV1(samples)
	}
	l.encode = (cpuclock.Thread() - t0) / time.Duration(rounds*len(samples))
	t0 = cpuclock.Thread()
	var z []byte
	for range rounds {
		z = enc.Compress(pb)
	}
	l.snappy = (cpuclock.Thread() - t0) / time.Duration(rounds*len(samples))
	if len(z) == 0 || sum == 0 {
		return l, fmt.Errorf("nothing encoded")
	}
	return l, nil
}

// splitPage finds each sample line's series and value and parses the
// value; it returns their sum, so that nothing is optimised away.
func splitPage(page []byte) float64 {
	var sum float64
	for len(page) > 0 {
		i := bytes.IndexByte(page, '\n')
		if i < 0 {
			i = len(page)
		}
		line := page[:i]
		page = page[min(i+1, len(page)):]
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		sp := bytes.LastIndexByte(line, ' ')
		if sp < 0 {
			continue
		}
		val := line[sp+1:]
		v, err := strconv.ParseFloat(unsafe.String(unsafe.SliceData(val), len(val)), 64)
		if err == nil {
			sum += v
		}
	}
	return sum
}
