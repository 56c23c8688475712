package engine

import (
	"context"
	"errors"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/idlegate/idlegate/idletrack"
	"github.com/idlegate/idlegate/storage"
)

// countingStore counts the store's lookups, the cost of the durable
// tombstone check.
type countingStore struct {
	storage.Store
	lookups int
}

func (c *countingStore) Lookup(ctx context.Context, zone string, id idletrack.ID) (storage.Record, error) {
	c.lookups++
	return c.Store.Lookup(ctx, zone, id)
}

// TestNoWayBackFromATombstone: no Start and no Rotation may make an ended
// identity live again, also after a restart has emptied memory (the
// tombstone is then only in the store). Laravel answers a request for a
// session it still holds with a cookie for that session's ID, which is how
// an ended session came back through a rotation.
func TestNoWayBackFromATombstone(t *testing.T) {
	clk := &clock{t: time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)}
	path := filepath.Join(t.TempDir(), "s.db")
	f := start(t, path, clk, nil)
	gone, other := f.z.ID("gone"), f.z.ID("other")
	f.z.Start(gone, "42", f.e.Now())
	f.z.End(gone, idletrack.ReasonLogout, f.e.Now())

	// In memory: the cached tombstone.
	if ok, err := f.z.Start(gone, "42", f.e.Now()); ok || !errors.Is(err, ErrEnded) {
		t.Fatalf("Start of an ended ID: %v, %v; want ErrEnded", ok, err)
	}
	f.z.Start(other, "", f.e.Now())
	if _, ok, err := f.z.Rotate(other, gone, f.e.Now()); ok || !errors.Is(err, ErrEnded) {
		t.Fatalf("Rotate onto an ended ID: %v, %v; want ErrEnded", ok, err)
	}
	if _, live := f.z.Tracker().Get(gone); live {
		t.Fatal("the ended ID is live again")
	}
	f.stop(t)

	// After a restart: only the store knows.
	var counter *countingStore
	f = start(t, path, clk, func(s storage.Store) storage.Store { counter = &countingStore{Store: s}; return counter })
	defer f.stop(t)
	clk.advance(time.Minute)
	if _, ok, err := f.z.Rotate(other, gone, f.e.Now()); ok || !errors.Is(err, ErrEnded) {
		t.Fatalf("after a restart, Rotate onto an ended ID: %v, %v; want ErrEnded", ok, err)
	}
	if ok, err := f.z.Start(gone, "42", f.e.Now()); ok || !errors.Is(err, ErrEnded) {
		t.Fatalf("after a restart, Start of an ended ID: %v, %v; want ErrEnded", ok, err)
	}
	if counter.lookups != 1 {
		t.Errorf("%d store lookups for two checks of one ID; the first must be remembered", counter.lookups)
	}
	if v := f.z.Check(context.Background(), gone, f.e.Now(), true); v.Status != idletrack.StatusEnded {
		t.Fatalf("the ended ID: %+v", v)
	}
	if s, ok := f.z.Tracker().Get(other); !ok || s.ID != other {
		t.Fatalf("the session that tried to rotate onto it is unchanged: %+v %v", s, ok)
	}

	// A fresh ID costs one lookup, and starts.
	before := counter.lookups
	if ok, err := f.z.Start(f.z.ID("fresh"), "", f.e.Now()); !ok || err != nil {
		t.Fatalf("Start of a fresh ID: %v, %v", ok, err)
	}
	if n := counter.lookups - before; n != 1 {
		t.Errorf("Start of a fresh ID made %d store lookups; want 1", n)
	}
}

// BenchmarkStartTombstoneCheck is the cost of the durable tombstone check
// on Start: a fresh ID is looked up in the store once, then written.
func BenchmarkStartTombstoneCheck(b *testing.B) {
	clk := &clock{t: time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)}
	st, err := storage.OpenBolt(filepath.Join(b.TempDir(), "s.db"), storage.BoltOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	e := New(st, enc{}, Options{Now: clk.now, FlushInterval: time.Hour, SweepInterval: time.Hour})
	defer e.Close()
	z, err := e.Configure(context.Background(), zoneConfig(30*time.Minute))
	if err != nil {
		b.Fatal(err)
	}
	ids := make([]idletrack.ID, 1<<16)
	for i := range ids {
		ids[i] = z.ID("v" + strconv.Itoa(i))
		if i%2 == 0 { // half the store's keys are tombstones
			z.Start(ids[i], "42", e.Now())
			z.End(ids[i], idletrack.ReasonLogout, e.Now())
		}
	}
	// A restart's cold memory: only the store knows the ends.
	z.tracker = idletrack.NewTracker(z.Name(), z.Config().Policy)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		z.Ended(ids[(2*i+1)%len(ids)], e.Now()) // an ID the store does not know: a store read each time
	}
}
