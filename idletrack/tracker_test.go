package idletrack

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// clock is the fake clock of these tests: Unix nanoseconds that only move
// when a test says so.
type clock struct{ t int64 }

func (c *clock) now() int64              { return c.t }
func (c *clock) advance(d time.Duration) { c.t += int64(d) }
func newClock() *clock                   { return &clock{t: time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC).UnixNano()} }
func testPolicy() Policy                 { p := DefaultPolicy(); p.Idle = 30 * time.Minute; return p }
func idOf(k *Keyer, v string) ID         { return k.ID("laravel_session", v) }
func newTestTracker(p Policy) (*Tracker, *Keyer) {
	return NewTracker("laravel_session", p), NewKeyer([]byte("0123456789abcdef0123456789abcdef"))
}

func TestKeyerIsKeyedAndZoned(t *testing.T) {
	a := NewKeyer([]byte("key-a"))
	b := NewKeyer([]byte("key-b"))
	if a.ID("z", "v") != a.ID("z", "v") {
		t.Fatal("same key, zone and value must give the same ID")
	}
	if a.ID("z", "v") == b.ID("z", "v") {
		t.Fatal("different keys must give different IDs")
	}
	if a.ID("z1", "v") == a.ID("z2", "v") {
		t.Fatal("zones must namespace IDs")
	}
	if a.ID("ab", "c") == a.ID("a", "bc") {
		t.Fatal("zone and value must not run together")
	}
	if s := a.ID("z", "secret-cookie").Short(); len(s) != 16 {
		t.Fatalf("Short() = %q, want 16 hex chars", s)
	}
}

func TestKeyerDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's instrumentation allocates")
	}
	k := NewKeyer([]byte("key"))
	k.ID("zone", "warm-up")
	if n := testing.AllocsPerRun(1000, func() { k.ID("laravel_session", "abcdefabcdefabcdefabcdefabcdefabcdefabcd") }); n != 0 {
		t.Fatalf("Keyer.ID allocates %.1f times per call", n)
	}
}

func TestStartedSessionIsActiveUntilIdleDeadline(t *testing.T) {
	c := newClock()
	tr, k := newTestTracker(testPolicy())
	id := idOf(k, "v1")
	if _, ok := tr.Start(id, c.now(), ""); !ok {
		t.Fatal("Start refused")
	}
	c.advance(29*time.Minute + 59*time.Second)
	v := tr.Request(id, c.now(), true)
	if v.Status != StatusActive {
		t.Fatalf("status %v, want active just before the deadline", v.Status)
	}
	if got := v.Remaining(c.now()); got != 30*60 {
		t.Fatalf("remaining %d s after activity, want 1800", got)
	}
	c.advance(30 * time.Minute)
	v = tr.Request(id, c.now(), true)
	if v.Status != StatusEnded || v.Reason != ReasonIdle || v.Ended == nil {
		t.Fatalf("verdict %+v, want ended idle with an End", v)
	}
	if want := c.now(); v.Ended.EndedAt != want {
		t.Fatalf("EndedAt %d, want the deadline %d", v.Ended.EndedAt, want)
	}
}

func TestPassiveRequestsDoNotExtend(t *testing.T) {
	c := newClock()
	tr, k := newTestTracker(testPolicy())
	id := idOf(k, "v1")
	tr.Start(id, c.now(), "")
	for range 10 {
		c.advance(5 * time.Minute)
		v := tr.Request(id, c.now(), false)
		if c.t < tr.mustGet(t, id).LastActivity+int64(30*time.Minute) && v.Status != StatusActive {
			t.Fatal("passive request refused while active")
		}
	}
	if v := tr.Request(id, c.now(), false); v.Status != StatusEnded {
		t.Fatalf("a session that only polls must expire; got %v", v.Status)
	}
}

func (tr *Tracker) mustGet(t *testing.T, id ID) Session {
	t.Helper()
	s, ok := tr.Get(id)
	if !ok {
		return Session{}
	}
	return s
}

func TestSweeperEndsSilentSessionsOnTimeExactlyOnce(t *testing.T) {
	c := newClock()
	tr, k := newTestTracker(testPolicy())
	a, b := idOf(k, "a"), idOf(k, "b")
	tr.Start(a, c.now(), "42")
	c.advance(10 * time.Minute)
	tr.Start(b, c.now(), "43")
	c.advance(19 * time.Minute)
	if got := tr.Expired(c.now(), 100); len(got) != 0 {
		t.Fatalf("nothing is due yet, got %d ends", len(got))
	}
	c.advance(time.Minute) // a's deadline
	got := tr.Expired(c.now(), 100)
	if len(got) != 1 || got[0].Session.ID != a || got[0].Reason != ReasonIdle {
		t.Fatalf("want exactly a ended idle, got %+v", got)
	}
	if got := tr.Expired(c.now(), 100); len(got) != 0 {
		t.Fatal("a session must end exactly once")
	}
	if v := tr.Request(a, c.now(), true); v.Status != StatusEnded || v.Ended != nil {
		t.Fatalf("replayed cookie must be refused without a second end, got %+v", v)
	}
	c.advance(10 * time.Minute)
	if got := tr.Expired(c.now(), 100); len(got) != 1 || got[0].Session.ID != b {
		t.Fatalf("want b ended, got %+v", got)
	}
}

func TestActivityMovesDeadlineLazily(t *testing.T) {
	c := newClock()
	tr, k := newTestTracker(testPolicy())
	id := idOf(k, "a")
	tr.Start(id, c.now(), "42")
	c.advance(20 * time.Minute)
	tr.Request(id, c.now(), true)
	c.advance(15 * time.Minute) // past the first deadline, within the second
	if got := tr.Expired(c.now(), 100); len(got) != 0 {
		t.Fatalf("an active session must not end: %+v", got)
	}
	c.advance(15 * time.Minute)
	got := tr.Expired(c.now(), 100)
	if len(got) != 1 {
		t.Fatalf("want 1 end after the moved deadline, got %d", len(got))
	}
	if want := time.Date(2026, 11, 21, 8, 50, 0, 0, time.UTC).UnixNano(); got[0].EndedAt != want {
		t.Fatalf("EndedAt = %v, want %v", time.Unix(0, got[0].EndedAt).UTC(), time.Unix(0, want).UTC())
	}
}

func TestAbsoluteDeadline(t *testing.T) {
	c := newClock()
	p := testPolicy()
	p.Absolute = 2 * time.Hour
	tr, k := newTestTracker(p)
	id := idOf(k, "a")
	tr.Start(id, c.now(), "42")
	for range 5 { // active every 20 minutes: idle never strikes
		c.advance(20 * time.Minute)
		if v := tr.Request(id, c.now(), true); v.Status != StatusActive {
			t.Fatalf("refused at %v while active and young", time.Duration(c.t))
		}
	}
	c.advance(20 * time.Minute) // 2h: the absolute deadline
	v := tr.Request(id, c.now(), true)
	if v.Status != StatusEnded || v.Reason != ReasonAbsolute {
		t.Fatalf("want absolute end, got %+v", v)
	}
	if want := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC).UnixNano(); v.Ended.EndedAt != want {
		t.Fatalf("absolute EndedAt must be start+absolute")
	}
}

func TestDurationCountsFromLogin(t *testing.T) {
	c := newClock()
	tr, k := newTestTracker(testPolicy())
	id := idOf(k, "a")
	tr.Start(id, c.now(), "") // anonymous visitor at 08:00
	c.advance(5 * time.Minute)
	uc := tr.SetUser(id, "42", c.now()) // login at 08:05
	if !uc.Login || uc.Ended != nil {
		t.Fatalf("first user is a login: %+v", uc)
	}
	for range 5 { // active every 5 minutes until 08:30
		c.advance(5 * time.Minute)
		tr.Request(id, c.now(), true)
	}
	c.advance(31 * time.Minute)
	got := tr.Expired(c.now(), 10)
	if len(got) != 1 {
		t.Fatalf("want 1 end, got %d", len(got))
	}
	if d := got[0].DurationSeconds(); d != 25*60 {
		t.Fatalf("duration %d s, want 1500 (login 08:05 to last activity 08:30)", d)
	}
	if got[0].Session.User != "42" || got[0].Session.Requests != 6 {
		t.Fatalf("user %q requests %d", got[0].Session.User, got[0].Session.Requests)
	}
}

func TestUserChangeEndsOldLogicalSession(t *testing.T) {
	c := newClock()
	tr, k := newTestTracker(testPolicy())
	id := idOf(k, "a")
	tr.Start(id, c.now(), "42")
	c.advance(time.Minute)
	uc := tr.SetUser(id, "43", c.now())
	if uc.Ended == nil || uc.Ended.Session.User != "42" || uc.Ended.Reason != ReasonLogout {
		t.Fatalf("want the old user's session ended as logout: %+v", uc)
	}
	if !uc.Login || uc.Session.User != "43" || uc.Session.StartedAt != c.now() {
		t.Fatalf("new logical session must start now for 43: %+v", uc.Session)
	}
	if again := tr.SetUser(id, "43", c.now()); again.Changed || again.Ended != nil {
		t.Fatal("the same user again changes nothing")
	}
}

func TestRotationKeepsSessionAndGracesOldValue(t *testing.T) {
	c := newClock()
	p := testPolicy()
	tr, k := newTestTracker(p)
	old, nu := idOf(k, "old"), idOf(k, "new")
	tr.Start(old, c.now(), "")
	start := c.now()
	c.advance(time.Minute)
	tr.SetUser(old, "42", c.now())
	login := c.now()
	r, ok := tr.Rotate(old, nu, c.now())
	if !ok {
		t.Fatal("rotate refused")
	}
	if r.Session.ID != nu || r.Session.StartedAt != start || r.Session.LoginAt != login || r.Session.User != "42" {
		t.Fatalf("rotation must keep start, login and user: %+v", r.Session)
	}
	// Parallel requests of the same page still carry the old value.
	c.advance(10 * time.Second)
	if v := tr.Request(old, c.now(), true); v.Status != StatusActive || v.ID != nu {
		t.Fatalf("old value within grace must resolve to the new session: %+v", v)
	}
	c.advance(25 * time.Second) // past the 30s grace
	if v := tr.Request(old, c.now(), true); v.Status != StatusRotated {
		t.Fatalf("old value past grace must be refused: %+v", v)
	}
	if v := tr.Request(nu, c.now(), true); v.Status != StatusActive {
		t.Fatal("new value must be active")
	}
	if tr.Established() != 1 {
		t.Fatalf("rotation must not change the count: %d", tr.Established())
	}
}

func TestChainedRotationsResolve(t *testing.T) {
	c := newClock()
	tr, k := newTestTracker(testPolicy())
	ids := []ID{idOf(k, "v0"), idOf(k, "v1"), idOf(k, "v2"), idOf(k, "v3")}
	tr.Start(ids[0], c.now(), "42")
	for i := 1; i < len(ids); i++ {
		c.advance(time.Second)
		if _, ok := tr.Rotate(ids[i-1], ids[i], c.now()); !ok {
			t.Fatalf("rotation %d refused", i)
		}
	}
	if v := tr.Request(ids[0], c.now(), true); v.Status != StatusActive || v.ID != ids[3] {
		t.Fatalf("v0 must resolve through the chain: %+v", v)
	}
}

// A session that rotates on every response (Laravel without laravel_key)
// rotates many times within one grace; every value handed out in that
// grace must still reach the session, however long the history.
func TestManyRotationsWithinGraceAllResolve(t *testing.T) {
	c := newClock()
	tr, k := newTestTracker(testPolicy())
	const n = 3 * maxAliasHops
	ids := make([]ID, n+1)
	for i := range ids {
		ids[i] = idOf(k, fmt.Sprintf("v%d", i))
	}
	tr.Start(ids[0], c.now(), "42")
	for i := 1; i <= n; i++ {
		c.advance(100 * time.Millisecond)
		if _, ok := tr.Rotate(ids[i-1], ids[i], c.now()); !ok {
			t.Fatalf("rotation %d refused", i)
		}
	}
	for i, id := range ids {
		if v := tr.Request(id, c.now(), false); v.Status != StatusActive || v.ID != ids[n] {
			t.Fatalf("value %d of %d: %+v, want active as the newest value", i, n, v)
		}
	}
	// Past the grace of them all, every old value is refused.
	c.advance(tr.Policy().RotationGrace)
	tr.Request(ids[n], c.now(), true)
	for i, id := range ids[:n] {
		if v := tr.Request(id, c.now(), false); v.Status != StatusRotated {
			t.Fatalf("value %d after the grace: %+v, want rotated", i, v)
		}
	}
}

func TestEndIsExactlyOnceAndRemembered(t *testing.T) {
	c := newClock()
	tr, k := newTestTracker(testPolicy())
	id := idOf(k, "a")
	tr.Start(id, c.now(), "42")
	if e := tr.End(id, ReasonLogout, c.now()); e == nil || e.Reason != ReasonLogout {
		t.Fatal("End must end a live session")
	}
	if e := tr.End(id, ReasonRevoked, c.now()); e != nil {
		t.Fatal("a second End must be a no-op")
	}
	c.advance(24 * time.Hour)
	if v := tr.Request(id, c.now(), true); v.Status != StatusEnded || v.Reason != ReasonLogout {
		t.Fatalf("ended ID must be refused: %+v", v)
	}
	if _, ok := tr.Start(id, c.now(), ""); ok {
		t.Fatal("an ended ID must never start again")
	}
	if got := tr.Expired(c.now()+int64(time.Hour), 10); len(got) != 0 {
		t.Fatal("an ended session must not be swept")
	}
}

func TestUnknownValueIsAdoptedOnProbation(t *testing.T) {
	c := newClock()
	tr, k := newTestTracker(testPolicy())
	id := idOf(k, "pre-existing")
	if v := tr.Request(id, c.now(), true); v.Status != StatusUnknown {
		t.Fatal("never-seen value must be unknown")
	}
	if v := tr.Adopt(id, c.now()); v.Status != StatusActive {
		t.Fatal("adopted value must be active")
	}
	if tr.Established() != 0 || tr.Len() != 1 {
		t.Fatalf("adopted value is on probation: established %d, len %d", tr.Established(), tr.Len())
	}
	if got := tr.Collect(nil); len(got) != 0 {
		t.Fatal("probationary sessions are not persisted")
	}
	c.advance(time.Second)
	tr.Request(id, c.now(), true)
	if tr.Established() != 1 {
		t.Fatal("second request must promote")
	}
	got := tr.Collect(nil)
	if len(got) != 1 {
		t.Fatal("promoted session must be persisted")
	}
	if got[0].Stored {
		t.Fatal("a promoted session's first write creates its record: it must not be marked as stored")
	}
	tr.Request(id, c.now()+1, true)
	if got := tr.Collect(nil); len(got) != 1 || !got[0].Stored {
		t.Fatalf("after its first write a session is stored: %+v", got)
	}
}

func TestFloodOfInventedValuesCannotPushOutRealSessions(t *testing.T) {
	c := newClock()
	p := testPolicy()
	p.MaxSessions, p.MaxProbation = 100, 50
	tr, k := newTestTracker(p)
	real := make([]ID, 100)
	for i := range real {
		real[i] = idOf(k, fmt.Sprintf("real-%d", i))
		if _, ok := tr.Start(real[i], c.now(), "u"); !ok {
			t.Fatalf("real session %d refused", i)
		}
	}
	for i := range 100_000 {
		id := idOf(k, fmt.Sprintf("invented-%d", i))
		if v := tr.Request(id, c.now(), true); v.Status == StatusUnknown {
			tr.Adopt(id, c.now())
		}
	}
	if tr.Len() > 150 {
		t.Fatalf("memory must stay bounded: %d sessions", tr.Len())
	}
	for i, id := range real {
		if v := tr.Request(id, c.now(), true); v.Status != StatusActive {
			t.Fatalf("real session %d pushed out: %+v", i, v)
		}
	}
	if _, ok := tr.Start(idOf(k, "one-too-many"), c.now(), ""); ok {
		t.Fatal("a full tracker must not start more sessions")
	}
	if tr.Established() != 100 {
		t.Fatalf("established %d", tr.Established())
	}
}

func TestProbationarySessionsExpireSilently(t *testing.T) {
	c := newClock()
	tr, k := newTestTracker(testPolicy())
	tr.Adopt(idOf(k, "x"), c.now())
	c.advance(31 * time.Minute)
	if got := tr.Expired(c.now(), 10); len(got) != 0 {
		t.Fatalf("an unconfirmed value must not produce an end event: %+v", got)
	}
	if tr.Len() != 0 {
		t.Fatal("it must be gone")
	}
}

func TestPolicyChangeMovesDeadlines(t *testing.T) {
	c := newClock()
	tr, k := newTestTracker(testPolicy())
	id := idOf(k, "a")
	tr.Start(id, c.now(), "42")
	c.advance(10 * time.Minute)
	p := testPolicy()
	p.Idle = 5 * time.Minute
	tr.SetPolicy(p)
	got := tr.Expired(c.now(), 10)
	if len(got) != 1 {
		t.Fatal("a shorter idle timeout must apply to existing sessions")
	}
	if want := time.Date(2026, 11, 21, 8, 5, 0, 0, time.UTC).UnixNano(); got[0].EndedAt != want {
		t.Fatal("EndedAt must be the deadline under the new policy")
	}
}

func TestClockStepsNeverEndEarlyOrTwice(t *testing.T) {
	c := newClock()
	tr, k := newTestTracker(testPolicy())
	id := idOf(k, "a")
	tr.Start(id, c.now(), "42")
	c.advance(10 * time.Minute)
	tr.Request(id, c.now(), true)
	last := c.now()
	c.advance(-2 * time.Hour) // the clock steps back
	tr.Request(id, c.now(), true)
	if s, _ := tr.Get(id); s.LastActivity != last {
		t.Fatal("a backwards step must not move activity back")
	}
	if got := tr.Expired(c.now(), 10); len(got) != 0 {
		t.Fatal("nothing ends after a backwards step")
	}
	c.t = last + int64(29*time.Minute)
	if got := tr.Expired(c.now(), 10); len(got) != 0 {
		t.Fatal("no early end")
	}
	c.advance(10 * time.Hour) // a big forward step ends it once
	if got := tr.Expired(c.now(), 10); len(got) != 1 || got[0].EndedAt != last+int64(30*time.Minute) {
		t.Fatalf("want one end at the deadline, got %+v", got)
	}
	if got := tr.Expired(c.now(), 10); len(got) != 0 {
		t.Fatal("never twice")
	}
}

func TestCollectReturnsChangesOnce(t *testing.T) {
	c := newClock()
	tr, k := newTestTracker(testPolicy())
	id := idOf(k, "a")
	tr.Start(id, c.now(), "42")
	if got := tr.Collect(nil); len(got) != 0 {
		t.Fatal("Start is persisted by its caller, not by Collect")
	}
	tr.Request(id, c.now()+1, true)
	tr.Request(id, c.now()+2, true)
	got := tr.Collect(nil)
	if len(got) != 1 || got[0].Session.LastActivity != c.now()+2 || got[0].ReqDelta != 2 || !got[0].Stored {
		t.Fatalf("want one change of a stored session with the last activity and 2 requests: %+v", got)
	}
	if got := tr.Collect(nil); len(got) != 0 {
		t.Fatal("a change is collected once")
	}
}

func TestLoadRestoresAndMerges(t *testing.T) {
	c := newClock()
	tr, k := newTestTracker(testPolicy())
	id := idOf(k, "a")
	s := Session{ID: id, User: "42", StartedAt: c.now(), LoginAt: c.now(), LastActivity: c.now() + int64(time.Minute), Requests: 7}
	tr.Load(s)
	if got, ok := tr.Get(id); !ok || got != s {
		t.Fatalf("Load must restore the session: %+v", got)
	}
	s.LastActivity += int64(time.Minute)
	s.Requests = 9
	tr.Load(s)
	if got, _ := tr.Get(id); got.LastActivity != s.LastActivity || got.Requests != 9 {
		t.Fatal("Load must merge newer activity")
	}
	if tr.Established() != 1 {
		t.Fatal("merging must not double count")
	}
}

func TestRequestPathDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's instrumentation allocates")
	}
	c := newClock()
	tr, k := newTestTracker(testPolicy())
	id := idOf(k, "a")
	tr.Start(id, c.now(), "42")
	tr.Request(id, c.now(), true)
	tr.Collect(nil)
	if n := testing.AllocsPerRun(1000, func() { tr.Request(id, c.now(), true) }); n != 0 {
		t.Fatalf("Request allocates %.1f times for a known session", n)
	}
}

func TestConcurrentRequestsAndSweeps(t *testing.T) {
	c := newClock()
	tr, k := newTestTracker(testPolicy())
	ids := make([]ID, 1000)
	for i := range ids {
		ids[i] = idOf(k, fmt.Sprint(i))
		tr.Start(ids[i], c.now(), "u")
	}
	base := c.now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	ended := map[ID]int{}
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(ids); i += 4 {
				if i%2 == 0 {
					tr.Request(ids[i], base+int64(10*time.Minute), true)
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 50 {
			for _, e := range tr.Expired(base+int64(35*time.Minute), 100) {
				mu.Lock()
				ended[e.Session.ID]++
				mu.Unlock()
			}
		}
	}()
	wg.Wait()
	for _, e := range tr.Expired(base+int64(35*time.Minute), 10000) {
		ended[e.Session.ID]++
	}
	for id, n := range ended {
		if n != 1 {
			t.Fatalf("%s ended %d times", id, n)
		}
	}
	if len(ended) < 500 {
		t.Fatalf("the 500 untouched sessions must end, %d did", len(ended))
	}
}

func TestInFlightFollowsRotation(t *testing.T) {
	c := newClock()
	tr, k := newTestTracker(testPolicy())
	old, nu := idOf(k, "old"), idOf(k, "new")
	tr.Start(old, c.now(), "42")
	tr.InFlight(old, 1) // the login
	tr.InFlight(old, 1) // a parallel request of the page
	if n := tr.InFlight(old, 0); n != 2 {
		t.Fatalf("in flight %d, want 2", n)
	}
	tr.Rotate(old, nu, c.now())
	if n := tr.InFlight(nu, 0); n != 2 {
		t.Fatalf("a rotation must carry the requests in flight: %d", n)
	}
	tr.InFlight(old, -1) // the parallel request ends, still naming the old value
	if n := tr.InFlight(nu, -1); n != 0 {
		t.Fatalf("after both ended: %d", n)
	}
	if n := tr.InFlight(nu, -1); n != 0 {
		t.Fatal("the count never goes below zero")
	}
}

// TestEndSaysWhetherTheUpstreamEverIssuedTheSession: an adopted value that
// the upstream never issued or rotated is marked, so that its end earns no
// durable tombstone (a flood of invented values sent twice each).
func TestEndSaysWhetherTheUpstreamEverIssuedTheSession(t *testing.T) {
	p := DefaultPolicy()
	tr := NewTracker("z", p)
	var now int64 = 1e18
	invented, issued, rotated, next := ID{1}, ID{2}, ID{3}, ID{4}
	for _, id := range []ID{invented, rotated} {
		tr.Adopt(id, now)
		tr.Request(id, now+1, true) // promoted by its second request
	}
	tr.Start(issued, now, "")
	if _, ok := tr.Rotate(rotated, next, now+2); !ok {
		t.Fatal("rotate")
	}
	for _, c := range []struct {
		id      ID
		adopted bool
	}{{invented, true}, {issued, false}, {next, false}} {
		e := tr.End(c.id, ReasonLogout, now+3)
		if e == nil || e.Adopted != c.adopted {
			t.Errorf("End(%x) = %+v; want Adopted %v", c.id[:1], e, c.adopted)
		}
	}
}

// TestMemberIDIsTheIDInTheMembersZone: the stored member IDs stay what
// they were when the zone name was built by concatenation, and a member
// read costs no allocation.
func TestMemberIDIsTheIDInTheMembersZone(t *testing.T) {
	k := NewKeyer([]byte("key"))
	if got, want := k.MemberID("wordpress", "wordpress_0123456789abcdef", "alice|1|tok"), k.ID("wordpress\x00member\x00wordpress_0123456789abcdef", "alice|1|tok"); got != want {
		t.Fatalf("MemberID %v, want %v", got, want)
	}
	if k.MemberID("z", "n", "v") == k.ID("z", "v") {
		t.Fatal("a member ID equals the session ID of the same value")
	}
	if raceEnabled {
		return
	}
	if n := testing.AllocsPerRun(100, func() { k.MemberID("wordpress", "wordpress_0123456789abcdef0123456789abcdef", "alice%7C1%7Ctoken") }); n != 0 {
		t.Fatalf("MemberID allocates %.1f times per call", n)
	}
}
