package storage_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idlegate/idlegate/idletrack"
	"github.com/idlegate/idlegate/storage"
)

// Tests of the activity log: activity-only writes are appended to the log
// and merged into every read; the fold writes them into the records.

var lt0 = time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC).UnixNano()

func lat(d time.Duration) int64 { return lt0 + int64(d) }

func lid(n int) idletrack.ID {
	var i idletrack.ID
	copy(i[:], fmt.Sprintf("logtest-%08d", n))
	return i
}

func lsession(n int) idletrack.Session {
	return idletrack.Session{ID: lid(n), User: "42", StartedAt: lat(0), LoginAt: lat(0), LastActivity: lat(0), Requests: 1}
}

// openBolt opens the store at path with o.
func openBolt(t testing.TB, path string, o storage.BoltOptions) *storage.Bolt {
	t.Helper()
	st, err := storage.OpenBolt(path, o)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// logStore opens a store at path whose log is folded only by Fold; it is
// closed when the test ends, if the test has not closed it.
func logStore(t testing.TB, path string) *storage.Bolt {
	t.Helper()
	st := openBolt(t, path, storage.BoltOptions{})
	t.Cleanup(func() { st.Close() })
	storage.SetLogLimits(st, 1<<30, 1<<30, 1<<30, false)
	return st
}

// reopen closes st as a crash leaves it (Close does not fold) and opens the
// file at path again.
func reopen(t testing.TB, st *storage.Bolt, path string) *storage.Bolt {
	t.Helper()
	st.Close()
	return logStore(t, path)
}

// loggedSession stores session 1 and then logs its activity at at with
// requests; it returns the session as stored and as active.
func loggedSession(t testing.TB, st storage.Store, at time.Duration, requests uint32) (s, active idletrack.Session) {
	t.Helper()
	s = lsession(1)
	lapply(t, st, lactivity(s))
	active = s
	active.LastActivity, active.Requests = lat(at), requests
	lapply(t, st, lactivity(active))
	return s, active
}

func lapply(t testing.TB, st storage.Store, b *storage.Batch) []storage.EndResult {
	t.Helper()
	res, err := st.Apply(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func lactivity(ss ...idletrack.Session) *storage.Batch {
	b := &storage.Batch{}
	for _, s := range ss {
		b.Sessions = append(b.Sessions, storage.SessionWrite{Zone: "z", Change: idletrack.Change{Session: s, ReqDelta: 1}, ActivityOnly: true})
	}
	return b
}

func lookupSession(t testing.TB, st storage.Store, id idletrack.ID) idletrack.Session {
	t.Helper()
	r, err := st.Lookup(context.Background(), "z", id)
	if err != nil {
		t.Fatal(err)
	}
	if r.Kind != storage.KindSession {
		t.Fatalf("Lookup: kind %d, want a session", r.Kind)
	}
	return r.Session
}

func loadAll(t testing.TB, st storage.Store) map[idletrack.ID]idletrack.Session {
	t.Helper()
	out := map[idletrack.ID]idletrack.Session{}
	if err := st.Load(context.Background(), "z", func(s idletrack.Session) { out[s.ID] = s }, func(storage.Alias) {}); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestBoltActivityIsLoggedAndReadBackAfterCrash(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sessions.db")
	st := logStore(t, path)
	s, active := loggedSession(t, st, time.Minute, 5)
	if raw, _ := storage.RawSession(st, "z", s.ID); raw != s {
		t.Fatalf("activity must go to the log, not rewrite the record: %+v", raw)
	}
	if n, _ := storage.LogState(st, "z"); n != 1 {
		t.Fatalf("index holds %d sessions, want 1", n)
	}
	if got := lookupSession(t, st, s.ID); got != active {
		t.Fatalf("Lookup = %+v, want %+v", got, active)
	}
	// A crash: nothing folded, the process gone. Close does not fold.
	st = reopen(t, st, path)
	if got := lookupSession(t, st, s.ID); got != active {
		t.Fatalf("after reopen, Lookup = %+v, want %+v", got, active)
	}
	if got := loadAll(t, st)[s.ID]; got != active {
		t.Fatalf("after reopen, Load = %+v, want %+v", got, active)
	}
	// Older activity changes nothing.
	stale := active
	stale.LastActivity = s.LastActivity
	lapply(t, st, lactivity(stale))
	if got := lookupSession(t, st, s.ID); got != active {
		t.Fatalf("stale activity lowered the session: %+v", got)
	}
}

func TestBoltEndSeesLoggedActivity(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sessions.db")
	st := logStore(t, path)
	s, active := loggedSession(t, st, 20*time.Minute, 9)

	p := idletrack.DefaultPolicy()
	p.Idle = 30 * time.Minute
	var ended []idletrack.End
	end := func(e idletrack.End) storage.EndWrite {
		return storage.EndWrite{End: e, Policy: p, TombstoneUntil: e.EndedAt + int64(time.Hour),
			Events: func(e idletrack.End) []storage.Event {
				ended = append(ended, e)
				return []storage.Event{{ID: "msg_" + e.Session.ID.Short(), Zone: "z", Type: "session.ended", At: e.EndedAt, NextAt: e.EndedAt}}
			}}
	}
	// Memory's copy is stale (activity at 0): the idle end at 30m must
	// yield to the logged activity at 20m.
	res := lapply(t, st, &storage.Batch{Ends: []storage.EndWrite{end(idletrack.End{Session: s, Zone: "z", Reason: idletrack.ReasonIdle, EndedAt: lat(30 * time.Minute)})}})
	if res[0].Ended || res[0].Current == nil || *res[0].Current != active {
		t.Fatalf("the idle end must yield to logged activity: %+v", res[0])
	}
	st = reopen(t, st, path)
	if got := lookupSession(t, st, s.ID); got != active {
		t.Fatalf("after the kept session and a reopen: %+v, want %+v", got, active)
	}
	later := active
	later.LastActivity, later.Requests = lat(25*time.Minute), 12
	lapply(t, st, lactivity(later))
	res = lapply(t, st, &storage.Batch{Ends: []storage.EndWrite{end(idletrack.End{Session: s, Zone: "z", Reason: idletrack.ReasonLogout, EndedAt: lat(40 * time.Minute)})}})
	if !res[0].Ended || res[0].End.Session != later || len(ended) != 1 || ended[0].Session != later {
		t.Fatalf("the end (and its webhook) must carry the logged activity %+v: %+v, events %+v", later, res[0], ended)
	}
	if d := ended[0].Session.LastActivity - ended[0].Session.OnlineSince(); d != int64(25*time.Minute) {
		t.Fatalf("duration %v, want 25m", time.Duration(d))
	}
}

func TestBoltFoldWritesMergedRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sessions.db")
	st := logStore(t, path)
	const n = 20_000 // more than one fold chunk
	want := map[idletrack.ID]idletrack.Session{}
	var b storage.Batch
	for i := range n {
		s := lsession(i)
		want[s.ID] = s
		b.Sessions = append(b.Sessions, storage.SessionWrite{Zone: "z", Change: idletrack.Change{Session: s}})
	}
	lapply(t, st, &b)
	for round := 1; round <= 5; round++ {
		var ss []idletrack.Session
		for i := round; i < n; i += round {
			s := want[lid(i)]
			s.LastActivity, s.Requests = lat(time.Duration(round)*time.Second), s.Requests+uint32(round)
			want[s.ID] = s
			ss = append(ss, s)
		}
		lapply(t, st, lactivity(ss...))
	}
	if idx, vals := storage.LogState(st, "z"); idx != n-1 || vals != 5 {
		t.Fatalf("before the fold: index %d, values %d", idx, vals)
	}
	if err := storage.Fold(st); err != nil {
		t.Fatal(err)
	}
	if idx, vals := storage.LogState(st, "z"); idx != 0 || vals != 0 || storage.LogValues(st, "z") != 0 {
		t.Fatalf("after the fold: index %d, values %d (%d on disk), want an empty log", idx, vals, storage.LogValues(st, "z"))
	}
	for id, s := range want {
		if raw, ok := storage.RawSession(st, "z", id); !ok || raw != s {
			t.Fatalf("folded record %+v, want %+v", raw, s)
		}
	}
	st = reopen(t, st, path)
	got := loadAll(t, st)
	if len(got) != n {
		t.Fatalf("loaded %d sessions", len(got))
	}
	for id, s := range want {
		if got[id] != s {
			t.Fatalf("after fold and reopen: %+v, want %+v", got[id], s)
		}
	}
}

// A fold that runs while flushes keep logging leaves the newer activity in
// the log, and a crash then gives the merged state.
func TestBoltFoldInterleavedWithFlushes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sessions.db")
	st := openBolt(t, path, storage.BoltOptions{})
	storage.SetLogLimits(st, 500, 4, 1<<30, true) // fold often, in the background
	const n = 3000
	want := make([]idletrack.Session, n)
	var b storage.Batch
	for i := range n {
		want[i] = lsession(i)
		b.Sessions = append(b.Sessions, storage.SessionWrite{Zone: "z", Change: idletrack.Change{Session: want[i]}})
	}
	lapply(t, st, &b)
	for round := 1; round <= 60; round++ {
		var ss []idletrack.Session
		for i := round % 7; i < n; i += 7 {
			want[i].LastActivity, want[i].Requests = lat(time.Duration(round)*time.Second), want[i].Requests+1
			ss = append(ss, want[i])
		}
		lapply(t, st, lactivity(ss...))
		if round%10 == 0 {
			// A user change under the same ID: a new logical session with
			// fewer requests. Stale entries must not raise it.
			s := want[round]
			s.User, s.StartedAt, s.LoginAt, s.Requests = "new", lat(time.Duration(round)*time.Second), lat(time.Duration(round)*time.Second), 1
			s.LastActivity = max(s.LastActivity, want[round].LastActivity)
			want[round] = s
			lapply(t, st, &storage.Batch{Sessions: []storage.SessionWrite{{Zone: "z", Change: idletrack.Change{Session: s}}}})
		}
	}
	check := func(what string) {
		got := loadAll(t, st)
		for _, s := range want {
			if got[s.ID] != s {
				t.Fatalf("%s: %+v, want %+v", what, got[s.ID], s)
			}
			if l := lookupSession(t, st, s.ID); l != s {
				t.Fatalf("%s: Lookup %+v, want %+v", what, l, s)
			}
		}
	}
	check("live")
	st = reopen(t, st, path)
	check("after reopen")
}

func TestBoltStaleLogEntriesDoNotResurrect(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sessions.db")
	st := logStore(t, path)
	s, _ := loggedSession(t, st, time.Minute, 50)
	p := idletrack.DefaultPolicy()
	e := idletrack.End{Session: s, Zone: "z", Reason: idletrack.ReasonLogout, EndedAt: lat(2 * time.Minute)}
	lapply(t, st, &storage.Batch{Ends: []storage.EndWrite{{End: e, Policy: p, TombstoneUntil: lat(time.Hour)}}})
	// The ended session's activity stays in the log until a fold.
	st = reopen(t, st, path)
	if r, _ := st.Lookup(context.Background(), "z", s.ID); r.Kind != storage.KindTombstone {
		t.Fatalf("after reopen: %+v, want the tombstone", r)
	}
	if len(loadAll(t, st)) != 0 {
		t.Fatal("an ended session came back from the log")
	}
	if idx, _ := storage.LogState(st, "z"); idx != 0 {
		t.Fatalf("the ended session is still in the index: %d", idx)
	}
	// Its tombstone is forgotten; a new session under the ID starts afresh.
	if _, err := st.Purge(context.Background(), lat(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	again := s
	again.StartedAt, again.LoginAt, again.LastActivity, again.Requests = lat(3*time.Hour), lat(3*time.Hour), lat(3*time.Hour), 1
	lapply(t, st, &storage.Batch{Sessions: []storage.SessionWrite{{Zone: "z", Change: idletrack.Change{Session: again}}}})
	if got := lookupSession(t, st, s.ID); got != again {
		t.Fatalf("new session under an old ID: %+v, want %+v", got, again)
	}
	st = reopen(t, st, path)
	if got := lookupSession(t, st, s.ID); got != again {
		t.Fatalf("after reopen: %+v, want %+v", got, again)
	}
	if err := storage.Fold(st); err != nil {
		t.Fatal(err)
	}
	if raw, _ := storage.RawSession(st, "z", s.ID); raw != again {
		t.Fatalf("after a fold: %+v, want %+v", raw, again)
	}
}

func TestBoltRotationCarriesLoggedActivity(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sessions.db")
	st := logStore(t, path)
	s, active := loggedSession(t, st, 10*time.Minute, 7)
	moved := s // a copy without the logged activity
	moved.ID = lid(2)
	lapply(t, st, &storage.Batch{Rotations: []storage.RotationWrite{{Zone: "z", Rotation: idletrack.Rotation{
		Old: s.ID, Session: moved, GraceUntil: lat(11 * time.Minute), ForgetAt: lat(time.Hour)}}}})
	want := active
	want.ID = moved.ID
	for _, reopened := range []bool{false, true} {
		if reopened {
			st = reopen(t, st, path)
		}
		if got := lookupSession(t, st, moved.ID); got != want {
			t.Fatalf("reopen %v: rotated session %+v, want %+v", reopened, got, want)
		}
		if r, _ := st.Lookup(context.Background(), "z", s.ID); r.Kind != storage.KindAlias {
			t.Fatalf("reopen %v: old ID %+v, want an alias", reopened, r)
		}
		if got := loadAll(t, st); len(got) != 1 || got[moved.ID] != want {
			t.Fatalf("reopen %v: Load %+v", reopened, got)
		}
	}
}

// Without a fold, the index stops growing at its cap: further sessions take
// the rewrite path.
func TestBoltLogIndexIsBounded(t *testing.T) {
	st := logStore(t, filepath.Join(t.TempDir(), "sessions.db"))
	storage.SetLogLimits(st, 1<<30, 1<<30, 10, false)
	var ss []idletrack.Session
	for i := range 100 {
		ss = append(ss, lsession(i))
	}
	lapply(t, st, lactivity(ss...))
	for i := range ss {
		ss[i].LastActivity, ss[i].Requests = lat(time.Minute), 3
	}
	lapply(t, st, lactivity(ss...))
	if idx, _ := storage.LogState(st, "z"); idx != 10 {
		t.Fatalf("index holds %d, want the cap of 10", idx)
	}
	for _, s := range ss {
		if got := lookupSession(t, st, s.ID); got != s {
			t.Fatalf("%+v, want %+v", got, s)
		}
	}
}

// Readers never see a session's activity go back while flushes and folds
// run: each reads the index that matches its snapshot.
func TestBoltReadsAreConsistentWithFolds(t *testing.T) {
	st := openBolt(t, filepath.Join(t.TempDir(), "sessions.db"), storage.BoltOptions{})
	defer st.Close()
	storage.SetLogLimits(st, 50, 3, 1<<30, true)
	const n = 200
	var ss []idletrack.Session
	for i := range n {
		ss = append(ss, lsession(i))
	}
	lapply(t, st, lactivity(ss...))
	var stop atomic.Bool
	var wg sync.WaitGroup
	for r := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			seen := make([]int64, n)
			for i := r; !stop.Load(); i = (i + 7) % n {
				got, err := st.Lookup(context.Background(), "z", lid(i))
				if err != nil || got.Kind != storage.KindSession {
					t.Errorf("Lookup: %+v %v", got, err)
					return
				}
				if got.Session.LastActivity < seen[i] {
					t.Errorf("session %d went back from %d to %d", i, seen[i], got.Session.LastActivity)
					return
				}
				seen[i] = got.Session.LastActivity
			}
		}()
	}
	for round := 1; round <= 300; round++ {
		for i := range ss {
			ss[i].LastActivity, ss[i].Requests = lat(time.Duration(round)*time.Millisecond), ss[i].Requests+1
		}
		lapply(t, st, lactivity(ss...))
	}
	stop.Store(true)
	wg.Wait()
}

// A background fold that fails is reported through FoldError, and the
// logged activity of the other sessions is still read back, before and
// after a reopen.
func TestBoltFoldErrorIsReported(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sessions.db")
	errs := make(chan error, 8)
	st := openBolt(t, path, storage.BoltOptions{FoldError: func(err error) {
		select {
		case errs <- err:
		default:
		}
	}})
	storage.SetLogLimits(st, 1<<30, 1<<30, 1<<30, false)
	var b storage.Batch
	for i := range 3 {
		b.Sessions = append(b.Sessions, storage.SessionWrite{Zone: "z", Change: idletrack.Change{Session: lsession(i)}})
	}
	lapply(t, st, &b)
	ss := []idletrack.Session{lsession(0), lsession(1), lsession(2)}
	for i := range ss {
		ss[i].LastActivity, ss[i].Requests = lat(time.Minute), 5
	}
	lapply(t, st, lactivity(ss...))
	if err := storage.PutRawRecord(st, "z", lid(1), []byte("damaged")); err != nil {
		t.Fatal(err)
	}
	// The next flush finds a fold due and starts it in the background.
	storage.SetLogLimits(st, 1<<30, 1, 1<<30, true)
	ss[0].LastActivity = lat(2 * time.Minute)
	lapply(t, st, lactivity(ss[0]))
	select {
	case err := <-errs:
		if err == nil {
			t.Fatal("FoldError called with nil")
		}
		t.Logf("reported: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the failed fold was not reported")
	}
	if got := lookupSession(t, st, lid(0)); got.LastActivity != lat(2*time.Minute) {
		t.Errorf("after the failed fold: %+v", got)
	}
	if got := lookupSession(t, st, lid(2)); got.LastActivity != lat(time.Minute) || got.Requests != 5 {
		t.Errorf("after the failed fold: %+v", got)
	}
	st = reopen(t, st, path)
	if got := lookupSession(t, st, lid(2)); got.LastActivity != lat(time.Minute) || got.Requests != 5 {
		t.Errorf("reopened after the failed fold: %+v", got)
	}
}

// A flush whose session has the identity that its logged activity was
// checked against is logged without reading the record; any other identity
// (a login, a user switch within one clock tick, a new start under the same
// ID) must still rewrite the record, and the activity logged before it must
// not leak into the new one.
func TestBoltLoggedIdentityDecidesWithoutTheRecord(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*idletrack.Session)
	}{
		{"same identity", func(*idletrack.Session) {}},
		{"login time", func(s *idletrack.Session) { s.LoginAt = lat(3 * time.Minute) }},
		{"user in the same tick", func(s *idletrack.Session) { s.User = "43" }},
		{"new start", func(s *idletrack.Session) {
			s.StartedAt, s.LoginAt, s.Requests = lat(3*time.Minute), lat(3*time.Minute), 1
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "sessions.db")
			st := logStore(t, path)
			s, active := loggedSession(t, st, time.Minute, 5)
			// Logged again on the index alone; a stale copy changes nothing.
			active.LastActivity, active.Requests = lat(2*time.Minute), 7
			lapply(t, st, lactivity(active))
			stale := active
			stale.LastActivity, stale.Requests = lat(time.Minute), 7
			lapply(t, st, lactivity(stale))
			if raw, _ := storage.RawSession(st, "z", s.ID); raw != s {
				t.Fatalf("activity must go to the log, not rewrite the record: %+v", raw)
			}
			if got := lookupSession(t, st, s.ID); got != active {
				t.Fatalf("Lookup = %+v, want %+v", got, active)
			}

			next := active
			next.LastActivity, next.Requests = lat(4*time.Minute), next.Requests+1
			tc.change(&next)
			if next.StartedAt != active.StartedAt {
				next.Requests = 1
			}
			lapply(t, st, lactivity(next))
			if got := lookupSession(t, st, s.ID); got != next {
				t.Fatalf("Lookup = %+v, want %+v", got, next)
			}
			st = reopen(t, st, path)
			if got := loadAll(t, st)[s.ID]; got != next {
				t.Fatalf("after reopen, Load = %+v, want %+v", got, next)
			}
		})
	}
}

// stored is the flush's write of sessions the store was given before
// (idletrack.Change.Stored): logged without a read of the record.
func stored(ss ...idletrack.Session) *storage.Batch {
	b := lactivity(ss...)
	for i := range b.Sessions {
		b.Sessions[i].Stored = true
	}
	return b
}

// A flush logs the activity of a session it was told is stored without
// reading the record; the activity must apply to that record only: not to
// a record of the same ID with another start, login or user, and not to a
// record written later under the ID. Reads, the replay at open and the
// fold must all agree.
func TestBoltStoredActivityAppliesOnlyToItsRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sessions.db")
	st := logStore(t, path)
	mine := lsession(1)
	lapply(t, st, lactivity(mine))
	other := lsession(2)
	lapply(t, st, lactivity(other))

	// 1: the same record: its activity applies.
	active := mine
	active.LastActivity, active.Requests = lat(time.Minute), 7
	// 2: the record of ID 2 has another user: it stays as written.
	stale := other
	stale.User, stale.LastActivity, stale.Requests = "99", lat(time.Hour), 500
	// 3: no record of ID 3 yet; the one written after starts afresh.
	early := lsession(3)
	early.LastActivity, early.Requests = lat(2*time.Hour), 900
	lapply(t, st, stored(active, stale, early))
	if _, found := storage.RawSession(st, "z", lid(3)); found {
		t.Fatal("a stored write created a record")
	}
	later := lsession(3)
	later.StartedAt, later.LastActivity = lat(time.Minute), lat(time.Minute)
	lapply(t, st, &storage.Batch{Sessions: []storage.SessionWrite{{Zone: "z", Change: idletrack.Change{Session: later}}}})

	want := map[idletrack.ID]idletrack.Session{mine.ID: active, other.ID: other, later.ID: later}
	check := func(when string) {
		t.Helper()
		for id, w := range want {
			if got := lookupSession(t, st, id); got != w {
				t.Errorf("%s: Lookup %s: %+v, want %+v", when, id[8:], got, w)
			}
		}
		if got := loadAll(t, st); len(got) != len(want) {
			t.Errorf("%s: Load: %d sessions, want %d", when, len(got), len(want))
		} else {
			for id, w := range want {
				if got[id] != w {
					t.Errorf("%s: Load %s: %+v, want %+v", when, id[8:], got[id], w)
				}
			}
		}
	}
	check("logged")
	st = reopen(t, st, path)
	check("after reopen")
	// Stored activity of ID 2 under its real identity applies again.
	again := other
	again.LastActivity, again.Requests = lat(3*time.Minute), 3
	lapply(t, st, stored(again))
	want[other.ID] = again
	check("logged under the record's identity")
	if err := storage.Fold(st); err != nil {
		t.Fatal(err)
	}
	for id, w := range want {
		if raw, _ := storage.RawSession(st, "z", id); raw != w {
			t.Errorf("after a fold: record %s: %+v, want %+v", id[8:], raw, w)
		}
	}
	st = reopen(t, st, path)
	check("folded and reopened")
}

// A file written before the log held identities has values of 28-byte
// entries; they are read back and apply to the record they meet, and the
// activity logged after them merges with them.
func TestBoltReadsTheLogOfAnOlderFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sessions.db")
	st := logStore(t, path)
	s := lsession(1)
	lapply(t, st, lactivity(s))
	if err := storage.PutLogValueV1(st, "z", s.ID, lat(time.Hour), 40); err != nil {
		t.Fatal(err)
	}
	st = reopen(t, st, path)
	want := s
	want.LastActivity, want.Requests = lat(time.Hour), 40
	if got := lookupSession(t, st, s.ID); got != want {
		t.Fatalf("older log value: %+v, want %+v", got, want)
	}
	next := s
	next.LastActivity, next.Requests = lat(2*time.Hour), 45
	lapply(t, st, stored(next))
	want = next
	for _, when := range []string{"logged", "reopened"} {
		if got := lookupSession(t, st, s.ID); got != want {
			t.Fatalf("%s: %+v, want %+v", when, got, want)
		}
		st = reopen(t, st, path)
	}
	if err := storage.Fold(st); err != nil {
		t.Fatal(err)
	}
	if raw, _ := storage.RawSession(st, "z", s.ID); raw != want {
		t.Fatalf("after a fold: %+v, want %+v", raw, want)
	}
}

// hid is an ID spread over the ID space as the HMACs of cookie values are
// (lid's all share a first byte, so all fall in one range of a fold).
func hid(n int) idletrack.ID {
	sum := sha256.Sum256([]byte(strconv.Itoa(n)))
	return idletrack.ID(sum[:16])
}

// A fold due to a full index folds one range of the ID space: it writes
// those records, drops only their entries from the index and logs a marker
// that drops them again at replay, while the values stay until every range
// is folded; the activity logged after the fold began stays logged. After
// a fold of every range the log is empty. A crash at any step replays to
// the index the store held.
func TestBoltRangeFoldsDropOnlyWhatTheyFolded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sessions.db")
	st := logStore(t, path)
	storage.SetLogLimits(st, 1, 1<<30, 1<<30, false) // a range fold whenever the index holds a session
	const n = 3000
	want := make(map[idletrack.ID]idletrack.Session, n)
	stored := make(map[idletrack.ID]idletrack.Session, n)
	var b storage.Batch
	var ss []idletrack.Session
	for i := range n {
		s := lsession(i)
		s.ID = hid(i)
		stored[s.ID] = s
		b.Sessions = append(b.Sessions, storage.SessionWrite{Zone: "z", Change: idletrack.Change{Session: s}})
		s.LastActivity, s.Requests = lat(time.Minute), 5
		want[s.ID] = s
		ss = append(ss, s)
	}
	lapply(t, st, &b)
	lapply(t, st, lactivity(ss...))
	check := func(what string, wantIndex int) {
		t.Helper()
		if idx, _ := storage.LogState(st, "z"); idx != wantIndex {
			t.Fatalf("%s: index holds %d sessions, want %d", what, idx, wantIndex)
		}
		for id, s := range want {
			if got := lookupSession(t, st, id); got != s {
				t.Fatalf("%s: %+v, want %+v", what, got, s)
			}
		}
	}
	check("logged", n)
	folded := map[int]bool{}
	index := n
	for step := 0; len(folded) < 16; step++ {
		before := storage.LogParts(st, "z")
		var again []idletrack.Session
		if step == 0 {
			// A flush between the fold's snapshot and its write, of
			// sessions of every range: those of the range folded stay in
			// the index (the fold did not begin after their activity),
			// and the fold writes their newest activity.
			storage.OnFoldBegun(st, func() {
				next := map[int]int{}
				for id, s := range want {
					if p := int(id[0] >> 4); next[p] < 5 {
						next[p]++
						s.LastActivity, s.Requests = lat(2*time.Minute), 6
						want[id] = s
						again = append(again, s)
					}
				}
				lapply(t, st, lactivity(again...))
			})
		}
		if ok, err := storage.FoldStep(st); err != nil || !ok {
			t.Fatalf("step %d: fold %v %v", step, ok, err)
		}
		storage.OnFoldBegun(st, nil)
		after := storage.LogParts(st, "z")
		part := -1
		for p := range after {
			switch {
			case after[p] == before[p]:
			case part < 0 && before[p] > 5 && after[p] == len(again)/16:
				part = p
			default:
				t.Fatalf("step %d: range %d held %d sessions, now %d; more than one range folded", step, p, before[p], after[p])
			}
		}
		if part < 0 || folded[part] {
			t.Fatalf("step %d: folded range %d (%v before, %v after)", step, part, before, after)
		}
		folded[part] = true
		index -= before[part] - after[part]
		for id, s := range want {
			if int(id[0]>>4) == part {
				stored[id] = s
			}
			if raw, _ := storage.RawSession(st, "z", id); raw != stored[id] {
				t.Fatalf("step %d: record %+v of a session in range %d, want %+v (ranges folded: %v)", step, raw, id[0]>>4, stored[id], folded)
			}
		}
		check(fmt.Sprintf("step %d", step), index)
		if vals := storage.LogValues(st, "z"); len(folded) < 16 && vals < 2 {
			t.Fatalf("step %d: %d values on disk: the activity of ranges not folded went", step, vals)
		}
		st = reopen(t, st, path)
		storage.SetLogLimits(st, 1, 1<<30, 1<<30, false)
		check(fmt.Sprintf("step %d, reopened", step), index)
	}
	// The reopen forgot which ranges were clean: one more cycle empties
	// the log of the activity logged at step 0.
	for {
		if ok, err := storage.FoldStep(st); err != nil {
			t.Fatal(err)
		} else if !ok {
			break
		}
	}
	if idx, vals := storage.LogState(st, "z"); idx != 0 || vals != 0 || storage.LogValues(st, "z") != 0 {
		t.Fatalf("after every range: index %d, values %d (%d on disk), want an empty log", idx, vals, storage.LogValues(st, "z"))
	}
	for id, s := range want {
		if raw, _ := storage.RawSession(st, "z", id); raw != s {
			t.Fatalf("after every range: record %+v, want %+v", raw, s)
		}
	}
	st = reopen(t, st, path)
	check("folded, reopened", 0)
}
