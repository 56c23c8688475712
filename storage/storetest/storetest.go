// Package storetest is the behaviour every storage.Store must have. Each
// implementation's tests call Run with a way to open (and re-open) a fresh
// store, so bbolt and Redis are held to the same contract.
package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/idlegate/idlegate/idletrack"
	"github.com/idlegate/idlegate/storage"
)

// Opener returns a function that opens the same, initially empty, store each
// time it is called (a store is closed before it is opened again).
type Opener func(t *testing.T) func() storage.Store

var t0 = time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC).UnixNano()

func at(d time.Duration) int64 { return t0 + int64(d) }

func id(n int) idletrack.ID {
	var i idletrack.ID
	copy(i[:], fmt.Sprintf("session-%08d", n))
	return i
}

func policy() idletrack.Policy {
	p := idletrack.DefaultPolicy()
	p.Idle = 30 * time.Minute
	return p
}

func session(n int, start time.Duration, user string) idletrack.Session {
	s := idletrack.Session{ID: id(n), User: user, StartedAt: at(start), LastActivity: at(start), Requests: 1}
	if user != "" {
		s.LoginAt = at(start)
	}
	return s
}

func write(t *testing.T, st storage.Store, b *storage.Batch) []storage.EndResult {
	t.Helper()
	res, err := st.Apply(context.Background(), b)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return res
}

func put(t *testing.T, st storage.Store, zone string, ss ...idletrack.Session) {
	t.Helper()
	b := &storage.Batch{}
	for _, s := range ss {
		b.Sessions = append(b.Sessions, storage.SessionWrite{Zone: zone, Change: idletrack.Change{Session: s, ReqDelta: s.Requests}})
	}
	write(t, st, b)
}

func event(n int, next time.Duration) storage.Event {
	return storage.Event{ID: fmt.Sprintf("msg_%04d", n), Zone: "z", Type: "session.ended", Body: []byte(`{"n":` + fmt.Sprint(n) + `}`), At: at(0), NextAt: at(next)}
}

func endWrite(e idletrack.End, events ...storage.Event) storage.EndWrite {
	return storage.EndWrite{
		End: e, Policy: policy(), TombstoneUntil: e.EndedAt + int64(14*24*time.Hour),
		Events: func(idletrack.End) []storage.Event { return events },
	}
}

func lookup(t *testing.T, st storage.Store, zone string, i idletrack.ID) storage.Record {
	t.Helper()
	r, err := st.Lookup(context.Background(), zone, i)
	if err != nil {
		t.Fatalf("Lookup: %v", err)
	}
	return r
}

// Run runs the whole behaviour suite.
func Run(t *testing.T, open Opener) {
	ctx := context.Background()

	t.Run("KeyIsGeneratedOnceAndKept", func(t *testing.T) {
		o := open(t)
		st := o()
		k := append([]byte(nil), st.Key()...)
		if len(k) < 32 {
			t.Fatalf("key of %d bytes, want ≥ 32", len(k))
		}
		st.Close()
		st = o()
		defer st.Close()
		if string(st.Key()) != string(k) {
			t.Fatal("the HMAC key must survive a reopen, or every session is lost")
		}
	})

	t.Run("SessionsRoundTripAndAreZoned", func(t *testing.T) {
		st := open(t)()
		defer st.Close()
		s := session(1, 0, "42")
		put(t, st, "a", s)
		if r := lookup(t, st, "a", s.ID); r.Kind != storage.KindSession || r.Session != s {
			t.Fatalf("Lookup = %+v, want %+v", r, s)
		}
		if r := lookup(t, st, "b", s.ID); r.Kind != storage.KindNone {
			t.Fatal("zones must not see each other's sessions")
		}
		s.LastActivity, s.Requests = at(time.Minute), 5
		put(t, st, "a", s)
		var loaded []idletrack.Session
		if err := st.Load(ctx, "a", func(s idletrack.Session) { loaded = append(loaded, s) }, func(storage.Alias) {}); err != nil {
			t.Fatal(err)
		}
		if len(loaded) != 1 || loaded[0].LastActivity != at(time.Minute) || loaded[0].Requests < 5 {
			t.Fatalf("Load = %+v", loaded)
		}
	})

	t.Run("RotationLeavesAnAlias", func(t *testing.T) {
		st := open(t)()
		defer st.Close()
		s := session(1, 0, "42")
		put(t, st, "z", s)
		moved := s
		moved.ID = id(2)
		write(t, st, &storage.Batch{Rotations: []storage.RotationWrite{{Zone: "z", Rotation: idletrack.Rotation{
			Old: s.ID, Session: moved, GraceUntil: at(30 * time.Second), ForgetAt: at(time.Hour)}}}})
		if r := lookup(t, st, "z", s.ID); r.Kind != storage.KindAlias || r.Alias.Target != moved.ID || r.Alias.GraceUntil != at(30*time.Second) {
			t.Fatalf("old value: %+v", r)
		}
		if r := lookup(t, st, "z", moved.ID); r.Kind != storage.KindSession || r.Session.StartedAt != s.StartedAt || r.Session.User != "42" {
			t.Fatalf("new value: %+v", r)
		}
		var aliases []storage.Alias
		st.Load(ctx, "z", func(idletrack.Session) {}, func(a storage.Alias) { aliases = append(aliases, a) })
		if len(aliases) != 1 {
			t.Fatalf("Load must return the alias: %+v", aliases)
		}
	})

	t.Run("EndQueuesItsEventAtomicallyExactlyOnce", func(t *testing.T) {
		st := open(t)()
		defer st.Close()
		s := session(1, 0, "42")
		put(t, st, "z", s)
		e := idletrack.End{Session: s, Zone: "z", Reason: idletrack.ReasonLogout, EndedAt: at(time.Minute)}
		res := write(t, st, &storage.Batch{Ends: []storage.EndWrite{endWrite(e, event(1, 0))}})
		if len(res) != 1 || !res[0].Ended {
			t.Fatalf("end: %+v", res)
		}
		if r := lookup(t, st, "z", s.ID); r.Kind != storage.KindTombstone || r.Reason != idletrack.ReasonLogout || r.Until <= at(time.Minute) {
			t.Fatalf("after the end: %+v", r)
		}
		due, _ := st.Due(ctx, at(time.Hour), 10, nil)
		if len(due) != 1 || due[0].ID != "msg_0001" {
			t.Fatalf("the event must be queued with the end: %+v", due)
		}
		res = write(t, st, &storage.Batch{Ends: []storage.EndWrite{endWrite(e, event(2, 0))}})
		if res[0].Ended {
			t.Fatal("a second end of the same session must not happen")
		}
		if p, _, _ := st.OutboxStats(ctx); p != 1 {
			t.Fatalf("a second end must not queue an event: %d pending", p)
		}
	})

	t.Run("EndOfNeverStoredSessionStillCounts", func(t *testing.T) {
		st := open(t)()
		defer st.Close()
		s := session(9, 0, "42")
		e := idletrack.End{Session: s, Zone: "z", Reason: idletrack.ReasonIdle, EndedAt: at(30 * time.Minute)}
		res := write(t, st, &storage.Batch{Ends: []storage.EndWrite{endWrite(e, event(1, 0))}})
		if !res[0].Ended {
			t.Fatal("a session that ended before its first flush must still end and be reported")
		}
	})

	t.Run("AnonymousEndsLeaveNoTombstoneWhenAsked", func(t *testing.T) {
		st := open(t)()
		defer st.Close()
		anon, user := session(1, 0, ""), session(2, 0, "42")
		put(t, st, "z", anon, user)
		for _, s := range []idletrack.Session{anon, user} {
			w := endWrite(idletrack.End{Session: s, Zone: "z", Reason: idletrack.ReasonIdle, EndedAt: at(30 * time.Minute)}, event(int(s.ID[15]), 0))
			w.NoAnonymousTombstone = true
			if res := write(t, st, &storage.Batch{Ends: []storage.EndWrite{w}}); !res[0].Ended {
				t.Fatalf("%q: the end must happen: %+v", s.User, res)
			}
		}
		never := session(3, 0, "") // ended before its first flush: reported all the same
		w := endWrite(idletrack.End{Session: never, Zone: "z", Reason: idletrack.ReasonIdle, EndedAt: at(30 * time.Minute)}, event(3, 0))
		w.NoAnonymousTombstone = true
		if res := write(t, st, &storage.Batch{Ends: []storage.EndWrite{w}}); !res[0].Ended {
			t.Fatalf("an anonymous session that never reached the store must still end: %+v", res)
		}
		for _, id := range []idletrack.ID{anon.ID, never.ID} {
			if r := lookup(t, st, "z", id); r.Kind != storage.KindNone && (r.Kind != storage.KindTombstone || r.Until > at(30*time.Minute+10*time.Minute)) {
				t.Fatalf("an anonymous session's end must leave no lasting tombstone: %+v", r)
			}
		}
		uw := endWrite(idletrack.End{Session: user, Zone: "z", Reason: idletrack.ReasonIdle, EndedAt: at(30 * time.Minute)}, event(9, 0))
		if again := write(t, st, &storage.Batch{Ends: []storage.EndWrite{uw}}); again[0].Ended {
			t.Fatal("a second end of a session with a tombstone must not happen")
		}
		if r := lookup(t, st, "z", user.ID); r.Kind != storage.KindTombstone {
			t.Fatalf("a session that had a user keeps its tombstone: %+v", r)
		}
		if p, _, _ := st.OutboxStats(ctx); p != 3 {
			t.Fatalf("each end queues its event once: %d pending", p)
		}
	})

	t.Run("IdleEndYieldsToNewerStoredActivity", func(t *testing.T) {
		st := open(t)()
		defer st.Close()
		s := session(1, 0, "42")
		put(t, st, "z", s)
		active := s
		active.LastActivity = at(20 * time.Minute) // another instance saw it
		put(t, st, "z", active)
		e := idletrack.End{Session: s, Zone: "z", Reason: idletrack.ReasonIdle, EndedAt: at(30 * time.Minute)}
		res := write(t, st, &storage.Batch{Ends: []storage.EndWrite{endWrite(e, event(1, 0))}})
		if res[0].Ended || res[0].Current == nil || res[0].Current.LastActivity != at(20*time.Minute) {
			t.Fatalf("the end must yield to stored activity: %+v", res[0])
		}
		if p, _, _ := st.OutboxStats(ctx); p != 0 {
			t.Fatal("no event for an end that did not happen")
		}
		ids, _ := st.Expiring(ctx, "z", at(10*time.Minute), 0, 10)
		if len(ids) != 0 {
			t.Fatalf("the idle index must have moved to the newer activity: %v", ids)
		}
		e.EndedAt = at(50 * time.Minute)
		if res := write(t, st, &storage.Batch{Ends: []storage.EndWrite{endWrite(e, event(1, 0))}}); !res[0].Ended {
			t.Fatal("at the real deadline it ends")
		}
	})

	t.Run("ExpiringWalksTheIndexInTimeOrder", func(t *testing.T) {
		st := open(t)()
		defer st.Close()
		for i := range 10 {
			put(t, st, "z", session(i, time.Duration(i)*time.Minute, ""))
		}
		ids, err := st.Expiring(ctx, "z", at(4*time.Minute), 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(ids) != 5 {
			t.Fatalf("want the 5 sessions idle since ≤ 4m, got %d", len(ids))
		}
		for i, got := range ids {
			if got != id(i) {
				t.Fatalf("position %d: %v, want %v", i, got, id(i))
			}
		}
		if ids, _ := st.Expiring(ctx, "z", at(9*time.Minute), 0, 3); len(ids) != 3 {
			t.Fatal("limit must hold")
		}
		if ids, _ := st.Expiring(ctx, "z", at(-time.Minute), at(2*time.Minute), 100); len(ids) != 3 {
			t.Fatalf("absolute cutoff: want 3, got %d", len(ids))
		}
	})

	t.Run("PurgeForgetsOldTombstonesAndAliases", func(t *testing.T) {
		st := open(t)()
		defer st.Close()
		s := session(1, 0, "42")
		e := idletrack.End{Session: s, Zone: "z", Reason: idletrack.ReasonLogout, EndedAt: at(0)}
		w := endWrite(e)
		w.TombstoneUntil = at(time.Hour)
		write(t, st, &storage.Batch{Ends: []storage.EndWrite{w}})
		if n, err := st.Purge(ctx, at(59*time.Minute)); err != nil || n != 0 {
			t.Fatalf("nothing is due: %d %v", n, err)
		}
		if _, err := st.Purge(ctx, at(61*time.Minute)); err != nil {
			t.Fatal(err)
		}
		if r := lookup(t, st, "z", s.ID); r.Kind != storage.KindNone && !(r.Kind == storage.KindTombstone && r.Until <= at(61*time.Minute)) {
			t.Fatalf("after its period a tombstone is forgotten: %+v", r)
		}
	})

	t.Run("OutboxOrderRetryDeadLetters", func(t *testing.T) {
		st := open(t)()
		defer st.Close()
		write(t, st, &storage.Batch{Events: []storage.Event{event(3, 3*time.Second), event(1, time.Second), event(2, 2*time.Second)}})
		due, _ := st.Due(ctx, at(2*time.Second), 10, nil)
		if len(due) != 2 || due[0].ID != "msg_0001" || due[1].ID != "msg_0002" {
			t.Fatalf("Due must return what is due, earliest first: %+v", due)
		}
		if due, _ := st.Due(ctx, at(time.Hour), 10, func(id string) bool { return id == "msg_0001" }); len(due) != 2 {
			t.Fatal("skip must leave out in-flight events")
		}
		e := due[0]
		e.Attempts, e.NextAt, e.LastError = 1, at(time.Hour), "HTTP 500"
		if err := st.Reschedule(ctx, e); err != nil {
			t.Fatal(err)
		}
		due, _ = st.Due(ctx, at(10*time.Second), 10, nil)
		if len(due) != 2 || due[0].ID != "msg_0002" {
			t.Fatalf("a rescheduled event waits: %+v", due)
		}
		if err := st.Delivered(ctx, due[0]); err != nil {
			t.Fatal(err)
		}
		if err := st.Bury(ctx, due[1]); err != nil {
			t.Fatal(err)
		}
		if p, d, _ := st.OutboxStats(ctx); p != 1 || d != 1 {
			t.Fatalf("stats: pending %d dead %d, want 1 1", p, d)
		}
		dead, _ := st.DeadLetters(ctx, 10)
		if len(dead) != 1 || dead[0].ID != "msg_0003" || string(dead[0].Body) != `{"n":3}` {
			t.Fatalf("dead letters: %+v", dead)
		}
		if n, err := st.Revive(ctx, nil, at(time.Minute)); err != nil || n != 1 {
			t.Fatalf("Revive: %d %v", n, err)
		}
		due, _ = st.Due(ctx, at(time.Minute), 10, nil)
		if len(due) != 1 || due[0].ID != "msg_0003" || due[0].Attempts != 0 {
			t.Fatalf("a revived event is due again with fresh attempts: %+v", due)
		}
		if p, d, _ := st.OutboxStats(ctx); p != 2 || d != 0 {
			t.Fatalf("stats after revive: %d %d", p, d)
		}
	})

	t.Run("HastenMakesAZonesEventsDue", func(t *testing.T) {
		st := open(t)()
		defer st.Close()
		h, ok := st.(storage.Hastener)
		if !ok {
			t.Skip("store does not implement Hastener")
		}
		other := event(2, time.Hour)
		other.Zone = "other"
		write(t, st, &storage.Batch{Events: []storage.Event{event(1, time.Hour), other}})
		if n, err := h.Hasten(ctx, "z", at(time.Minute)); err != nil || n != 1 {
			t.Fatalf("Hasten: %d %v", n, err)
		}
		due, _ := st.Due(ctx, at(time.Minute), 10, nil)
		if len(due) != 1 || due[0].ID != "msg_0001" {
			t.Fatalf("only zone z's event becomes due: %+v", due)
		}
	})

	t.Run("ReopenKeepsEverything", func(t *testing.T) {
		o := open(t)
		st := o()
		live, gone, old := session(1, 0, "42"), session(2, 0, "43"), session(3, 0, "44")
		put(t, st, "z", live, gone, old)
		moved := old
		moved.ID = id(4)
		write(t, st, &storage.Batch{
			Rotations: []storage.RotationWrite{{Zone: "z", Rotation: idletrack.Rotation{Old: old.ID, Session: moved, GraceUntil: at(time.Minute), ForgetAt: at(time.Hour)}}},
			Ends:      []storage.EndWrite{endWrite(idletrack.End{Session: gone, Zone: "z", Reason: idletrack.ReasonIdle, EndedAt: at(30 * time.Minute)}, event(1, 0))},
			Events:    []storage.Event{event(2, 0)},
		})
		due, _ := st.Due(ctx, at(time.Hour), 10, nil)
		st.Bury(ctx, due[1])
		st.Close()

		st = o()
		defer st.Close()
		if r := lookup(t, st, "z", live.ID); r.Kind != storage.KindSession || r.Session != live {
			t.Fatalf("session lost: %+v", r)
		}
		if r := lookup(t, st, "z", gone.ID); r.Kind != storage.KindTombstone {
			t.Fatalf("tombstone lost: %+v", r)
		}
		if r := lookup(t, st, "z", old.ID); r.Kind != storage.KindAlias {
			t.Fatalf("alias lost: %+v", r)
		}
		if p, d, _ := st.OutboxStats(ctx); p != 1 || d != 1 {
			t.Fatalf("outbox lost: pending %d dead %d", p, d)
		}
		if ids, _ := st.Expiring(ctx, "z", at(0), 0, 10); len(ids) != 2 {
			t.Fatalf("deadline index lost: %v", ids)
		}
	})
	members(t, open)
}
