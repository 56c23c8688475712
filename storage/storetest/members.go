package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/idlegate/idlegate/idletrack"
	"github.com/idlegate/idlegate/storage"
)

// member names a member value in the tests (a real one is a keyed hash).
func member(n int) idletrack.ID {
	var i idletrack.ID
	copy(i[:], fmt.Sprintf("member-%09d", n))
	return i
}

func bind(zone string, target idletrack.ID, m int, name string, at int64) storage.MemberWrite {
	return storage.MemberWrite{Zone: zone, Target: target, Member: member(m), Name: name, At: at}
}

func lookupMember(t *testing.T, st storage.Store, zone string, m int) storage.MemberRecord {
	t.Helper()
	r, err := st.LookupMember(context.Background(), zone, member(m))
	if err != nil {
		t.Fatalf("LookupMember: %v", err)
	}
	return r
}

// members is the contract of credential members and the stored family
// (storage/members.go).
func members(t *testing.T, open Opener) {
	ctx := context.Background()

	t.Run("MemberEndsWithItsSessionAndSurvivesReopen", func(t *testing.T) {
		o := open(t)
		st := o()
		s := session(1, 0, "alice")
		put(t, st, "z", s)
		write(t, st, &storage.Batch{Members: []storage.MemberWrite{bind("z", s.ID, 1, "wordpress_x", at(0))}})
		if r := lookupMember(t, st, "z", 1); !r.Found || r.Shared || r.Target != s.ID {
			t.Fatalf("bound member: %+v", r)
		}
		if r := lookupMember(t, st, "y", 1); r.Found {
			t.Fatal("zones must not see each other's members")
		}
		if r := lookupMember(t, st, "z", 2); r.Found {
			t.Fatalf("an unknown value: %+v", r)
		}
		write(t, st, &storage.Batch{Ends: []storage.EndWrite{endWrite(idletrack.End{Session: s, Zone: "z", Reason: idletrack.ReasonIdle, EndedAt: at(30 * time.Minute)})}})
		st.Close()
		st = o()
		defer st.Close()
		r := lookupMember(t, st, "z", 1)
		if !r.Found || r.Target != s.ID {
			t.Fatalf("after the end and a reopen the member must still name its session: %+v", r)
		}
		if tr := lookup(t, st, "z", r.Target); tr.Kind != storage.KindTombstone || tr.Reason != idletrack.ReasonIdle {
			t.Fatalf("the member's session: %+v, want its tombstone", tr)
		}
		// Bound again after the end (a late response): it stays ended.
		write(t, st, &storage.Batch{Members: []storage.MemberWrite{bind("z", s.ID, 3, "wordpress_x", at(31*time.Minute))}})
		if r := lookupMember(t, st, "z", 3); !r.Found || r.Target != s.ID {
			t.Fatalf("a member bound to an ended session: %+v", r)
		}
	})

	t.Run("AnonymousEndLeavesNoLastingMember", func(t *testing.T) {
		st := open(t)()
		defer st.Close()
		s := session(1, 0, "")
		put(t, st, "z", s)
		write(t, st, &storage.Batch{Members: []storage.MemberWrite{bind("z", s.ID, 1, "m", at(0))}})
		w := endWrite(idletrack.End{Session: s, Zone: "z", Reason: idletrack.ReasonIdle, EndedAt: at(30 * time.Minute)})
		w.NoAnonymousTombstone = true
		write(t, st, &storage.Batch{Ends: []storage.EndWrite{w}})
		if r := lookupMember(t, st, "z", 1); r.Found {
			// A shared store keeps the short claim tombstone; the member
			// lasts exactly as long.
			if tr := lookup(t, st, "z", r.Target); tr.Kind != storage.KindTombstone || tr.Until > at(30*time.Minute)+int64(10*time.Minute) {
				t.Fatalf("an anonymous session's member outlives its claim: %+v, %+v", r, tr)
			}
		}
	})

	t.Run("MemberFollowsRotation", func(t *testing.T) {
		st := open(t)()
		defer st.Close()
		s := session(1, 0, "alice")
		put(t, st, "z", s)
		write(t, st, &storage.Batch{Members: []storage.MemberWrite{bind("z", s.ID, 1, "m", at(0))}})
		moved := s
		moved.ID = id(2)
		write(t, st, &storage.Batch{Rotations: []storage.RotationWrite{{Zone: "z", Rotation: idletrack.Rotation{
			Old: s.ID, Session: moved, GraceUntil: at(30 * time.Second), ForgetAt: at(time.Hour)}}}})
		if r := lookupMember(t, st, "z", 1); r.Target != moved.ID {
			t.Fatalf("after the rotation the member names %v, want %v", r.Target, moved.ID)
		}
		// A response to the rotated-away value binds to the current one.
		write(t, st, &storage.Batch{Members: []storage.MemberWrite{bind("z", s.ID, 2, "m", at(time.Second))}})
		if r := lookupMember(t, st, "z", 2); r.Target != moved.ID || r.Shared {
			t.Fatalf("bound through the alias: %+v", r)
		}
		write(t, st, &storage.Batch{Ends: []storage.EndWrite{endWrite(idletrack.End{Session: moved, Zone: "z", Reason: idletrack.ReasonLogout, EndedAt: at(time.Minute)})}})
		for _, m := range []int{1, 2} {
			r := lookupMember(t, st, "z", m)
			if tr := lookup(t, st, "z", r.Target); tr.Kind != storage.KindTombstone || tr.Reason != idletrack.ReasonLogout {
				t.Fatalf("member %d after the end: %+v, %+v", m, r, tr)
			}
		}
	})

	t.Run("MembersAreBoundedPerSession", func(t *testing.T) {
		st := open(t)()
		defer st.Close()
		s := session(1, 0, "alice")
		put(t, st, "z", s)
		b := &storage.Batch{Members: []storage.MemberWrite{bind("z", s.ID, 0, "y", at(0))}}
		for i := 1; i < storage.MaxMembers; i++ {
			b.Members = append(b.Members, bind("z", s.ID, i, "x", at(time.Duration(i)*time.Second)))
		}
		write(t, st, b)
		// Full: a new value of y replaces y's old value, not the oldest x.
		write(t, st, &storage.Batch{Members: []storage.MemberWrite{bind("z", s.ID, 100, "y", at(time.Minute))}})
		if r := lookupMember(t, st, "z", 0); r.Found {
			t.Fatal("the old value of the re-set member must give way")
		}
		for i := 1; i < storage.MaxMembers; i++ {
			if r := lookupMember(t, st, "z", i); !r.Found {
				t.Fatalf("member %d lost", i)
			}
		}
		// Full again, a new name: the oldest goes.
		write(t, st, &storage.Batch{Members: []storage.MemberWrite{bind("z", s.ID, 101, "w", at(2*time.Minute))}})
		if r := lookupMember(t, st, "z", 1); r.Found {
			t.Fatal("the oldest member must give way")
		}
		for _, m := range []int{2, 100, 101} {
			if r := lookupMember(t, st, "z", m); !r.Found {
				t.Fatalf("member %d lost", m)
			}
		}
	})

	t.Run("AValueOfTwoSessionsIsShared", func(t *testing.T) {
		st := open(t)()
		defer st.Close()
		a, b := session(1, 0, "alice"), session(2, 0, "bob")
		put(t, st, "z", a, b)
		write(t, st, &storage.Batch{Members: []storage.MemberWrite{bind("z", a.ID, 1, "lang", at(0))}})
		write(t, st, &storage.Batch{Members: []storage.MemberWrite{bind("z", b.ID, 1, "lang", at(time.Second))}})
		if r := lookupMember(t, st, "z", 1); !r.Found || !r.Shared {
			t.Fatalf("a value set for two sessions: %+v, want shared", r)
		}
		write(t, st, &storage.Batch{Ends: []storage.EndWrite{endWrite(idletrack.End{Session: a, Zone: "z", Reason: idletrack.ReasonLogout, EndedAt: at(time.Minute)})}})
		if r := lookupMember(t, st, "z", 1); !r.Shared {
			t.Fatalf("a shared value after one session's end: %+v", r)
		}
	})

	t.Run("FamilyRoundTripsAndIsZoned", func(t *testing.T) {
		o := open(t)
		st := o()
		if f, err := st.LoadFamily(ctx, "z"); err != nil || f != nil {
			t.Fatalf("LoadFamily of a new zone = %v, %v", f, err)
		}
		fam := []storage.FamilyMember{{Name: "wordpress_logged_in_h", Path: "/"}, {Name: "wordpress_h", Path: "/wp-admin"}, {Name: "DWx", Path: "/dokuwiki/", Domain: "example.org"}}
		if err := st.SaveFamily(ctx, "z", fam); err != nil {
			t.Fatal(err)
		}
		var many []storage.FamilyMember
		for i := range 40 {
			many = append(many, storage.FamilyMember{Name: fmt.Sprintf("c%d", i), Path: "/"})
		}
		if err := st.SaveFamily(ctx, "other", many); err != nil {
			t.Fatal(err)
		}
		st.Close()
		st = o()
		defer st.Close()
		f, err := st.LoadFamily(ctx, "z")
		if err != nil || fmt.Sprint(f) != fmt.Sprint(fam) {
			t.Fatalf("LoadFamily after reopen = %v, %v; want %v", f, err, fam)
		}
		// A zone that holds only its family works as any other.
		if r := lookup(t, st, "other", id(1)); r.Kind != storage.KindNone {
			t.Fatalf("Lookup in a zone with only a family: %+v", r)
		}
		if ids, err := st.Expiring(ctx, "other", at(time.Hour), at(time.Hour), 10); err != nil || len(ids) != 0 {
			t.Fatalf("Expiring in a zone with only a family: %v, %v", ids, err)
		}
		if _, err := st.Purge(ctx, at(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if f, _ := st.LoadFamily(ctx, "other"); len(f) != storage.MaxFamily {
			t.Fatalf("a stored family holds %d members, want at most %d", len(f), storage.MaxFamily)
		}
	})
}
