package engine

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idlegate/idlegate/idletrack"
	"github.com/idlegate/idlegate/storage"
)

// sharedBolt is a real bbolt store that reports Shared() as Redis does, so
// the engine takes its shared-store branches. The test plays the other
// instance: it writes to the underlying store, fails writes (fail), and
// sends invalidation notices (inv).
type sharedBolt struct {
	storage.Store
	fail atomic.Bool
	inv  chan storage.Invalidation
}

func (s *sharedBolt) Shared() bool { return true }

func (s *sharedBolt) Apply(ctx context.Context, b *storage.Batch) ([]storage.EndResult, error) {
	if s.fail.Load() {
		return nil, errors.New("store away")
	}
	return s.Store.Apply(ctx, b)
}

func (s *sharedBolt) Invalidations(ctx context.Context) <-chan storage.Invalidation {
	out := make(chan storage.Invalidation)
	go func() {
		defer close(out)
		for {
			select {
			case <-ctx.Done():
				return
			case inv := <-s.inv:
				select {
				case out <- inv:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}

func newShared(t *testing.T) (*fixture, *sharedBolt) {
	clk := &clock{t: time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)}
	sb := &sharedBolt{inv: make(chan storage.Invalidation)}
	f := start(t, filepath.Join(t.TempDir(), "s.db"), clk, func(s storage.Store) storage.Store { sb.Store = s; return sb })
	t.Cleanup(func() { f.e.Close(); f.store.Close() })
	return f, sb
}

// elsewhere writes activity at now for id, as another instance's flush does.
func elsewhere(t *testing.T, sb *sharedBolt, id idletrack.ID, now int64) {
	t.Helper()
	rec, err := sb.Store.Lookup(context.Background(), "sid", id)
	if err != nil || rec.Kind != storage.KindSession {
		t.Fatalf("lookup: %+v %v", rec, err)
	}
	s := rec.Session
	s.LastActivity = now
	if _, err := sb.Store.Apply(context.Background(), &storage.Batch{Sessions: []storage.SessionWrite{{Zone: "sid", Change: idletrack.Change{Session: s, ReqDelta: 1}, ActivityOnly: true}}}); err != nil {
		t.Fatal(err)
	}
}

func TestSweepSharedEndsSessionsThisInstanceNeverSaw(t *testing.T) {
	f, sb := newShared(t)
	// Another instance started a session; this one never saw it.
	id := f.z.ID("theirs")
	s := idletrack.Session{ID: id, StartedAt: f.e.Now(), LastActivity: f.e.Now(), Requests: 1}
	sb.Store.Apply(context.Background(), &storage.Batch{Sessions: []storage.SessionWrite{{Zone: "sid", Change: idletrack.Change{Session: s, ReqDelta: 1}}}})
	f.clk.advance(31 * time.Minute)
	eventually(t, "the shared sweep to end it", func() bool { return len(f.obs.ends()) == 1 })
	if e := f.obs.ends()[0]; e.Session.ID != id || e.EndedAt != s.LastActivity+int64(30*time.Minute) {
		t.Fatalf("end: %+v", e)
	}
}

func TestSweepSharedKeepsASessionActiveElsewhere(t *testing.T) {
	f, sb := newShared(t)
	id := f.z.ID("ours")
	f.z.Start(id, "42", f.e.Now())
	f.clk.advance(20 * time.Minute)
	elsewhere(t, sb, id, f.e.Now()) // active on the other instance
	f.clk.advance(15 * time.Minute) // idle here for 35m, there for 15m
	eventually(t, "memory to learn the other instance's activity", func() bool {
		s, live := f.z.tracker.Get(id)
		return live && s.LastActivity == f.e.Now()-int64(15*time.Minute)
	})
	if n := len(f.obs.ends()); n != 0 {
		t.Fatalf("a session active elsewhere must not end: %d ends", n)
	}
}

func TestHoldEndsAfterTheSharedStoreComesBack(t *testing.T) {
	f, sb := newShared(t)
	id := f.z.ID("ours")
	f.z.Start(id, "42", f.e.Now())
	sb.fail.Store(true)
	f.clk.advance(31 * time.Minute)
	eventually(t, "the store to be seen failing", f.e.failingNow)
	// The store is back: the first write that succeeds starts the hold.
	sb.fail.Store(false)
	eventually(t, "a write to succeed after the outage", func() bool {
		f.e.enqueue(&storage.Batch{Events: []storage.Event{{ID: "probe", Zone: "sid", NextAt: f.e.Now()}}}, true)
		return !f.e.failingNow()
	})
	if f.e.failingNow() || f.e.holdUntil() <= f.e.Now() {
		t.Fatalf("a write after the outage starts the hold: failing %v, until %d, now %d", f.e.failingNow(), f.e.holdUntil(), f.e.Now())
	}
	// While held (the clock stands still), the idle end waits, and the
	// other instance writes the activity it kept during the outage.
	f.e.enqueue(&storage.Batch{}, true)
	if rec, _ := sb.Store.Lookup(context.Background(), "sid", id); rec.Kind != storage.KindSession {
		t.Fatalf("a held end is not written: %+v", rec)
	}
	elsewhere(t, sb, id, f.e.Now())
	f.clk.advance(time.Second) // past the hold
	eventually(t, "the conditional end to yield to the other instance", func() bool {
		_, live := f.z.tracker.Get(id)
		return live
	})
	if n := len(f.obs.ends()); n != 0 {
		t.Fatalf("the session was active elsewhere: %d ends", n)
	}
}

func TestInvalidationsFromAnotherInstance(t *testing.T) {
	f, sb := newShared(t)
	ctx := context.Background()
	a, b := f.z.ID("a"), f.z.ID("b")
	f.z.Start(a, "42", f.e.Now())
	f.z.Start(b, "7", f.e.Now())
	now := f.e.Now()
	sb.inv <- storage.Invalidation{Zone: "sid", ID: a, Ended: true, Reason: idletrack.ReasonLogout, Until: now + int64(time.Hour)}
	eventually(t, "the ended notice to apply", func() bool {
		return f.z.Check(ctx, a, f.e.Now(), false).Status == idletrack.StatusEnded
	})
	target := f.z.ID("b2")
	sb.inv <- storage.Invalidation{Zone: "sid", ID: b, Alias: storage.Alias{Old: b, Target: target, GraceUntil: now + int64(30*time.Second), ForgetAt: now + int64(time.Hour)}}
	eventually(t, "the rotation notice to apply", func() bool {
		_, live := f.z.tracker.Get(target)
		return live
	})
	f.clk.advance(time.Minute)
	if v := f.z.Check(ctx, b, f.e.Now(), false); v.Status == idletrack.StatusActive {
		t.Fatalf("the rotated-away value past its grace is refused: %+v", v)
	}
	sb.inv <- storage.Invalidation{Zone: "elsewhere", ID: a, Ended: true}
	if n := len(f.obs.ends()); n != 0 {
		t.Fatalf("notices write nothing and send nothing here: %d ends", n)
	}
}
