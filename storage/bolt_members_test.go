package storage_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/idlegate/idlegate/idletrack"
	"github.com/idlegate/idlegate/storage"
)

// An ended session's members are purged with its tombstone, not before.
func TestBoltPurgeForgetsMembersWithTheirTombstone(t *testing.T) {
	ctx := context.Background()
	st, err := storage.OpenBolt(filepath.Join(t.TempDir(), "s.db"), storage.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	t0 := time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC).UnixNano()
	s := idletrack.Session{ID: idletrack.ID{1}, User: "alice", StartedAt: t0, LoginAt: t0, LastActivity: t0, Requests: 1}
	m := idletrack.ID{'m'}
	until := t0 + int64(time.Hour)
	b := &storage.Batch{
		Sessions: []storage.SessionWrite{{Zone: "z", Change: idletrack.Change{Session: s, ReqDelta: 1}}},
		Members:  []storage.MemberWrite{{Zone: "z", Target: s.ID, Member: m, Name: "wordpress_h", At: t0}},
	}
	if _, err := st.Apply(ctx, b); err != nil {
		t.Fatal(err)
	}
	end := storage.EndWrite{End: idletrack.End{Session: s, Zone: "z", Reason: idletrack.ReasonLogout, EndedAt: t0}, TombstoneUntil: until}
	if _, err := st.Apply(ctx, &storage.Batch{Ends: []storage.EndWrite{end}}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Purge(ctx, until-1); err != nil {
		t.Fatal(err)
	}
	if r, _ := st.LookupMember(ctx, "z", m); !r.Found {
		t.Fatal("purged before its tombstone")
	}
	if _, err := st.Purge(ctx, until); err != nil {
		t.Fatal(err)
	}
	if r, _ := st.LookupMember(ctx, "z", m); r.Found {
		t.Fatalf("member kept after its tombstone was forgotten: %+v", r)
	}
}
