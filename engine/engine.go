// Package engine runs idlegate's trackers against a store: it looks up what
// memory does not know, writes changes with group commit, sweeps expired
// sessions on time, and hands end events to the outbox. One Engine serves
// one store and every zone configured on it; it outlives config reloads.
//
// The request path never waits for a disk write except where docs/design.md says
// it must: a session the upstream has just issued, a rotation, a login and an
// explicit end (logout, revoke) are durable before the response goes out.
// Activity is flushed once per FlushInterval. Writes that fail (disk full,
// read-only file, Redis away) stay queued and are retried on the next round;
// meanwhile memory keeps enforcing.
package engine

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/idlegate/idlegate/idletrack"
	"github.com/idlegate/idlegate/storage"
)

// Options tune an Engine. Zero values take the defaults.
type Options struct {
	Now           func() time.Time // the clock (default time.Now)
	FlushInterval time.Duration    // activity flush period (default 1s)
	SweepInterval time.Duration    // how often deadlines are checked (default 250ms)
	PurgeInterval time.Duration    // tombstone/alias purge period (default 1m)
	DurableWait   time.Duration    // longest a request waits for a durable write (default 5s)
	SweepBatch    int              // most sessions ended per zone per sweep (default 10000)
	Logger        *zap.Logger
	Observer      Observer
	// Queued is called (without blocking) after events were written to the
	// outbox, so the delivery worker can start at once.
	Queued func()
}

// Observer receives what the engine did, for metrics and logs. Methods are
// called from the engine's goroutine or the request path; they must be quick.
type Observer interface {
	// SessionEnded: a session ended and its end is durable.
	SessionEnded(e idletrack.End)
	// StoreError: a write or read failed; the engine retries writes.
	StoreError(op string, err error)
	// StoreRecovered: a write succeeded after failures.
	StoreRecovered()
}

// Encoder turns lifecycle facts into outbox events for a zone, following its
// webhook settings. It returns nil when nothing is to be sent.
type Encoder interface {
	Ended(zone *ZoneConfig, e idletrack.End, now time.Time) []storage.Event
	Started(zone *ZoneConfig, s idletrack.Session, now time.Time) []storage.Event
}

// Engine is the running state of one store.
type Engine struct {
	store storage.Store
	keyer *idletrack.Keyer
	enc   Encoder
	o     Options

	mu       sync.RWMutex
	zones    map[string]*Zone
	loading  map[string]chan struct{} // zones being loaded by Acquire
	leaseSeq uint64                   // orders leases: the newest is in force

	qmu     sync.Mutex
	queue   storage.Batch // waiting for the next commit
	retry   storage.Batch // failed once; retried first
	gen     *commitGen    // what the waiters of queue wait for
	wake    chan struct{}
	failing bool
	// holdEnds: until then (Unix ns), idle and absolute ends wait in retry
	// on a shared store; see commit.
	holdEnds int64

	// Buffers of the flush, reused so that a flush of thousands of
	// sessions does not allocate them anew every second (only run uses
	// them).
	changes  []idletrack.Change
	sessions []storage.SessionWrite

	ctx       context.Context
	cancel    context.CancelFunc
	done      chan struct{}
	invalDone chan struct{} // the invalidation reader has stopped
}

type commitGen struct {
	done chan struct{}
	err  error
}

// New starts an engine on store. Call Close to stop it.
func New(store storage.Store, enc Encoder, o Options) *Engine {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = time.Second
	}
	if o.SweepInterval <= 0 {
		o.SweepInterval = 250 * time.Millisecond
	}
	if o.PurgeInterval <= 0 {
		o.PurgeInterval = time.Minute
	}
	if o.DurableWait <= 0 {
		o.DurableWait = 5 * time.Second
	}
	if o.SweepBatch <= 0 {
		o.SweepBatch = 10000
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	e := &Engine{
		store:   store,
		keyer:   idletrack.NewKeyer(store.Key()),
		enc:     enc,
		o:       o,
		zones:   make(map[string]*Zone),
		loading: make(map[string]chan struct{}),
		gen:     &commitGen{done: make(chan struct{})},
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	e.invalDone = make(chan struct{})
	if inv, ok := store.(storage.Invalidator); ok {
		go e.invalidations(inv.Invalidations(e.ctx))
	} else {
		close(e.invalDone)
	}
	go e.run()
	return e
}

// Now returns the engine clock's time in Unix nanoseconds.
func (e *Engine) Now() int64 { return e.o.Now().UnixNano() }

// Close stops the engine: the last activity and queued writes are flushed.
// It does not close the store.
func (e *Engine) Close() error {
	e.cancel()
	<-e.done
	<-e.invalDone
	e.qmu.Lock()
	defer e.qmu.Unlock()
	if e.retry.Len()+e.queue.Len() > 0 {
		return errors.New("idlegate: some writes could not be stored before stopping; they are lost from this process but sessions are ended again after restart")
	}
	return nil
}

// Zones returns the zones the engine serves.
func (e *Engine) Zones() []*Zone {
	e.mu.RLock()
	defer e.mu.RUnlock()
	out := make([]*Zone, 0, len(e.zones))
	for _, z := range e.zones {
		out = append(out, z)
	}
	return out
}

// Zone returns zone name, if configured.
func (e *Engine) Zone(name string) (*Zone, bool) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	z, ok := e.zones[name]
	return z, ok
}

// sessionCounter is implemented by stores that can count a zone's sessions
// without reading them (storage.Bolt), so that Configure sizes the tracker
// once instead of growing it through a million-session Load.
type sessionCounter interface {
	Sessions(ctx context.Context, zone string) (int, error)
}

// enqueue adds b to the next commit. With wait, it returns once the commit
// that contains b is done (or DurableWait passed), with its error.
func (e *Engine) enqueue(b *storage.Batch, wait bool) error {
	e.qmu.Lock()
	e.queue.Sessions = append(e.queue.Sessions, b.Sessions...)
	e.queue.Rotations = append(e.queue.Rotations, b.Rotations...)
	e.queue.Ends = append(e.queue.Ends, b.Ends...)
	e.queue.Events = append(e.queue.Events, b.Events...)
	e.queue.Members = append(e.queue.Members, b.Members...)
	g := e.gen
	e.qmu.Unlock()
	select {
	case e.wake <- struct{}{}:
	default:
	}
	if !wait {
		return nil
	}
	t := time.NewTimer(e.o.DurableWait)
	defer t.Stop()
	select {
	case <-g.done:
		return g.err
	case <-t.C:
		return errors.New("idlegate: the store did not confirm the write in time; continuing from memory")
	case <-e.ctx.Done():
		return e.ctx.Err()
	}
}

func (e *Engine) run() {
	defer close(e.done)
	flush := time.NewTicker(e.o.FlushInterval)
	sweep := time.NewTicker(e.o.SweepInterval)
	purge := time.NewTicker(e.o.PurgeInterval)
	defer flush.Stop()
	defer sweep.Stop()
	defer purge.Stop()
	for {
		select {
		case <-e.ctx.Done():
			// The last flush must not run on the cancelled context, or a
			// network store (Redis) would refuse it.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			e.commitCtx(ctx, true)
			e.saveFamilies(ctx)
			cancel()
			return
		case <-e.wake:
			e.commit(false)
			e.saveFamilies(e.ctx)
		case <-flush.C:
			e.commit(true)
			e.saveFamilies(e.ctx)
		case <-sweep.C:
			e.sweep()
		case <-purge.C:
			e.purge()
		}
	}
}

// commit writes what is queued (and, with collect, the activity of every
// zone) in one store write, then wakes the waiters.
func (e *Engine) commit(collect bool) { e.commitCtx(e.ctx, collect) }

func (e *Engine) commitCtx(ctx context.Context, collect bool) {
	b, g := e.drain()
	held := e.hold(&b)
	defer e.requeueHeld(held)
	if collect {
		e.collect(&b)
	}
	if b.Len() == 0 {
		close(g.done)
		return
	}
	e.apply(ctx, &b, g)
}

// drain takes the retried and queued writes as one batch, and the
// generation their waiters wait for; new writes go to the next one.
func (e *Engine) drain() (storage.Batch, *commitGen) {
	e.qmu.Lock()
	defer e.qmu.Unlock()
	b := e.retry
	e.retry = storage.Batch{}
	if b.Sessions == nil {
		b.Sessions = e.sessions[:0]
	}
	b.Sessions = append(b.Sessions, e.queue.Sessions...)
	b.Rotations = append(b.Rotations, e.queue.Rotations...)
	b.Ends = append(b.Ends, e.queue.Ends...)
	b.Events = append(b.Events, e.queue.Events...)
	b.Members = append(b.Members, e.queue.Members...)
	e.queue.Reset()
	g := e.gen
	e.gen = &commitGen{done: make(chan struct{})}
	return b, g
}

// hold takes out of b the ends that must wait, and returns them.
//
// On a shared store, an idle or absolute end decided while the store was
// failing rests on this instance's memory alone: other instances' activity
// could not arrive. Such ends wait until the store has worked for two
// flush intervals, so every instance has written the activity it kept
// meanwhile; the conditional end then keeps a session that was active
// elsewhere (and this instance serves it again).
func (e *Engine) hold(b *storage.Batch) []storage.EndWrite {
	if !e.store.Shared() || !(e.failingNow() || e.Now() < e.holdUntil()) {
		return nil
	}
	var held, keep []storage.EndWrite
	for _, w := range b.Ends {
		if r := w.End.Reason; r == idletrack.ReasonIdle || r == idletrack.ReasonAbsolute {
			held = append(held, w)
		} else {
			keep = append(keep, w)
		}
	}
	b.Ends = keep
	return held
}

// requeueHeld puts held ends back for a later commit.
func (e *Engine) requeueHeld(held []storage.EndWrite) {
	if len(held) > 0 {
		e.qmu.Lock()
		e.retry.Ends = append(e.retry.Ends, held...)
		e.qmu.Unlock()
	}
}

// collect adds every zone's activity since the last flush to b.
func (e *Engine) collect(b *storage.Batch) {
	for _, z := range e.Zones() {
		e.changes = z.tracker.Collect(e.changes[:0])
		for _, c := range e.changes {
			b.Sessions = append(b.Sessions, storage.SessionWrite{Zone: z.Name(), Change: c, ActivityOnly: true})
		}
	}
	clear(e.changes)
}

// apply writes b in one store transaction and wakes g's waiters. A failed
// batch is kept for the next round; the first success after failures
// starts the hold of shared-store ends.
func (e *Engine) apply(ctx context.Context, b *storage.Batch, g *commitGen) {
	results, err := e.store.Apply(ctx, b)
	g.err = err
	close(g.done)
	if err != nil {
		e.qmu.Lock()
		e.retry = *b
		wasFailing := e.failing
		e.failing = true
		e.qmu.Unlock()
		if !wasFailing {
			e.o.Logger.Error("idlegate store write failed; enforcing from memory and retrying", zap.Error(err))
		}
		if e.o.Observer != nil {
			e.o.Observer.StoreError("write", err)
		}
		return
	}
	e.qmu.Lock()
	recovered := e.failing
	e.failing = false
	if recovered {
		e.holdEnds = e.Now() + 2*int64(e.o.FlushInterval)
	}
	e.qmu.Unlock()
	if recovered {
		e.o.Logger.Info("idlegate store writes succeed again")
		if e.o.Observer != nil {
			e.o.Observer.StoreRecovered()
		}
	}
	e.applied(b, results)
	clear(b.Sessions) // (their user names)
	e.sessions = b.Sessions[:0]
}

func (e *Engine) failingNow() bool {
	e.qmu.Lock()
	defer e.qmu.Unlock()
	return e.failing
}

func (e *Engine) holdUntil() int64 {
	e.qmu.Lock()
	defer e.qmu.Unlock()
	return e.holdEnds
}

// applied reports what a successful commit did.
func (e *Engine) applied(b *storage.Batch, results []storage.EndResult) {
	queued := len(b.Events) > 0
	for i, r := range results {
		switch {
		case r.Ended:
			if e.o.Observer != nil {
				e.o.Observer.SessionEnded(r.End)
			}
			queued = true
		case r.Current != nil:
			// Another instance saw it active: carry on.
			if z, ok := e.Zone(b.Ends[i].End.Zone); ok {
				z.tracker.Load(*r.Current)
			}
		}
	}
	if queued && e.o.Queued != nil {
		e.o.Queued()
	}
}

// sweep ends every session whose deadline passed, in every zone.
func (e *Engine) sweep() {
	now := e.o.Now()
	var b storage.Batch
	for _, z := range e.Zones() {
		for _, end := range z.tracker.Expired(now.UnixNano(), e.o.SweepBatch) {
			b.Ends = append(b.Ends, z.endWrite(end))
		}
		if e.store.Shared() {
			z.sweepShared(now, &b)
		}
	}
	if b.Len() > 0 {
		e.enqueue(&b, false)
	}
}

func (e *Engine) purge() {
	now := e.Now()
	for _, z := range e.Zones() {
		z.tracker.Forget(now)
	}
	for range 100 {
		n, err := e.store.Purge(e.ctx, now)
		if err != nil {
			if e.o.Observer != nil {
				e.o.Observer.StoreError("purge", err)
			}
			return
		}
		if n < 10000 {
			return
		}
	}
}

// targetChanged reports whether a zone's webhook now goes somewhere else.
func targetChanged(old, cur *Webhook) bool {
	if cur == nil {
		return false
	}
	return old == nil || old.URL != cur.URL || string(old.Key) != string(cur.Key)
}

// hasten makes the zone's waiting events due now, so a corrected webhook
// target receives them without waiting out their backoff.
func (e *Engine) hasten(ctx context.Context, zone string) {
	h, ok := e.store.(storage.Hastener)
	if !ok {
		return
	}
	n, err := h.Hasten(ctx, zone, e.Now())
	if err != nil {
		e.storeError("hasten", err)
		return
	}
	if n > 0 {
		e.o.Logger.Info("webhook target changed: waiting events are due now", zap.String("zone", zone), zap.Int("events", n))
		if e.o.Queued != nil {
			e.o.Queued()
		}
	}
}
