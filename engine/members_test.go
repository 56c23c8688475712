package engine

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idlegate/idlegate/idletrack"
	"github.com/idlegate/idlegate/storage"
)

// memberCounter counts the store's member lookups.
type memberCounter struct {
	storage.Store
	n atomic.Int64
}

func (c *memberCounter) LookupMember(ctx context.Context, zone string, id idletrack.ID) (storage.MemberRecord, error) {
	c.n.Add(1)
	return c.Store.LookupMember(ctx, zone, id)
}

// waitMembers waits until the store holds member m.
func waitMember(t *testing.T, f *fixture, m idletrack.ID) {
	t.Helper()
	eventually(t, "the member binding to be stored", func() bool {
		r, err := f.store.LookupMember(context.Background(), "sid", m)
		return err == nil && r.Found
	})
}

// TestMemberOfAnEndedSessionIsRefusedAcrossRestart: the credential a
// login set besides the session cookie (WordPress's wordpress_<hash>)
// stands for its session: live while it lives, ended once it ends, also
// after a restart, when only the store knows.
func TestMemberOfAnEndedSessionIsRefusedAcrossRestart(t *testing.T) {
	clk := &clock{t: time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)}
	path := filepath.Join(t.TempDir(), "s.db")
	f := start(t, path, clk, nil)
	ctx := context.Background()
	sid := f.z.ID("logged-in-value")
	if ok, err := f.z.Start(sid, "alice", f.e.Now()); !ok || err != nil {
		t.Fatalf("Start: %v %v", ok, err)
	}
	auth := f.z.MemberID("wordpress_h", "alice|123|token|hmac")
	if auth == f.z.ID("alice|123|token|hmac") {
		t.Fatal("a member's ID must differ from the session ID of the same value")
	}
	f.z.BindMembers(sid, []MemberBind{{ID: auth, Name: "wordpress_h"}}, f.e.Now())
	if v := f.z.Member(ctx, auth, f.e.Now()); v.Status != idletrack.StatusActive || v.ID != sid {
		t.Fatalf("member of a live session: %+v", v)
	}
	waitMember(t, f, auth)

	clk.advance(31 * time.Minute)
	if v := f.z.Member(ctx, auth, f.e.Now()); v.Status != idletrack.StatusEnded || v.Reason != idletrack.ReasonIdle {
		t.Fatalf("member of an expired session: %+v, want ended (idle)", v)
	}
	eventually(t, "the end to be stored", func() bool {
		r, _ := f.store.Lookup(ctx, "sid", sid)
		return r.Kind == storage.KindTombstone
	})
	f.stop(t)

	var c *memberCounter
	f = start(t, path, clk, func(s storage.Store) storage.Store { c = &memberCounter{Store: s}; return c })
	defer f.stop(t)
	if v := f.z.Member(ctx, auth, f.e.Now()); v.Status != idletrack.StatusEnded || v.Reason != idletrack.ReasonIdle {
		t.Fatalf("after a restart the member: %+v, want ended (idle)", v)
	}
	// An unknown value (set before idlegate was installed) passes, is not
	// adopted, and costs one store read, not one per request.
	n, before := f.z.Tracker().Len(), c.n.Load()
	stranger := f.z.MemberID("wordpress_h", "set-before-idlegate")
	for range 3 {
		if v := f.z.Member(ctx, stranger, f.e.Now()); v.Status != idletrack.StatusUnknown {
			t.Fatalf("an unknown member value: %+v", v)
		}
	}
	if got := c.n.Load() - before; got != 1 {
		t.Errorf("%d store lookups for three requests with one unknown value; want 1", got)
	}
	if f.z.Tracker().Len() != n {
		t.Error("an unknown member value was adopted as a session")
	}
	clk.advance(time.Duration(memberNegative) + time.Second)
	f.z.Member(ctx, stranger, f.e.Now())
	if got := c.n.Load() - before; got != 2 {
		t.Errorf("the absence of a binding is remembered for a bounded time: %d lookups, want 2", got)
	}
}

// TestMemberFollowsTheSessionsRotation: a member set with the session's
// first value stands for the session at its new value, and for its end.
func TestMemberFollowsTheSessionsRotation(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	a, b := f.z.ID("a"), f.z.ID("b")
	f.z.Start(a, "alice", f.e.Now())
	m := f.z.MemberID("remember", "long-remember-me-token")
	f.z.BindMembers(a, []MemberBind{{ID: m, Name: "remember"}}, f.e.Now())
	waitMember(t, f, m)
	if _, ok, err := f.z.Rotate(a, b, f.e.Now()); !ok || err != nil {
		t.Fatalf("Rotate: %v %v", ok, err)
	}
	f.clk.advance(time.Minute) // past rotation_grace
	if v := f.z.Member(ctx, m, f.e.Now()); v.Status != idletrack.StatusActive || v.ID != b {
		t.Fatalf("member after the rotation: %+v, want the session at its new value", v)
	}
	f.z.End(b, idletrack.ReasonLogout, f.e.Now())
	if v := f.z.Member(ctx, m, f.e.Now()); v.Status != idletrack.StatusEnded || v.Reason != idletrack.ReasonLogout {
		t.Fatalf("member after the logout: %+v", v)
	}
	// In the store too: the member was moved to the new value.
	r, _ := f.store.LookupMember(ctx, "sid", m)
	if r.Target != b {
		t.Fatalf("stored member names %v, want %v", r.Target, b)
	}
}

// TestAnonymousSessionsMemberLeavesNoLastingRefusal: with users known, a
// session that never had one earns no durable tombstone, and neither do
// its members.
func TestAnonymousSessionsMemberLeavesNoLastingRefusal(t *testing.T) {
	clk := &clock{t: time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)}
	path := filepath.Join(t.TempDir(), "s.db")
	f := start(t, path, clk, nil)
	cfg := zoneConfig(30 * time.Minute)
	cfg.UsersKnown = true
	f.z.setConfig(cfg)
	ctx := context.Background()
	sid := f.z.ID("anon")
	f.z.Start(sid, "", f.e.Now())
	m := f.z.MemberID("pref", "some-long-anonymous-value")
	f.z.BindMembers(sid, []MemberBind{{ID: m, Name: "pref"}}, f.e.Now())
	waitMember(t, f, m)
	f.z.End(sid, idletrack.ReasonLogout, f.e.Now())
	f.stop(t)
	f = start(t, path, clk, nil)
	defer f.stop(t)
	if v := f.z.Member(ctx, m, f.e.Now()); v.Status != idletrack.StatusUnknown {
		t.Fatalf("member of an anonymous ended session after a restart: %+v", v)
	}
}

// TestFamilyIsWrittenOffTheRequestPathAndLoaded: a zone's cookie family
// reaches the store on a flush and comes back when the zone is loaded.
func TestFamilyIsWrittenOffTheRequestPathAndLoaded(t *testing.T) {
	clk := &clock{t: time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)}
	path := filepath.Join(t.TempDir(), "s.db")
	f := start(t, path, clk, nil)
	fam := []storage.FamilyMember{{Name: "wordpress_h", Path: "/wp-admin"}, {Name: "wordpress_logged_in_h", Path: "/"}}
	f.z.SaveFamily(fam)
	eventually(t, "the family to be stored", func() bool {
		got, _ := f.store.LoadFamily(context.Background(), "sid")
		return len(got) == 2
	})
	f.stop(t)
	f = start(t, path, clk, nil)
	defer f.stop(t)
	if got := f.z.Family(); len(got) != 2 || got[0] != fam[0] || got[1] != fam[1] {
		t.Fatalf("loaded family %v, want %v", got, fam)
	}
}
