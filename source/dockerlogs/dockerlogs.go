// Package dockerlogs follows the logs of Docker containers through the
// engine API, as Alloy's loki.source.docker does, but delivers every line at
// least once across restarts of the program, of the containers and of the
// engine.
//
// A Source takes the targets of a Docker discoverer (package
// discovery/docker), one reader per container (targets are deduplicated by
// __meta_docker_container_id, the first wins). For each line it makes an
// entry whose labels are the target's labels plus
// __meta_docker_container_log_stream ("stdout" or "stderr"), relabeled by
// Rules and stripped of every label starting with "__".
//
// Positions: per container, the timestamp in nanoseconds of the last line
// whose batch was acknowledged (settled), and how many lines carried that
// same timestamp, stored under "docker/<container id>" in a positions file.
// A reader resumes with since=<that timestamp> and skips what was already
// delivered. A stopped container keeps its position; a removed one loses it
// once its last lines were acknowledged. When a batch fails (an outcome for
// which ferry.Settled is false), the reader reads again from the last
// settled position, with backoff while nothing gets through.
//
// Lines: the daemon splits lines over 16 KiB into parts; they are joined
// again up to MaxLineSize, and longer ones are truncated or dropped
// (LongLines), counted by the Reporter. A TTY container's lines lose the
// carriage return the terminal adds; other containers' lines are kept as
// written. A line's timestamp is the daemon's, with nanoseconds.
//
// A Docker discoverer lists running containers only, as Prometheus does, so
// by default a container that exited before it was listed (a short-lived
// one, or one that ran while the program was down) is never read. Give the
// discoverer IncludeStopped to read those too: a reader then also reads
// exited containers (once; again only if they are started again).
//
// Known limit: the daemon timestamps stdout and stderr separately, so in
// the file a line of one stream can follow a later-stamped line of the
// other. Resuming after such a pair at the exact moment of a restart of the
// program can repeat (never lose) a line. And the engine keeps only what its
// log rotation leaves (json-file max-size and max-file): a line rotated away
// before it was read is lost. Docker 20.10, following a log that rotates
// faster than it is read, was seen to skip a rotated file. Within a Run the
// reading after the container stopped skips the lines read before by their
// stream and timestamp, so it recovers such lines if they are still on disk
// and within the position's window (the last second before the newest line
// read, at most the last 1024 lines), unless one stamped alike on the same
// stream was read. A reading that resumes from a stored position (a new
// Run, as after a restart of the program) or from the last acknowledged one
// (after a failed batch) skips by count instead: it can skip such a line
// and repeat another.
package dockerlogs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
	"github.com/docker/docker/errdefs"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/ferrydev/ferry"
	"github.com/ferrydev/ferry/discovery/docker"
	"github.com/ferrydev/ferry/internal/arena"
	"github.com/ferrydev/ferry/internal/lifecycle"
	"github.com/ferrydev/ferry/internal/retry"
	"github.com/ferrydev/ferry/positions"
	"github.com/ferrydev/ferry/relabel"
	"github.com/ferrydev/ferry/source"
)

// LabelLogStream is the meta label with a line's stream, "stdout" or
// "stderr" (a TTY container's merged stream is "stdout"). It is
// relabel.DockerLogStreamLabel.
const LabelLogStream = relabel.DockerLogStreamLabel

// PositionPrefix starts the keys of this source in a positions file; the
// container ID follows.
const PositionPrefix = "docker/"

// Defaults of the Source's zero fields.
const (
	DefaultMaxLineSize     = 256 << 10
	DefaultBatchSize       = 1000
	DefaultBatchBytes      = 1 << 20
	DefaultLinger          = 50 * time.Millisecond
	DefaultSaveInterval    = 10 * time.Second
	DefaultRefreshInterval = 5 * time.Second
)

// InspectLimit bounds the container inspections a Run has under way at a
// time: a burst of readers, as when all are woken at once, must not open
// hundreds of connections to the engine.
const InspectLimit = 8

// Source follows the logs of the containers it is given as targets. Its
// zero value is ready to use: it connects like discovery/docker (Host,
// TLS, or the environment), keeps positions in memory only, and reads each
// container's log from its beginning.
//
// Run starts a reader per container and stops the readers of containers
// whose targets vanish, after they read what a stopped container logged. A
// reader follows its container through restarts (the engine's events tell it
// at once) and engine restarts (it reconnects with backoff). The readers of
// a Run inspect their containers at most InspectLimit at a time. Lines are sent
// in batches of up to BatchSize entries or BatchBytes bytes, or after Linger;
// a reader whose batches cannot be sent stops reading (the engine keeps the
// log).
//
// Validate checks the fields (pipeline.Build calls it); Start connects the
// client and starts saving the positions every SaveInterval (a pipeline
// calls it; a direct user calls it before Run); Close saves the positions
// and closes the client; call it after the sinks drained, as the pipeline
// does. Run must not be called concurrently with itself, and the fields
// must not change after Start.
type Source struct {
	// Host is the engine address; empty means the environment's DOCKER_HOST
	// or the local socket.
	Host string
	// TLS, if any file is set, configures TLS to a tcp:// host.
	TLS docker.TLSFiles
	// Client, if not nil, is used instead of connecting to Host; it is not
	// closed. It should have negotiated its API version before it is shared.
	Client client.APIClient

	// PositionsFile stores the positions under "docker/<id>"; nil keeps
	// them in memory (positions.Memory), for the life of the Source.
	PositionsFile *positions.File
	// SaveInterval is how often PositionsFile is saved, with
	// positions.File.SaveEvery (default 10s).
	SaveInterval time.Duration

	// Rules are applied to each target's labels plus LabelLogStream before
	// any entry is made; a dropped result drops that stream's lines.
	// Validate checks them.
	Rules []relabel.Rule

	// MaxLineSize bounds a line reassembled from the parts the daemon
	// splits lines over 16 KiB into (default 256 KiB).
	MaxLineSize int
	// LongLines says what to do with longer lines:
	// source.TruncateLongLines (default) or source.DropLongLines. Both are
	// counted with the Reporter's Dropped.
	LongLines source.LongLinePolicy

	// BatchSize and BatchBytes bound a batch (default 1000 entries, 1 MiB).
	BatchSize  int
	BatchBytes int
	// Linger is how long a batch waits for more lines (default 50ms).
	Linger time.Duration
	// RefreshInterval paces the reader of a stopped container whose log
	// was read. The engine's events wake it when the container starts or
	// is removed, and so does the event stream coming back after it was
	// down (events may have been missed meanwhile). As a safety net it
	// also checks the container again after a random time between one and
	// two RefreshIntervals, so that the readers of many containers do not
	// align (default 5s).
	RefreshInterval time.Duration

	mu  sync.Mutex
	cur *run            // the latest Run
	pos *positions.File // PositionsFile, or positions.Memory(); set by Start

	life      lifecycle.State // Start sets the fields below it; read-only afterwards
	rep       ferry.Reporter
	log       *slog.Logger
	cli       client.APIClient
	ownClient *client.Client // cli, when Start made it
	rules     *relabel.Rules // Rules, compiled
	stopSave  context.CancelFunc
	saveErr   chan error // the save loop's final Save
}

// ErrNotStarted is returned by Run before Start, and ErrClosed by Start and
// Run after Close.
var (
	ErrNotStarted = fmt.Errorf("dockerlogs: Run before Start: %w", ferry.ErrNotStarted)
	ErrClosed     = fmt.Errorf("dockerlogs: source %w", ferry.ErrClosed)
)

var (
	_ source.TargetSource[ferry.Entry] = (*Source)(nil)
	_ source.Closer                    = (*Source)(nil)
)

// Validate reports configuration errors.
func (s *Source) Validate() error {
	switch {
	case s.MaxLineSize < 0:
		return errors.New("dockerlogs: negative MaxLineSize")
	case s.BatchSize < 0, s.BatchBytes < 0:
		return errors.New("dockerlogs: negative batch size")
	case s.Linger < 0, s.SaveInterval < 0, s.RefreshInterval < 0:
		return errors.New("dockerlogs: negative duration")
	case !s.LongLines.Valid():
		return fmt.Errorf("dockerlogs: unknown LongLines policy %d", s.LongLines)
	}
	if _, err := relabel.New(s.Rules...); err != nil {
		return fmt.Errorf("dockerlogs: Rules: %w", err)
	}
	return nil
}

// Start validates the configuration, makes the engine client (unless
// Client is set) and starts saving the positions every SaveInterval.
// Readers report through r, and log with r.Logger(). ctx bounds the start
// only. Start is a no-op on a started Source and returns ErrClosed after
// Close.
func (s *Source) Start(ctx context.Context, r ferry.Reporter) error {
	return s.life.Start(ErrClosed, func() error {
		if err := s.Validate(); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rules, err := relabel.New(s.Rules...)
		if err != nil {
			return err
		}
		cli := s.Client
		var own *client.Client
		if cli == nil {
			c, err := docker.NewClient(s.Host, s.TLS)
			if err != nil {
				return err
			}
			c.NegotiateAPIVersion(ctx)
			cli, own = c, c
		}
		if r == nil {
			r = ferry.NopReporter()
		}
		pos := s.PositionsFile
		if pos == nil {
			pos = positions.Memory()
		}
		s.mu.Lock()
		s.pos = pos
		s.mu.Unlock()
		s.rep, s.log, s.cli, s.ownClient, s.rules = r, r.Logger(), cli, own, rules
		bg, stop := context.WithCancel(context.Background())
		s.stopSave, s.saveErr = stop, make(chan error, 1)
		every := orDefault(s.SaveInterval, DefaultSaveInterval)
		// The goroutine holds what it needs, not s: a Source never closed
		// does not keep its last Run's state alive through it.
		log, saveErr := s.log, s.saveErr
		go func() {
			saveErr <- pos.SaveEvery(bg, every, func(err error) { log.Warn("dockerlogs: saving positions", "err", err) })
		}()
		return nil
	})
}

// Positions returns a copy of the positions this source stored (keys that
// start with PositionPrefix), keyed as in the positions file. It implements
// source.PositionReporter.
func (s *Source) Positions() map[string]string {
	s.mu.Lock()
	pos := s.pos
	s.mu.Unlock()
	if pos == nil {
		pos = s.PositionsFile
	}
	return pos.WithPrefix(PositionPrefix)
}

func orDefault[T int | time.Duration](v, d T) T {
	if v == 0 {
		return d
	}
	return v
}

func (s *Source) load(key string) (position, bool) {
	v, ok := s.pos.Get(key)
	if !ok {
		return position{}, false
	}
	return parsePosition(v)
}

func (s *Source) store(key string, p position) { s.pos.Set(key, p.String()) }
func (s *Source) forget(key string)            { s.pos.Delete(key) }

// Run implements source.TargetSource. It returns ErrNotStarted before
// Start and ErrClosed after Close.
func (s *Source) Run(ctx context.Context, targets <-chan []labels.Labels, out chan<- ferry.Batch[ferry.Entry]) error {
	if err := s.life.Err(ErrNotStarted, ErrClosed); err != nil {
		return err
	}
	cli, rep := s.cli, s.rep
	r := &run{
		s: s, ctx: ctx, cli: cli, out: out, rep: rep, log: rep.Logger(),
		ctrs:        map[string]*ctr{},
		maxLine:     orDefault(s.MaxLineSize, DefaultMaxLineSize),
		batchSize:   orDefault(s.BatchSize, DefaultBatchSize),
		batchBytes:  orDefault(s.BatchBytes, DefaultBatchBytes),
		linger:      orDefault(s.Linger, DefaultLinger),
		refresh:     orDefault(s.RefreshInterval, DefaultRefreshInterval),
		lb:          labels.NewBuilder(labels.EmptyLabels()),
		decoderPool: sync.Pool{},
		inspects:    make(chan struct{}, InspectLimit),
	}
	s.mu.Lock()
	old := s.cur
	s.cur = r
	s.mu.Unlock()
	if old != nil {
		old.stale.Store(true) // late acks of the previous Run no longer count
	}

	var bg sync.WaitGroup
	bg.Add(2)
	go func() { defer bg.Done(); r.watchEvents() }()
	go func() { defer bg.Done(); r.prune() }()

	// Positions of removed containers go once their last batch settled;
	// positions.File.SaveEvery (see Start) writes the result.
	cleanup := time.NewTicker(orDefault(s.SaveInterval, DefaultSaveInterval))
	defer cleanup.Stop()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case ts, ok := <-targets:
			if !ok {
				targets = nil
				continue
			}
			r.reconcile(ts)
		case <-cleanup.C:
			r.cleanup()
		}
	}
	r.readers.Wait()
	bg.Wait()
	r.mu.Lock()
	for _, c := range r.ctrs {
		c.close()
	}
	r.mu.Unlock()
	return nil
}

// Close drops the positions of removed containers whose lines were all
// acknowledged, saves the positions file, and closes the client Start
// made. It is safe to call without Start; a later Close returns the first
// one's error. Run must have returned.
func (s *Source) Close(ctx context.Context) error {
	return s.life.Close(func(started bool) error {
		s.mu.Lock()
		r := s.cur
		s.mu.Unlock()
		if r != nil {
			r.cleanup()
		}
		switch {
		case started:
			s.stopSave()
			err := <-s.saveErr
			if s.ownClient != nil {
				docker.CloseClient(s.ownClient)
			}
			return err
		case s.PositionsFile != nil:
			return s.PositionsFile.Save()
		}
		return nil
	})
}

// run is the state of one Run call.
type run struct {
	s   *Source
	ctx context.Context
	cli client.APIClient
	out chan<- ferry.Batch[ferry.Entry]
	rep ferry.Reporter
	log *slog.Logger

	maxLine, batchSize, batchBytes int
	linger, refresh                time.Duration

	mu      sync.Mutex
	ctrs    map[string]*ctr
	readers sync.WaitGroup
	lb      *labels.Builder // under mu
	stale   atomic.Bool

	decoderPool sync.Pool
	inspects    chan struct{} // a semaphore of InspectLimit
}

// inspect asks the engine about a container, waiting for one of the Run's
// InspectLimit slots.
func (r *run) inspect(id string) (container.InspectResponse, error) {
	select {
	case r.inspects <- struct{}{}:
	case <-r.ctx.Done():
		return container.InspectResponse{}, r.ctx.Err()
	}
	defer func() { <-r.inspects }()
	return r.cli.ContainerInspect(r.ctx, id)
}

// streamLabels are the entry labels of a container's two streams, and
// whether the rules keep each.
type streamLabels struct {
	ls   [2]labels.Labels
	keep [2]bool
}

var streamNames = [2]string{"stdout", "stderr"}

func (r *run) labelsFor(target labels.Labels) *streamLabels {
	sl := &streamLabels{}
	for i, name := range streamNames {
		r.lb.Reset(target)
		r.lb.Set(LabelLogStream, name)
		if !r.s.rules.ProcessBuilder(r.lb) {
			continue
		}
		r.lb.Range(func(l labels.Label) {
			if strings.HasPrefix(l.Name, "__") {
				r.lb.Del(l.Name)
			}
		})
		sl.ls[i], sl.keep[i] = r.lb.Labels(), true
	}
	return sl
}

// reconcile starts readers for new containers, updates the labels of known
// ones and lets the readers of vanished ones finish.
func (r *run) reconcile(targets []labels.Labels) {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := make(map[string]bool, len(targets))
	for _, t := range targets {
		id := t.Get(docker.LabelContainerID)
		if id == "" || seen[id] {
			continue
		}
		seen[id] = true
		c := r.ctrs[id]
		if c == nil {
			c = r.newCtr(id)
			r.ctrs[id] = c
		}
		c.labels.Store(r.labelsFor(t))
		c.mu.Lock()
		c.wanted = true
		start := !c.active && !c.removed
		if start {
			c.active = true
		}
		c.mu.Unlock()
		if start {
			r.readers.Add(1)
			go c.loop()
		} else {
			c.poke()
		}
	}
	for id, c := range r.ctrs {
		if seen[id] {
			continue
		}
		c.mu.Lock()
		was := c.wanted
		c.wanted = false
		c.mu.Unlock()
		if was {
			c.poke()
			go c.stopIfRunning()
		}
	}
}

func (r *run) newCtr(id string) *ctr {
	c := &ctr{id: id, key: PositionPrefix + id, r: r, wake: make(chan struct{}, 1)}
	start, ok := r.s.load(c.key)
	c.read = start
	c.tracker = positions.NewTracker(start, ok, func(p position) {
		if !r.stale.Load() {
			r.s.store(c.key, p)
		}
	})
	c.timer = time.AfterFunc(time.Hour, c.flush)
	c.timer.Stop()
	return c
}

// cleanup forgets removed containers whose batches are all settled.
func (r *run) cleanup() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, c := range r.ctrs {
		c.mu.Lock()
		gone := c.removed && !c.active
		c.mu.Unlock()
		if gone && c.tracker.Pending() == 0 {
			if !r.stale.Load() {
				r.s.forget(c.key)
			}
			delete(r.ctrs, id)
		}
	}
}

// prune drops stored positions of containers that no longer exist (removed
// while the program was not running).
func (r *run) prune() {
	var keys []string
	keys = r.s.pos.Keys()
	for _, k := range keys {
		id, ok := strings.CutPrefix(k, PositionPrefix)
		if !ok || r.ctx.Err() != nil {
			continue
		}
		if _, err := r.inspect(id); client.IsErrNotFound(err) {
			r.mu.Lock()
			_, active := r.ctrs[id]
			r.mu.Unlock()
			if !active {
				r.s.forget(k)
			}
		}
	}
}

// watchEvents wakes the reader of a container that starts or is removed,
// and every reader once the event stream is back after it was down.
func (r *run) watchEvents() {
	backoff := retry.Backoff{Min: minBackoff, Max: maxBackoff}
	down := false // a stream failed or ended: events may have been missed
	for r.ctx.Err() == nil {
		ectx, cancel := context.WithCancel(r.ctx)
		msgs, errs := r.cli.Events(ectx, events.ListOptions{Filters: filters.NewArgs(
			filters.Arg("type", string(events.ContainerEventType)),
			filters.Arg("event", string(events.ActionStart)),
			filters.Arg("event", string(events.ActionDestroy)),
		)})
		// The stream is taken to be up once it went on for minBackoff
		// without failing (a connection that fails does so at once).
		var up <-chan time.Time
		if down {
			up = time.After(minBackoff)
		}
		err := func() error {
			for {
				select {
				case <-r.ctx.Done():
					return nil
				case <-up:
					up = nil
					r.pokeAll()
				case err := <-errs:
					if err == nil {
						err = errors.New("event stream ended")
					}
					return err
				case m, ok := <-msgs:
					if !ok {
						return errors.New("event stream ended")
					}
					backoff.Reset()
					r.mu.Lock()
					c := r.ctrs[m.Actor.ID]
					r.mu.Unlock()
					if c != nil {
						c.poke()
					}
				}
			}
		}()
		cancel()
		if r.ctx.Err() != nil {
			return
		}
		down = true
		r.log.Debug("dockerlogs: event stream ended, reconnecting", "err", err)
		if retry.Sleep(r.ctx, backoff.Next()) != nil {
			return
		}
	}
}

// pokeAll wakes every reader to check its container.
func (r *run) pokeAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.ctrs {
		c.poke()
	}
}

const (
	minBackoff = 250 * time.Millisecond
	maxBackoff = 30 * time.Second
)

// ctr is the state of one container.
type ctr struct {
	id, key string
	r       *run
	tracker *positions.Tracker[position]
	labels  atomic.Pointer[streamLabels]
	wake    chan struct{}

	mu           sync.Mutex
	wanted       bool
	active       bool // a loop goroutine runs
	removed      bool
	cancelStream context.CancelFunc

	// read is the position after the last reading; owned by the loop,
	// set under bmu.
	read position
	// seen, when read is the position after a reading of this Run (not
	// one loaded from the positions or rewound to the committed one),
	// counts the lines of that reading stamped from read.Since on, by
	// stream and timestamp: the next reading skips exactly those, not the
	// first read.Skip lines. Under bmu; replaced whenever read is.
	seen map[lineID]int

	bmu   sync.Mutex
	items []ferry.Entry
	bytes int
	hint  int         // length of the last batch
	text  arena.Arena // the lines of the batch
	hist  history     // the lines of the current reading

	sendMu sync.Mutex
	closed bool
	timer  *time.Timer
	rewind atomic.Bool // a batch failed: the loop reads again from the committed position
}

func (c *ctr) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// stopIfRunning ends the log stream of a container whose target vanished
// while it runs; a stopped container's stream ends by itself once read.
func (c *ctr) stopIfRunning() {
	info, err := c.r.inspect(c.id)
	if err == nil && info.ContainerJSONBase != nil && info.State != nil && !info.State.Running {
		return
	}
	c.mu.Lock()
	if !c.wanted && c.cancelStream != nil {
		c.cancelStream()
	}
	c.mu.Unlock()
}

// exit ends the loop unless the container is wanted again.
func (c *ctr) exit(removed bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if removed {
		c.removed = true
	} else if c.wanted {
		return false
	}
	c.active = false
	return true
}

func (c *ctr) isWanted() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.wanted
}

// loop reads the container's log, again after each restart, until the
// container is removed, its target vanished and its log was read, or the
// Run ends.
func (c *ctr) loop() {
	r := c.r
	defer r.readers.Done()
	backoff := retry.Backoff{Min: minBackoff, Max: maxBackoff}
	lastFinished, streamed := "", false
	rewindBackoff, lastRewind := retry.Backoff{Min: minBackoff, Max: maxBackoff}, position{Since: -1}
	// rewind goes back to the last settled position after a batch failed.
	// Batches still in flight are forgotten; what they deliver comes again
	// (at least once).
	rewind := func() {
		c.tracker.Reset()
		c.bmu.Lock()
		c.read, _ = c.tracker.Committed()
		c.seen = nil // it has lines read after the committed position
		c.bmu.Unlock()
		c.rewind.Store(false)
		streamed = false // read even if the container did not change
		r.rep.Retried()
		// Back off while nothing gets through, as when the sink is down.
		if c.read != lastRewind {
			rewindBackoff.Reset()
		}
		lastRewind = c.read
		wait := rewindBackoff.Next()
		r.log.Info("dockerlogs: batch failed, reading again", "container", c.id, "since", c.read.Since, "after", wait)
		_ = retry.Sleep(r.ctx, wait)
	}
	for {
		if r.ctx.Err() != nil {
			c.mu.Lock()
			c.active = false
			c.mu.Unlock()
			return
		}
		info, err := r.inspect(c.id)
		if client.IsErrNotFound(err) {
			c.exit(true)
			r.log.Debug("dockerlogs: container removed", "container", c.id)
			return
		}
		if err != nil || info.ContainerJSONBase == nil || info.State == nil || info.Config == nil {
			if r.ctx.Err() != nil {
				continue
			}
			if err == nil {
				err = errors.New("incomplete inspect response")
			}
			r.rep.SetHealth(ferry.Degraded, err)
			wait := backoff.Next()
			r.log.Warn("dockerlogs: inspecting container", "container", c.id, "err", err, "backoff", wait)
			_ = retry.Sleep(r.ctx, wait)
			continue
		}
		running := info.State.Running
		fresh := !streamed || running || info.State.FinishedAt != lastFinished
		wanted := c.isWanted()
		if !wanted && (running || !fresh) {
			if c.exit(false) {
				return
			}
			continue
		}
		if !fresh && c.tracker.Err() != nil && r.ctx.Err() == nil {
			// A batch of this stopped container failed after its log was
			// read: read it again.
			rewind()
			continue
		}
		if !fresh {
			// Events wake the reader; checking again after a random
			// time is only a safety net, spread so that the readers of
			// many stopped containers do not align.
			recheck := time.NewTimer(r.refresh + rand.N(r.refresh))
			select {
			case <-r.ctx.Done():
			case <-c.wake:
			case <-recheck.C:
			}
			recheck.Stop()
			continue
		}
		lastFinished = info.State.FinishedAt
		began := time.Now()
		err = c.follow(info.Config.Tty)
		// Only a reading that reached the end of the log counts: after an
		// error, a stopped container's log is read again from where it
		// broke off.
		streamed = err == nil
		if c.rewind.Load() {
			rewind()
			continue
		}
		switch {
		case err == nil, r.ctx.Err() != nil:
			backoff.Reset()
			if running && time.Since(began) < 100*time.Millisecond {
				_ = retry.Sleep(r.ctx, 100*time.Millisecond) // never spin on a stream that ends at once
			}
		case client.IsErrNotFound(err):
			// removed while reading: the next inspect tells
		case errors.Is(err, context.Canceled):
			// target vanished while running
		case errdefs.IsNotImplemented(err), errdefs.IsInvalidParameter(err):
			// A log driver that cannot be read ("none", "syslog", ...):
			// retrying will not help until the container is recreated.
			r.rep.SetHealth(ferry.Degraded, err)
			r.log.Error("dockerlogs: cannot read container log", "container", c.id, "err", err)
			if c.exit(false) {
				return
			}
			select {
			case <-r.ctx.Done():
			case <-c.wake:
			}
		default:
			r.rep.SetHealth(ferry.Degraded, err)
			wait := backoff.Next()
			r.log.Warn("dockerlogs: reading container log", "container", c.id, "err", err, "backoff", wait)
			_ = retry.Sleep(r.ctx, wait)
		}
	}
}

type readState struct {
	dec *decoder
	asm assembler
}

// follow reads the log from the read position until the stream ends.
func (c *ctr) follow(tty bool) error {
	r := c.r
	sctx, cancel := context.WithCancel(r.ctx)
	defer cancel()
	c.mu.Lock()
	c.cancelStream = cancel
	c.mu.Unlock()

	opts := container.LogsOptions{ShowStdout: true, ShowStderr: true, Follow: true, Timestamps: true}
	c.bmu.Lock()
	from, seen := c.read, c.seen
	c.seen = nil // owned by this reading until it ends
	c.bmu.Unlock()
	if from.Since > 0 {
		opts.Since = fmt.Sprintf("%d.%09d", from.Since/1e9, from.Since%1e9)
	}
	rc, err := r.cli.ContainerLogs(sctx, c.id, opts)
	if err != nil {
		c.bmu.Lock()
		c.seen = seen
		c.bmu.Unlock()
		return err
	}
	defer rc.Close()
	r.rep.SetHealth(ferry.Healthy, nil)

	st, _ := r.decoderPool.Get().(*readState)
	if st == nil {
		st = &readState{dec: newDecoder(nil, false, 0)}
	}
	defer r.decoderPool.Put(st)
	st.dec.reset(rc, tty)
	st.asm.max, st.asm.policy = r.maxLine, r.s.LongLines
	st.asm.reset(tty)
	c.bmu.Lock()
	c.hist.reset(from)
	c.bmu.Unlock()
	defer func() {
		c.bmu.Lock()
		c.read = c.hist.position()
		c.seen = c.hist.seenFrom(c.read.Since, seen)
		c.bmu.Unlock()
	}()
	toSkip := from.Skip
	emit := func(stream int, ts int64, line []byte, kind lineKind) {
		if kind == lineNone {
			return
		}
		end := st.asm.end
		c.bmu.Lock()
		c.hist.record(end, stream)
		if seen != nil {
			// The lines read before are known by their timestamps: a
			// line the daemon left out then (skipping a rotated file)
			// comes now, among them, and is new. None is stamped after
			// from.Newest.
			if id := (lineID{end, stream}); end <= from.Newest && seen[id] > 0 {
				seen[id]--
				c.bmu.Unlock()
				return
			}
		} else if toSkip > 0 && (from.Newest == 0 || end <= from.Newest) {
			// The first lines are those read before, unless stamped
			// later than anything read then.
			toSkip--
			c.bmu.Unlock()
			return
		} else {
			toSkip = 0
		}
		sl := c.labels.Load()
		if !sl.keep[stream] || kind == lineDropped {
			c.bmu.Unlock()
			if kind == lineDropped && sl.keep[stream] {
				r.rep.Dropped("line_too_long", 1)
			}
			return
		}
		if kind == lineTruncated {
			r.rep.Dropped("line_truncated", 1)
		}
		t := time.Unix(0, ts)
		if ts == 0 {
			t = time.Now()
		}
		if c.items == nil {
			// Size the batch like the last one: a busy container fills
			// whole batches, a quiet one sends a few lines per linger.
			c.items = make([]ferry.Entry, 0, min(r.batchSize, max(16, c.hint*2)))
		}
		c.items = append(c.items, ferry.Entry{Labels: sl.ls[stream], Timestamp: t, Line: c.text.String(line)})
		c.bytes += len(line)
		n := len(c.items)
		full := n >= r.batchSize || c.bytes >= r.batchBytes
		c.bmu.Unlock()
		if full {
			c.flush()
		} else if n == 1 {
			c.timer.Reset(r.linger)
		}
	}
	for {
		err := st.dec.next()
		if err != nil {
			if err == io.EOF {
				// The container stopped: an unfinished line is all there
				// will be of it. After any other error the line is read
				// again from the start.
				st.asm.flush(emit)
			}
			c.flush()
			if err == io.EOF {
				return nil
			}
			return err
		}
		ts, line, kind := st.asm.add(&st.dec.m)
		emit(st.dec.m.stream, ts, line, kind)
	}
}

// flush sends the batch held, if any. Batches of one container are sent in
// order.
func (c *ctr) flush() {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	c.bmu.Lock()
	items := c.items
	var last position
	if len(items) > 0 {
		last = c.hist.position()
	}
	// The next batch's lines start a block of their own, sized like
	// this batch's; this one's go with it.
	c.text.Release()
	c.items, c.bytes, c.hint = nil, 0, len(c.items)
	c.bmu.Unlock()
	if len(items) == 0 || c.closed || c.rewind.Load() {
		return
	}
	if c.tracker.Err() != nil {
		// An earlier batch failed: these lines come after it and will be
		// read again.
		c.rewind.Store(true)
		c.mu.Lock()
		if c.cancelStream != nil {
			c.cancelStream()
		}
		c.mu.Unlock()
		return
	}
	done := c.tracker.Track(last)
	source.Send(c.r.ctx, c.r.out, ferry.NewBatch(items, done))
}

// close stops sending: Run is returning and must not send after it.
func (c *ctr) close() {
	c.timer.Stop()
	c.sendMu.Lock()
	c.closed = true
	c.sendMu.Unlock()
}
