package engine

import (
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/idlegate/idlegate/idletrack"
	"github.com/idlegate/idlegate/storage"
)

// anonEnc is the real encoder's rule for events: none for sessions that
// never had a user (include_anonymous off).
type anonEnc struct{ enc }

func (e anonEnc) Ended(c *ZoneConfig, end idletrack.End, now time.Time) []storage.Event {
	if end.Session.User == "" {
		return nil
	}
	return e.enc.Ended(c, end, now)
}

// TestFloodSentTwiceLeavesNoTombstones: invented cookie values, each sent
// twice, become established sessions (the second request promotes them)
// and reach the store; when they end, they must leave no tombstone, or the
// file grows with the request rate times remember_ended. The store file is
// measured after one flood and after a second one: the second reuses the
// pages the first freed. Long form (IDLEGATE_LONG=1): 2,000,000 values.
func TestFloodSentTwiceLeavesNoTombstones(t *testing.T) {
	n, floods := 20_000, 8
	if os.Getenv("IDLEGATE_LONG") != "" {
		n, floods = 2_000_000, 2
	}
	clk := &clock{t: time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)}
	path := filepath.Join(t.TempDir(), "s.db")
	st, err := storage.OpenBolt(path, storage.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	e := New(st, anonEnc{}, Options{Now: clk.now, FlushInterval: 20 * time.Millisecond, SweepInterval: 10 * time.Millisecond, SweepBatch: 50_000})
	defer e.Close()
	cfg := zoneConfig(30 * time.Minute)
	cfg.Policy.MaxSessions = n // room for every value: the worst case for the disk
	z, err := e.Configure(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	real := z.ID("a real user's session")
	z.Start(real, "42", e.Now())

	var sample []idletrack.ID
	flood := func() {
		z.Check(ctx, real, e.Now(), true)
		for i := range n {
			var id idletrack.ID
			rand.Read(id[:])
			now := e.Now()
			z.Check(ctx, id, now, true)
			if v := z.Check(ctx, id, now, true); v.Status != idletrack.StatusActive {
				t.Fatalf("value %d: %+v", i, v)
			}
			if i%(n/100) == 0 {
				sample = append(sample, id)
			}
		}
		e.enqueue(&storage.Batch{}, true) // on disk now
		clk.advance(20 * time.Minute)
		z.Check(ctx, real, e.Now(), true) // the real user is active meanwhile
		clk.advance(11 * time.Minute)
		deadline := time.Now().Add(2 * time.Minute)
		for z.Tracker().Len() > 1 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if l := z.Tracker().Len(); l > 1 {
			t.Fatalf("%d sessions left after the idle timeout (%d established)", l, z.Tracker().Established())
		}
		e.enqueue(&storage.Batch{}, true)
	}

	before := fileSize(t, path)
	var after []int64
	for range floods {
		flood()
		after = append(after, fileSize(t, path))
	}
	t.Logf("%d values sent twice, in each of %d floods: store file %d B empty, then %v B after each flood ended (%.0f B per value of one flood)",
		n, floods, before, after, float64(after[len(after)-1]-before)/float64(n))
	for _, id := range sample {
		if rec, err := st.Lookup(ctx, "sid", id); err != nil || rec.Kind != storage.KindNone {
			t.Fatalf("an ended flood value left %+v, %v; want nothing", rec, err)
		}
	}
	if rec, _ := st.Lookup(ctx, "sid", real); rec.Kind != storage.KindSession {
		t.Errorf("the real session: %+v", rec)
	}
	// Later floods reuse the pages the first ones freed: the file does not
	// keep growing with the number of values sent. bbolt grows its file in
	// doublings, and the first floods leave free pages scattered: at most
	// one doubling past the first flood's size, over eight floods (with a
	// tombstone per value, the file grows with every
	// flood: 16 MB to 54 MB over eight floods of 20,000).
	if last := after[len(after)-1]; last > 2*after[0] {
		t.Errorf("the store kept growing flood after flood: %v B", after)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}
