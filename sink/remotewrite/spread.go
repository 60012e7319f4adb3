package remotewrite

import (
	"context"
	"sync"

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

// spreading is the reshard loop's record of the spread targets: for each,
// how many reconsiderations in a row found it needing less than a quarter
// of a shard.
type spreading map[uint64]int

// spreadPatience is how many reconsiderations in a row a spread target must
// need little before it is spread no longer: an interval in which its
// samples waited for a drain (see reshard) tells little of its rate.
const spreadPatience = 3

// update records an interval of seconds in which the targets of sent sent
// the samples it counts, each sample taking perSample seconds of a shard's
// time, and reports whether the set of spread targets changed. A target is
// spread once its rate, with the reshard formula's 20 % to spare, takes
// half a shard or more, and stays spread until it took less than a quarter
// (or sent nothing) spreadPatience times in a row, so that a target near
// the line does not make the shards drain at every interval.
func (sp spreading) update(sent map[uint64]int64, perSample, seconds float64) (changed bool) {
	need := func(key uint64) float64 { return perSample * float64(sent[key]) / seconds * 1.2 }
	for key, low := range sp {
		switch {
		case need(key) >= 0.25:
			sp[key] = 0
		case low+1 >= spreadPatience:
			delete(sp, key)
			changed = true
		default:
			sp[key] = low + 1
		}
	}
	for key := range sent {
		if _, ok := sp[key]; !ok && need(key) >= 0.5 {
			sp[key] = 0
			changed = true
		}
	}
	return changed
}

// set returns the spread targets as Send reads them.
func (sp spreading) set() map[uint64]struct{} {
	if len(sp) == 0 {
		return nil
	}
	m := make(map[uint64]struct{}, len(sp))
	for key := range sp {
		m[key] = struct{}{}
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
