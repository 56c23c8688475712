package engine

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idlegate/idlegate/idletrack"
	"github.com/idlegate/idlegate/storage"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// enc queues one event per end and per login, with the zone's name.
type enc struct{}

func (enc) Ended(c *ZoneConfig, e idletrack.End, now time.Time) []storage.Event {
	return []storage.Event{{ID: "end-" + e.Session.ID.Short() + "-" + string(e.Reason), Zone: c.Name, Type: "session.ended", At: e.EndedAt, NextAt: now.UnixNano()}}
}

func (enc) Started(c *ZoneConfig, s idletrack.Session, now time.Time) []storage.Event {
	return []storage.Event{{ID: "start-" + s.ID.Short(), Zone: c.Name, Type: "session.started", At: s.LoginAt, NextAt: now.UnixNano()}}
}

type recorder struct {
	mu        sync.Mutex
	ended     []idletrack.End
	errs      int
	recovered int
}

func (r *recorder) SessionEnded(e idletrack.End) {
	r.mu.Lock()
	r.ended = append(r.ended, e)
	r.mu.Unlock()
}
func (r *recorder) StoreError(string, error) { r.mu.Lock(); r.errs++; r.mu.Unlock() }
func (r *recorder) StoreRecovered()          { r.mu.Lock(); r.recovered++; r.mu.Unlock() }
func (r *recorder) ends() []idletrack.End {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]idletrack.End(nil), r.ended...)
}

func zoneConfig(idle time.Duration) ZoneConfig {
	p := idletrack.DefaultPolicy()
	p.Idle = idle
	return ZoneConfig{Name: "sid", Policy: p, Webhook: &Webhook{URL: "http://127.0.0.1:1/a", Ended: true}}
}

type fixture struct {
	path  string
	store storage.Store
	e     *Engine
	z     *Zone
	clk   *clock
	obs   *recorder
}

func start(t *testing.T, path string, clk *clock, wrap func(storage.Store) storage.Store) *fixture {
	t.Helper()
	st, err := storage.OpenBolt(path, storage.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{path: path, clk: clk, obs: &recorder{}}
	f.store = st
	if wrap != nil {
		f.store = wrap(st)
	}
	f.e = New(f.store, enc{}, Options{Now: clk.now, FlushInterval: 20 * time.Millisecond, SweepInterval: 10 * time.Millisecond, Observer: f.obs})
	f.z, err = f.e.Configure(context.Background(), zoneConfig(30*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) stop(t *testing.T) {
	t.Helper()
	if err := f.e.Close(); err != nil {
		t.Fatal(err)
	}
	f.store.Close()
}

func newFixture(t *testing.T) *fixture {
	clk := &clock{t: time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)}
	f := start(t, filepath.Join(t.TempDir(), "s.db"), clk, nil)
	t.Cleanup(func() { f.e.Close(); f.store.Close() })
	return f
}

func eventually(t *testing.T, what string, fn func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !fn() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestStartIsDurableWhenItReturns(t *testing.T) {
	f := newFixture(t)
	id := f.z.ID("cookie-value")
	ok, err := f.z.Start(id, "42", f.e.Now())
	if !ok || err != nil {
		t.Fatalf("Start: %v %v", ok, err)
	}
	rec, err := f.store.Lookup(context.Background(), "sid", id)
	if err != nil || rec.Kind != storage.KindSession || rec.Session.User != "42" {
		t.Fatalf("the new session must be in the store before Start returns: %+v %v", rec, err)
	}
	if p, _, _ := f.store.OutboxStats(context.Background()); p != 1 {
		t.Fatalf("the login's session.started event must be queued with it: %d", p)
	}
}

func TestSilentSessionEndsOnceWithItsEvent(t *testing.T) {
	f := newFixture(t)
	id := f.z.ID("v")
	f.z.Start(id, "42", f.e.Now())
	f.clk.advance(10 * time.Minute)
	if v := f.z.Check(context.Background(), id, f.e.Now(), true); v.Status != idletrack.StatusActive {
		t.Fatalf("active: %+v", v)
	}
	f.clk.advance(30 * time.Minute)
	eventually(t, "the sweeper's end", func() bool { return len(f.obs.ends()) == 1 })
	e := f.obs.ends()[0]
	if e.Reason != idletrack.ReasonIdle || e.EndedAt != time.Date(2026, 11, 21, 8, 40, 0, 0, time.UTC).UnixNano() || e.Session.Requests != 2 {
		t.Fatalf("end: %+v", e)
	}
	rec, _ := f.store.Lookup(context.Background(), "sid", id)
	if rec.Kind != storage.KindTombstone {
		t.Fatalf("the store must hold a tombstone: %+v", rec)
	}
	due, _ := f.store.Due(context.Background(), f.e.Now(), 10, nil)
	if len(due) != 2 { // started + ended
		t.Fatalf("outbox: %+v", due)
	}
	f.clk.advance(time.Hour)
	for range 3 { // more sweep rounds, then a commit barrier: nothing more may happen
		f.e.sweep()
	}
	f.e.enqueue(&storage.Batch{}, true)
	if n := len(f.obs.ends()); n != 1 {
		t.Fatalf("ended %d times", n)
	}
	if v := f.z.Check(context.Background(), id, f.e.Now(), true); v.Status != idletrack.StatusEnded {
		t.Fatalf("replay: %+v", v)
	}
}

func TestRestartRestoresSessionsAndRefusesEnded(t *testing.T) {
	clk := &clock{t: time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)}
	path := filepath.Join(t.TempDir(), "s.db")
	f := start(t, path, clk, nil)
	live, gone := f.z.ID("live"), f.z.ID("gone")
	f.z.Start(live, "42", f.e.Now())
	f.z.Start(gone, "43", f.e.Now())
	clk.advance(5 * time.Minute)
	f.z.Check(context.Background(), live, f.e.Now(), true)
	f.z.End(gone, idletrack.ReasonLogout, f.e.Now())
	f.stop(t) // flushes the activity

	f = start(t, path, clk, nil)
	defer f.stop(t)
	s, ok := f.z.Tracker().Get(live)
	if !ok || s.LastActivity != clk.now().UnixNano() || s.User != "42" || s.Requests != 2 {
		t.Fatalf("after restart: %+v %v", s, ok)
	}
	if v := f.z.Check(context.Background(), gone, f.e.Now(), true); v.Status != idletrack.StatusEnded || v.Reason != idletrack.ReasonLogout {
		t.Fatalf("an ended session must stay ended across restarts: %+v", v)
	}
}

func TestSessionsThatExpiredWhileDownEndAtStart(t *testing.T) {
	clk := &clock{t: time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)}
	path := filepath.Join(t.TempDir(), "s.db")
	f := start(t, path, clk, nil)
	id := f.z.ID("v")
	f.z.Start(id, "42", f.e.Now())
	f.stop(t)
	clk.advance(3 * time.Hour)
	f = start(t, path, clk, nil)
	defer f.stop(t)
	eventually(t, "the end of a session that expired while Caddy was down", func() bool { return len(f.obs.ends()) == 1 })
	if e := f.obs.ends()[0]; e.EndedAt != time.Date(2026, 11, 21, 8, 30, 0, 0, time.UTC).UnixNano() {
		t.Fatalf("ended_at must be the deadline, not the restart: %v", time.Unix(0, e.EndedAt).UTC())
	}
}

// flaky fails Apply while broken is set, the way a full disk does.
type flaky struct {
	storage.Store
	broken atomic.Bool
}

func (f *flaky) Apply(ctx context.Context, b *storage.Batch) ([]storage.EndResult, error) {
	if f.broken.Load() {
		return nil, errors.New("no space left on device")
	}
	return f.Store.Apply(ctx, b)
}

func TestFailedWritesAreKeptAndRetried(t *testing.T) {
	clk := &clock{t: time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)}
	var fl *flaky
	f := start(t, filepath.Join(t.TempDir(), "s.db"), clk, func(s storage.Store) storage.Store { fl = &flaky{Store: s}; return fl })
	defer f.stop(t)
	id := f.z.ID("v")
	f.z.Start(id, "42", f.e.Now())
	fl.broken.Store(true)
	clk.advance(31 * time.Minute)
	eventually(t, "a store error", func() bool { f.obs.mu.Lock(); defer f.obs.mu.Unlock(); return f.obs.errs > 0 })
	if v := f.z.Check(context.Background(), id, f.e.Now(), true); v.Status != idletrack.StatusEnded {
		t.Fatalf("memory must keep enforcing while the store fails: %+v", v)
	}
	fl.broken.Store(false)
	eventually(t, "the end to be written after recovery", func() bool { return len(f.obs.ends()) == 1 })
	rec, _ := f.store.Lookup(context.Background(), "sid", id)
	if rec.Kind != storage.KindTombstone {
		t.Fatalf("after recovery the end is stored: %+v", rec)
	}
	if p, _, _ := f.store.OutboxStats(context.Background()); p != 2 {
		t.Fatalf("and its event queued: %d", p)
	}
}

func TestReconfigureAppliesNewIdleToExistingSessions(t *testing.T) {
	f := newFixture(t)
	id := f.z.ID("v")
	f.z.Start(id, "42", f.e.Now())
	f.clk.advance(10 * time.Minute)
	if _, err := f.e.Configure(context.Background(), zoneConfig(5*time.Minute)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the end under the new idle timeout", func() bool { return len(f.obs.ends()) == 1 })
	if e := f.obs.ends()[0]; e.EndedAt != time.Date(2026, 11, 21, 8, 5, 0, 0, time.UTC).UnixNano() {
		t.Fatalf("EndedAt %v", time.Unix(0, e.EndedAt).UTC())
	}
}

func TestChangedWebhookTargetHastensWaitingEvents(t *testing.T) {
	f := newFixture(t)
	var queued atomic.Int32
	f.e.o.Queued = func() { queued.Add(1) }
	ctx := context.Background()
	f.store.Apply(ctx, &storage.Batch{Events: []storage.Event{{ID: "late", Zone: "sid", NextAt: f.e.Now() + int64(time.Hour)}}})
	cfg := zoneConfig(30 * time.Minute)
	cfg.Webhook.URL = "http://127.0.0.1:2/fixed"
	f.e.Configure(ctx, cfg)
	due, _ := f.store.Due(ctx, f.e.Now(), 10, nil)
	if len(due) != 1 || queued.Load() == 0 {
		t.Fatalf("a new target must make waiting events due and wake delivery: %+v, queued %d", due, queued.Load())
	}
}
