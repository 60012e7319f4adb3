package remotewrite

import (
	"context"
	"math"
	"sync"
	"time"

	"github.com/ferrydev/ferry"
)

// A target's samples go to one shard (targetKeys), which sends one request
// at a time: at most MaxSamplesPerSend samples a round trip. That is plenty
// for most targets and too little for some (kube-state-metrics of a large
// cluster, a federation endpoint) when the receiver is far away: 2000
// samples every 100 ms is 20,000 a second, whatever the shard count. So a
// target that needs half a shard's sending time or more is spread: its
// series are keyed by their own hash, as Prometheus keys every series, and
// take every shard there is, each series still always the same one.
//
// The spread targets change only when the shards are replaced, after the
// old ones drained (reshard): a series that moved to another shard could
// otherwise overtake its own samples still queued on the old one.

// targetRates counts, between two reconsiderations of the shard count,
// the samples each target sent.
type targetRates struct {
	mu      sync.Mutex
	samples map[uint64]int64 // by target key
}

func (r *targetRates) add(key uint64, n int) {
	r.mu.Lock()
	if r.samples == nil {
		r.samples = map[uint64]int64{}
	}
	r.samples[key] += int64(n)
	r.mu.Unlock()
}

// take returns the counts so far and starts anew.
func (r *targetRates) take() map[uint64]int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.samples
	r.samples = nil
	return m
}

// spreading is the reshard loop's record of every target's rate, in
// samples per second smoothed over spreadWindow, and of which targets are
// spread.
type spreading map[uint64]*targetRate

type targetRate struct {
	rate   float64
	spread bool
}

// spreadWindow is the time constant of the smoothed rates, in reshard
// intervals: 30 s by default, long enough that a target scraped once a
// minute is judged by its minute, not by the interval that holds its page,
// and short enough that a target that needs two shards or more is spread
// at the first reconsideration.
const spreadWindow = 3

// update records an interval of seconds, of a reshard loop reconsidering
// every so often, in which the targets of sent sent the samples it counts,
// each sample taking perSample seconds of a shard's time, and reports
// whether the set of spread targets changed. A target is spread once its
// smoothed rate, with the reshard formula's 20 % to spare, takes half a
// shard or more, and until it takes less than a quarter; a target that
// takes less than a hundredth is forgotten.
func (sp spreading) update(sent map[uint64]int64, perSample, seconds float64, every time.Duration) (changed bool) {
	w := 1 - math.Exp(-seconds/(spreadWindow*every.Seconds()))
	need := func(rate float64) float64 { return perSample * rate * 1.2 } // shards
	for key, n := range sent {
		if sp[key] == nil && need(w*float64(n)/seconds) >= 0.01 {
			sp[key] = &targetRate{}
		}
	}
	for key, t := range sp {
		t.rate += w * (float64(sent[key])/seconds - t.rate)
		shards := need(t.rate)
		switch {
		case !t.spread && shards >= 0.5, t.spread && shards < 0.25:
			t.spread = !t.spread
			changed = true
		}
		if !t.spread && shards < 0.01 {
			delete(sp, key)
		}
	}
	return changed
}

// set returns the spread targets as Send reads them.
func (sp spreading) set() map[uint64]struct{} {
	var m map[uint64]struct{}
	for key, t := range sp {
		if t.spread {
			if m == nil {
				m = map[uint64]struct{}{}
			}
			m[key] = struct{}{}
		}
	}
	return m
}

// addSpread queues run, samples of a spread target, each on the shard its
// series' hash picks, in the order of run on each. It returns how many
// samples were queued.
func (s *Sink) addSpread(ctx context.Context, shards []*shard, run []ferry.Sample, ack *ferry.Ack) (int, error) {
	// A counting sort of run by shard into scratch, so that each shard
	// takes its part at once.
	sp, _ := s.spreadScratch.Get().(*spreadScratch)
	if sp == nil {
		sp = new(spreadScratch)
	}
	defer s.spreadScratch.Put(sp)
	n := len(shards)
	sp.of = sp.of[:0]
	sp.starts = append(sp.starts[:0], make([]int, n+1)...)
	for i := range run {
		to := int(run[i].Labels.Hash() % uint64(n))
		sp.of = append(sp.of, int32(to))
		sp.starts[to+1]++
	}
	for i := 1; i <= n; i++ {
		sp.starts[i] += sp.starts[i-1]
	}
	sp.sorted = append(sp.sorted[:0], make([]ferry.Sample, len(run))...)
	defer clear(sp.sorted) // the pool must not keep scrape caches' labels reachable
	next := append(sp.next[:0], sp.starts[:n]...)
	for i := range run {
		to := sp.of[i]
		sp.sorted[next[to]] = run[i]
		next[to]++
	}
	sp.next = next
	done := 0
	for to, sh := range shards {
		part := sp.sorted[sp.starts[to]:sp.starts[to+1]]
		if len(part) == 0 {
			continue
		}
		added, err := sh.add(ctx, s.closing, part, ack)
		done += added
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

// spreadScratch is addSpread's reusable memory.
type spreadScratch struct {
	of           []int32 // the shard of each sample of the run
	starts, next []int   // where each shard's part starts in sorted, and its next free slot
	sorted       []ferry.Sample
}
