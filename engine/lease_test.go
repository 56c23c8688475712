package engine

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/idlegate/idlegate/idletrack"
	"github.com/idlegate/idlegate/storage"
)

// gatedLoad is a real store whose Load of one zone waits for the test.
type gatedLoad struct {
	storage.Store
	zone    string
	started chan struct{}
	release chan struct{}
}

func (g *gatedLoad) Load(ctx context.Context, zone string, fn func(idletrack.Session), alias func(storage.Alias)) error {
	if zone == g.zone {
		close(g.started)
		<-g.release
	}
	return g.Store.Load(ctx, zone, fn, alias)
}

func TestLoadingAZoneDoesNotBlockTheOthers(t *testing.T) {
	g := &gatedLoad{zone: "big", started: make(chan struct{}), release: make(chan struct{})}
	clk := &clock{t: time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)}
	f := start(t, filepath.Join(t.TempDir(), "s.db"), clk, func(s storage.Store) storage.Store { g.Store = s; return g })
	t.Cleanup(func() { f.e.Close(); f.store.Close() })

	loaded := make(chan error, 1)
	go func() {
		cfg := zoneConfig(30 * time.Minute)
		cfg.Name = "big"
		_, err := f.e.Acquire(context.Background(), cfg, Holder{})
		loaded <- err
	}()
	<-g.started
	// While "big" loads, zone sid starts a session durably (a commit), is
	// listed, and its flush and sweep run.
	done := make(chan error, 1)
	go func() {
		_, err := f.z.Start(f.z.ID("v"), "42", f.e.Now())
		if _, ok := f.e.Zone("sid"); !ok {
			t.Error("zone sid must stay listed while another zone loads")
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a durable write of zone sid waited for zone big's load")
	}
	if _, ok := f.e.Zone("big"); ok {
		t.Fatal("a zone is listed only once loaded")
	}
	close(g.release)
	if err := <-loaded; err != nil {
		t.Fatal(err)
	}
	if _, ok := f.e.Zone("big"); !ok {
		t.Fatal("the loaded zone is installed")
	}
}

func TestLeasesOfOneConfigMustAgree(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	cfgA := zoneConfig(5 * time.Minute)
	cfgB := zoneConfig(10 * time.Minute)
	cfgB.Webhook = &Webhook{URL: "http://127.0.0.1:1/b", Key: []byte("secret-b"), Ended: true}
	gen := make(chan struct{})
	a, err := f.e.Acquire(ctx, cfgA, Holder{Config: gen, Site: "site A"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.e.Acquire(ctx, cfgB, Holder{Config: gen, Site: "site B"})
	if err == nil {
		t.Fatal("two leases of one config with different settings must fail")
	}
	for _, want := range []string{`zone "sid"`, "site A", "site B", "idle 5m0s", "idle 10m0s", "http://127.0.0.1:1/a", "http://127.0.0.1:1/b"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q should contain %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "secret-b") {
		t.Errorf("the error must not reveal the secret: %q", err)
	}
	if got := f.z.Config().Policy.Idle; got != 5*time.Minute {
		t.Fatalf("a refused lease changes nothing: idle %v", got)
	}
	// The same settings in one config share the zone; another config (a
	// reload) may change them.
	same, err := f.e.Acquire(ctx, cfgA, Holder{Config: gen, Site: "site C"})
	if err != nil {
		t.Fatalf("alike settings share the zone: %v", err)
	}
	next, err := f.e.Acquire(ctx, cfgB, Holder{Config: make(chan struct{}), Site: "site B"})
	if err != nil {
		t.Fatalf("a new config reconfigures: %v", err)
	}
	if got := f.z.Config().Policy.Idle; got != 10*time.Minute {
		t.Fatalf("the newest lease is in force: idle %v", got)
	}
	// The new config failed (or was replaced): releasing its lease puts
	// the running config's settings back.
	next.Release()
	if got := f.z.Config().Policy.Idle; got != 5*time.Minute {
		t.Fatalf("after the newest lease goes, the previous settings are back: idle %v", got)
	}
	a.Release()
	same.Release()
	if _, ok := f.e.Zone("sid"); !ok {
		t.Fatal("the fixture's own lease (Configure) still holds the zone")
	}
}

func TestReleasedZoneStopsAndItsEventsWait(t *testing.T) {
	clk := &clock{t: time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)}
	path := filepath.Join(t.TempDir(), "s.db")
	st, err := storage.OpenBolt(path, storage.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	obs := &recorder{}
	e := New(st, enc{}, Options{Now: clk.now, FlushInterval: 20 * time.Millisecond, SweepInterval: 10 * time.Millisecond, Observer: obs})
	t.Cleanup(func() { e.Close(); st.Close() })
	ctx := context.Background()

	// The old config and the new one (provisioned first, as Caddy does on
	// reload) both hold the zone: releasing the old lease keeps it.
	old, err := e.Acquire(ctx, zoneConfig(30*time.Minute), Holder{Config: 1})
	if err != nil {
		t.Fatal(err)
	}
	z := old.Zone()
	id := z.ID("v")
	z.Start(id, "42", e.Now())
	cur, err := e.Acquire(ctx, zoneConfig(30*time.Minute), Holder{Config: 2})
	if err != nil {
		t.Fatal(err)
	}
	if cur.Zone() != z {
		t.Fatal("a zone held across a reload is the same zone")
	}
	old.Release()
	old.Release() // twice is harmless
	if _, ok := e.Zone("sid"); !ok {
		t.Fatal("the zone the new config holds must survive the old config's cleanup")
	}

	// Activity just before the last lease goes is written when it goes.
	clk.advance(10 * time.Minute)
	z.Check(ctx, id, e.Now(), true)
	lastActivity := e.Now()
	st.Apply(ctx, &storage.Batch{Events: []storage.Event{{ID: "waiting", Zone: "sid", NextAt: e.Now()}}})
	if err := cur.Release(); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.Zone("sid"); ok {
		t.Fatal("a zone no lease holds leaves the engine")
	}
	rec, _ := st.Lookup(ctx, "sid", id)
	if rec.Kind != storage.KindSession || rec.Session.LastActivity != lastActivity {
		t.Fatalf("the retired zone's last activity is in the store: %+v", rec)
	}

	// Past the deadline, nothing ends it: the zone is not swept.
	clk.advance(time.Hour)
	e.sweep()
	e.enqueue(&storage.Batch{}, true) // waits for a commit after the sweep
	if n := len(obs.ends()); n != 0 {
		t.Fatalf("a retired zone is not swept: %d ends", n)
	}
	// Its waiting events (the login's and "waiting") stay in the outbox.
	if p, _, _ := st.OutboxStats(ctx); p != 2 {
		t.Fatalf("the waiting event stays queued: %d pending", p)
	}

	// A config names the zone again: it loads from the store, and the
	// sweep ends the session on its deadline.
	back, err := e.Acquire(ctx, zoneConfig(30*time.Minute), Holder{Config: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer back.Release()
	eventually(t, "the end of the session that expired while no config named the zone", func() bool { return len(obs.ends()) == 1 })
	if end := obs.ends()[0]; end.EndedAt != lastActivity+int64(30*time.Minute) || end.Reason != idletrack.ReasonIdle {
		t.Fatalf("ended on its deadline: %+v", end)
	}
}
