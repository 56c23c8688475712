package tests

// Clock steps (issue #7, item 5) through the engine, a real bbolt store and
// a restart, with an injected clock: a step backwards never ends a session
// nor moves its activity back; a step forwards ends it once, at its
// deadline; no step, before or after a restart, ends it a second time or
// revives it. (idletrack's TestClockStepsNeverEndEarlyOrTwice covers the
// tracker alone.)

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idlegate/idlegate/engine"
	"github.com/idlegate/idlegate/idletrack"
	"github.com/idlegate/idlegate/storage"
	"github.com/idlegate/idlegate/webhook"
)

type everyEnd struct{}

func (everyEnd) Ended(_ *engine.ZoneConfig, e idletrack.End, now time.Time) []storage.Event {
	return []storage.Event{webhook.EndedEvent(e, now)}
}
func (everyEnd) Started(*engine.ZoneConfig, idletrack.Session, time.Time) []storage.Event { return nil }

func TestReliabilityClockSteps(t *testing.T) {
	const idle = 30 * time.Minute
	var clock atomic.Int64
	t0 := time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)
	clock.Store(t0.UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	set := func(t time.Time) { clock.Store(t.UnixNano()) }

	path := filepath.Join(t.TempDir(), "sessions.db")
	cfg := engine.ZoneConfig{Name: "sid", Policy: idletrack.Policy{
		Idle: idle, RotationGrace: 30 * time.Second, RememberEnded: 14 * 24 * time.Hour, MaxSessions: 1000,
	}}
	var (
		st *storage.Bolt
		e  *engine.Engine
		z  *engine.Zone
	)
	open := func() {
		t.Helper()
		var err error
		if st, err = storage.OpenBolt(path, storage.BoltOptions{}); err != nil {
			t.Fatal(err)
		}
		e = engine.New(st, everyEnd{}, engine.Options{Now: now, FlushInterval: 10 * time.Millisecond, SweepInterval: 5 * time.Millisecond})
		if z, err = e.Configure(context.Background(), cfg); err != nil {
			t.Fatal(err)
		}
	}
	shut := func() {
		t.Helper()
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
		st.Close()
	}
	open()
	defer func() { shut() }()
	ctx := context.Background()
	events := func() []storage.Event {
		evs, err := st.Due(ctx, 1<<62, 100, nil)
		if err != nil {
			t.Fatal(err)
		}
		return evs
	}
	// A few sweeps at the current clock: nothing may end.
	noEnd := func(why string) {
		t.Helper()
		Consistently(t, 100*time.Millisecond, 10*time.Millisecond, func() error {
			if n := len(events()); n != 0 {
				return fmt.Errorf("%s: %d ends", why, n)
			}
			return nil
		})
	}
	check := func(want idletrack.Status, why string) idletrack.Verdict {
		t.Helper()
		v := z.Check(ctx, z.ID("cookie-A"), now().UnixNano(), false) // passive: moves nothing
		if v.Status != want {
			t.Fatalf("%s: status %v, want %v", why, v.Status, want)
		}
		return v
	}

	id := z.ID("cookie-A")
	if ok, err := z.Start(id, "42", now().UnixNano()); !ok || err != nil {
		t.Fatalf("start: %v %v", ok, err)
	}
	set(t0.Add(10 * time.Minute))
	z.Check(ctx, id, now().UnixNano(), true)
	last := now()
	deadline := last.Add(idle)

	set(last.Add(-2 * time.Hour)) // NTP steps the clock back two hours
	z.Check(ctx, id, now().UnixNano(), true)
	if s, _ := z.Tracker().Get(id); s.LastActivity != last.UnixNano() {
		t.Fatalf("a backwards step moved activity back to %s", time.Unix(0, s.LastActivity))
	}
	noEnd("after a backwards step")

	// Restart while the clock is behind: nothing ends at load either.
	shut()
	open()
	check(idletrack.StatusActive, "after a restart behind the clock")
	noEnd("after a restart behind the clock")

	set(deadline.Add(-time.Second))
	check(idletrack.StatusActive, "a second before the deadline")
	noEnd("a second before the deadline")

	set(deadline.Add(10 * time.Hour)) // a big forward step
	Eventually(t, 5*time.Second, 10*time.Millisecond, func() error {
		if n := len(events()); n != 1 {
			return fmt.Errorf("%d ends after the forward step, want 1", n)
		}
		return nil
	})
	var got struct {
		Data SessionData `json:"data"`
	}
	if err := jsonUnmarshal(events()[0].Body, &got); err != nil {
		t.Fatal(err)
	}
	if !got.Data.EndedAt.Equal(deadline.Truncate(time.Second)) || got.Data.Reason != "idle" {
		t.Fatalf("ended %s (%s), want at the deadline %s (idle)", got.Data.EndedAt, got.Data.Reason, deadline)
	}

	// Back and forth again, with a restart: still one end, still refused.
	for i, at := range []time.Time{last.Add(-time.Hour), last, deadline.Add(-time.Minute), deadline.Add(48 * time.Hour)} {
		set(at)
		if i == 2 {
			shut()
			open()
		}
		check(idletrack.StatusEnded, fmt.Sprintf("step %d to %s", i, at.Format(time.RFC3339)))
		Consistently(t, 60*time.Millisecond, 10*time.Millisecond, func() error {
			if n := len(events()); n != 1 {
				return fmt.Errorf("step %d: %d ends, want exactly 1", i, n)
			}
			return nil
		})
	}
}
