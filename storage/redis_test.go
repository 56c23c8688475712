package storage_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/idlegate/idlegate/idletrack"
	"github.com/idlegate/idlegate/internal/redistest"
	"github.com/idlegate/idlegate/internal/testnet"
	"github.com/idlegate/idlegate/storage"
	"github.com/idlegate/idlegate/storage/storetest"
)

func TestRedisBehaviour(t *testing.T) {
	srv := redistest.Start(t)
	storetest.Run(t, func(t *testing.T) func() storage.Store {
		o := storage.RedisOptions{Addrs: []string{srv.Addr()}, Prefix: uniquePrefix()}
		return func() storage.Store { return openRedis(t, o) }
	})
}

func TestRedisClusterBehaviour(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	addrs := redistest.Cluster(t)
	storetest.Run(t, func(t *testing.T) func() storage.Store {
		o := storage.RedisOptions{Addrs: addrs, Prefix: uniquePrefix()}
		return func() storage.Store { return openRedis(t, o) }
	})
}

var (
	r0   = time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC).UnixNano()
	zone = "laravel_session"
)

func rat(d time.Duration) int64 { return r0 + int64(d) }

func rid(n int) idletrack.ID {
	var i idletrack.ID
	copy(i[:], fmt.Sprintf("redis-%010d", n))
	return i
}

func rpolicy() idletrack.Policy {
	p := idletrack.DefaultPolicy()
	p.Idle = 30 * time.Minute
	return p
}

// instances opens n stores on one Redis with one prefix: n Caddy instances.
func instances(t *testing.T, n int, o storage.RedisOptions) []*storage.Redis {
	t.Helper()
	if o.Prefix == "" {
		o.Prefix = uniquePrefix()
	}
	var out []*storage.Redis
	for i := range n {
		o.Consumer = fmt.Sprintf("instance-%d", i)
		out = append(out, openRedis(t, o))
	}
	return out
}

func apply(t *testing.T, st storage.Store, b *storage.Batch) []storage.EndResult {
	t.Helper()
	res, err := st.Apply(context.Background(), b)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return res
}

func activity(s idletrack.Session, delta uint32) *storage.Batch {
	return &storage.Batch{Sessions: []storage.SessionWrite{{Zone: zone, Change: idletrack.Change{Session: s, ReqDelta: delta}}}}
}

func newSession(n int) idletrack.Session {
	return idletrack.Session{ID: rid(n), User: "42", StartedAt: rat(0), LoginAt: rat(0), LastActivity: rat(0), Requests: 1}
}

func endOf(s idletrack.Session, reason idletrack.Reason, at int64, eventID string) storage.EndWrite {
	return storage.EndWrite{
		End: idletrack.End{Session: s, Zone: zone, Reason: reason, EndedAt: at}, Policy: rpolicy(),
		TombstoneUntil: at + int64(14*24*time.Hour),
		Events: func(e idletrack.End) []storage.Event {
			return []storage.Event{{ID: eventID, Zone: zone, Type: "session.ended", Body: fmt.Appendf(nil, `{"requests":%d}`, e.Session.Requests), At: e.EndedAt, NextAt: e.EndedAt}}
		},
	}
}

// Several instances end the same sessions at once, while others write
// activity for them: each session ends exactly once, with one event.
func TestRedisEndIsClaimedByExactlyOneInstance(t *testing.T) {
	srv := redistest.Start(t)
	sts := instances(t, 6, storage.RedisOptions{Addrs: []string{srv.Addr()}})
	const sessions = 40
	for n := range sessions {
		apply(t, sts[0], activity(newSession(n), 1))
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	ended := map[idletrack.ID]int{}
	for i, st := range sts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range sessions {
				s := newSession(n)
				if i%3 == 2 {
					// A writer that keeps the request counter moving, so
					// ends meet changed versions and must retry.
					s.Requests = 1
					if _, err := st.Apply(context.Background(), activity(s, 1)); err != nil {
						t.Error(err)
					}
					continue
				}
				reason := idletrack.ReasonLogout
				if i%2 == 1 {
					reason = idletrack.ReasonRevoked
				}
				res, err := st.Apply(context.Background(), &storage.Batch{Ends: []storage.EndWrite{
					endOf(s, reason, rat(time.Minute), fmt.Sprintf("msg_%d_%d", n, i))}})
				if err != nil {
					t.Error(err)
					return
				}
				if res[0].Ended {
					mu.Lock()
					ended[s.ID]++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	var conflicts int64
	for _, st := range sts {
		conflicts += storage.EndConflicts(st)
	}
	t.Logf("%d end scripts found a session changed since their read and retried", conflicts)
	for n := range sessions {
		if c := ended[rid(n)]; c != 1 {
			t.Errorf("session %d ended %d times, want exactly once", n, c)
		}
	}
	if p, _, _ := sts[1].OutboxStats(context.Background()); p != sessions {
		t.Fatalf("%d events queued for %d ends", p, sessions)
	}
	for n := range sessions {
		r, err := sts[2].Lookup(context.Background(), zone, rid(n))
		if err != nil || r.Kind != storage.KindTombstone {
			t.Fatalf("session %d after the race: %+v %v (activity must not revive an ended session)", n, r, err)
		}
	}
}

// An idle end decided on one instance yields to activity another instance
// has written, and the Current it returns carries that activity.
func TestRedisIdleEndYieldsToAnotherInstance(t *testing.T) {
	srv := redistest.Start(t)
	sts := instances(t, 2, storage.RedisOptions{Addrs: []string{srv.Addr()}})
	a, b := sts[0], sts[1]
	s := newSession(1)
	apply(t, a, activity(s, 1))
	seen := s
	seen.LastActivity, seen.Requests = rat(25*time.Minute), 4
	apply(t, b, activity(seen, 3))

	res := apply(t, a, &storage.Batch{Ends: []storage.EndWrite{endOf(s, idletrack.ReasonIdle, rat(30*time.Minute), "msg_1")}})
	if res[0].Ended || res[0].Current == nil || res[0].Current.LastActivity != rat(25*time.Minute) || res[0].Current.Requests != 4 {
		t.Fatalf("the end must yield to B's activity: %+v", res[0])
	}
	if p, _, _ := a.OutboxStats(context.Background()); p != 0 {
		t.Fatal("an end that yielded queues nothing")
	}
	res = apply(t, b, &storage.Batch{Ends: []storage.EndWrite{endOf(seen, idletrack.ReasonIdle, rat(55*time.Minute), "msg_2")}})
	if !res[0].Ended || res[0].End.Session.Requests != 4 {
		t.Fatalf("at the real deadline it ends, with the merged count: %+v", res[0])
	}
}

// The shared sweep: an instance that never saw some sessions finds them with
// Expiring and ends them, except the one another instance kept active.
func TestRedisSweepAcrossInstances(t *testing.T) {
	srv := redistest.Start(t)
	sts := instances(t, 2, storage.RedisOptions{Addrs: []string{srv.Addr()}})
	a, b := sts[0], sts[1]
	ctx := context.Background()
	for n := range 5 {
		apply(t, a, activity(newSession(n), 1))
	}
	active := newSession(2)
	active.LastActivity = rat(20 * time.Minute)
	apply(t, a, activity(active, 1)) // A is gone after this write

	now := rat(31 * time.Minute)
	ids, err := b.Expiring(ctx, zone, now-int64(30*time.Minute), 0, 100)
	if err != nil || len(ids) != 5 {
		t.Fatalf("Expiring: %v %v (the lazy index still lists the active one)", ids, err)
	}
	var batch storage.Batch
	for i, id := range ids {
		r, err := b.Lookup(ctx, zone, id)
		if err != nil || r.Kind != storage.KindSession {
			t.Fatalf("Lookup: %+v %v", r, err)
		}
		at, why := r.Session.Deadline(new(rpolicy()))
		if at > now {
			at = now
		}
		batch.Ends = append(batch.Ends, endOf(r.Session, why, at, fmt.Sprint("sweep_", i)))
	}
	// B's view of the active one is older than what A wrote just now.
	for i := range batch.Ends {
		if batch.Ends[i].End.Session.ID == active.ID {
			batch.Ends[i].End.Session.LastActivity = rat(0)
		}
	}
	res := apply(t, b, &batch)
	ended := 0
	for _, r := range res {
		if r.Ended {
			ended++
		} else if r.Current == nil || r.Current.ID != active.ID {
			t.Fatalf("only the active session may survive: %+v", r)
		}
	}
	if ended != 4 {
		t.Fatalf("%d ended, want 4", ended)
	}
	if ids, _ := b.Expiring(ctx, zone, now-int64(30*time.Minute), 0, 100); len(ids) != 0 {
		t.Fatalf("the survivor must be re-indexed at its activity: %v", ids)
	}
	if ids, _ := b.Expiring(ctx, zone, rat(20*time.Minute), 0, 100); len(ids) != 1 || ids[0] != active.ID {
		t.Fatalf("the survivor is indexed at 20m: %v", ids)
	}
}

// Instance A claims an event and dies without settling it: B does not get it
// while A's lease runs, and does once it ran out.
func TestRedisOutboxLeaseMovesToAnotherInstance(t *testing.T) {
	srv := redistest.Start(t)
	sts := instances(t, 2, storage.RedisOptions{Addrs: []string{srv.Addr()}, Lease: 300 * time.Millisecond})
	a, b := sts[0], sts[1]
	ctx := context.Background()
	ev := storage.Event{ID: "msg_lease", Zone: zone, Type: "session.ended", Body: []byte(`{}`), At: rat(0), NextAt: rat(0)}
	apply(t, a, &storage.Batch{Events: []storage.Event{ev}})

	if due, err := a.Due(ctx, rat(time.Second), 10, nil); err != nil || len(due) != 1 {
		t.Fatalf("A.Due: %+v %v", due, err)
	}
	start := time.Now()
	if due, _ := b.Due(ctx, rat(time.Second), 10, nil); len(due) != 0 {
		t.Fatal("an event claimed by A must not go to B while A's lease runs")
	}
	var got []storage.Event
	for deadline := time.Now().Add(5 * time.Second); len(got) == 0; {
		if time.Now().After(deadline) {
			t.Fatal("B never got the event A left behind")
		}
		time.Sleep(25 * time.Millisecond)
		var err error
		if got, err = b.Due(ctx, rat(time.Second), 10, nil); err != nil {
			t.Fatal(err)
		}
	}
	if waited := time.Since(start); waited < 200*time.Millisecond {
		t.Fatalf("B got it after %v, before the lease ran out", waited)
	}
	if due, _ := a.Due(ctx, rat(time.Second), 10, nil); len(due) != 0 {
		t.Fatal("now B holds the lease")
	}
	// A comes back and reports its stale attempt: ignored, B's outcome counts.
	stale := got[0]
	stale.Attempts, stale.NextAt, stale.LastError = 1, rat(time.Hour), "HTTP 500"
	if err := a.Reschedule(ctx, stale); err != nil {
		t.Fatal(err)
	}
	if err := b.Delivered(ctx, got[0]); err != nil {
		t.Fatal(err)
	}
	if p, d, err := b.OutboxStats(ctx); err != nil || p != 0 || d != 0 {
		t.Fatalf("after delivery: pending %d dead %d %v", p, d, err)
	}
}

// Each event is handed to one of several workers polling at once.
func TestRedisDueClaimsEachEventOnce(t *testing.T) {
	srv := redistest.Start(t)
	sts := instances(t, 4, storage.RedisOptions{Addrs: []string{srv.Addr()}})
	ctx := context.Background()
	var b storage.Batch
	const events = 200
	for i := range events {
		z := zone
		if i%2 == 1 {
			z = "sessionid" // two zones: Due merges them
		}
		b.Events = append(b.Events, storage.Event{ID: fmt.Sprintf("msg_%04d", i), Zone: z, Body: []byte(`{}`), At: rat(0), NextAt: rat(time.Duration(i) * time.Millisecond)})
	}
	apply(t, sts[0], &b)
	var mu sync.Mutex
	got := map[string]int{}
	var wg sync.WaitGroup
	for _, st := range sts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				due, err := st.Due(ctx, rat(time.Hour), 7, nil)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for _, e := range due {
					got[e.ID]++
				}
				mu.Unlock()
				for _, e := range due {
					if err := st.Delivered(ctx, e); err != nil {
						t.Error(err)
					}
				}
			}
		}()
	}
	wg.Wait()
	if len(got) != events {
		t.Fatalf("%d of %d events delivered", len(got), events)
	}
	for id, n := range got {
		if n != 1 {
			t.Fatalf("%s handed out %d times", id, n)
		}
	}
}

// Redis dies and comes back with its data (AOF): calls fail quickly while it
// is away, never hang or panic, and work again afterwards.
func TestRedisRestart(t *testing.T) {
	srv := redistest.Start(t, "--appendonly", "yes", "--appendfsync", "always")
	st := openRedis(t, storage.RedisOptions{Addrs: []string{srv.Addr()}, Prefix: uniquePrefix(),
		DialTimeout: 300 * time.Millisecond, ReadTimeout: 500 * time.Millisecond})
	s := newSession(1)
	apply(t, st, activity(s, 1))
	apply(t, st, &storage.Batch{Events: []storage.Event{{ID: "msg_before", Zone: zone, Body: []byte(`{}`), NextAt: rat(0)}}})

	srv.Kill()
	ctx := context.Background()
	calls := map[string]func() error{
		"Lookup": func() error { _, err := st.Lookup(ctx, zone, s.ID); return err },
		"Apply":  func() error { _, err := st.Apply(ctx, activity(s, 1)); return err },
		"End": func() error {
			_, err := st.Apply(ctx, &storage.Batch{Ends: []storage.EndWrite{endOf(s, idletrack.ReasonLogout, rat(time.Minute), "m")}})
			return err
		},
		"Expiring": func() error { _, err := st.Expiring(ctx, zone, rat(time.Hour), 0, 10); return err },
		"Load": func() error {
			return st.Load(ctx, zone, func(idletrack.Session) {}, func(storage.Alias) {})
		},
		"Due":         func() error { _, err := st.Due(ctx, rat(time.Hour), 10, nil); return err },
		"OutboxStats": func() error { _, _, err := st.OutboxStats(ctx); return err },
	}
	for name, call := range calls {
		start := time.Now()
		err := call()
		if err == nil {
			t.Fatalf("%s succeeded with Redis down", name)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("%s took %v with Redis down", name, d)
		}
		t.Logf("%s failed after %v: %v", name, time.Since(start).Round(time.Millisecond), err)
	}

	srv.Start()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, err := st.Lookup(ctx, zone, s.ID)
		if err == nil {
			if r.Kind != storage.KindSession || r.Session.ID != s.ID {
				t.Fatalf("the session did not survive the restart: %+v", r)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the store did not recover: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Scripts are gone from the restarted server's cache: they are loaded again.
	res := apply(t, st, &storage.Batch{Ends: []storage.EndWrite{endOf(s, idletrack.ReasonLogout, rat(time.Minute), "msg_after")}})
	if !res[0].Ended {
		t.Fatal("ending works after the restart")
	}
	due, err := st.Due(ctx, rat(time.Hour), 10, nil)
	if err != nil || len(due) != 2 {
		t.Fatalf("the outbox survives the restart: %+v %v", due, err)
	}
}

func TestRedisOpenErrors(t *testing.T) {
	redistest.Need(t)
	_, err := storage.OpenRedis(storage.RedisOptions{URL: "http://:secret@example.com"})
	if err == nil || !strings.Contains(err.Error(), "bad Redis URL") || strings.Contains(err.Error(), "secret") {
		t.Fatalf("a bad URL must be named, without its password: %v", err)
	}
	port := testnet.FreePort(t)
	start := time.Now()
	_, err = storage.OpenRedis(storage.RedisOptions{URL: fmt.Sprintf("redis://127.0.0.1:%d/0", port), DialTimeout: 300 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), fmt.Sprint(port)) || !strings.Contains(err.Error(), "cannot use Redis") {
		t.Fatalf("an unreachable Redis must be named: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("open took %v", d)
	}
	if _, err := storage.OpenRedis(storage.RedisOptions{}); err == nil {
		t.Fatal("no address must be an error")
	}
}

// A Redis that accepts connections but does not answer (stopped with
// SIGSTOP) makes calls fail after the read timeout, not hang.
func TestRedisHungServerTimesOut(t *testing.T) {
	srv := redistest.Start(t)
	st := openRedis(t, storage.RedisOptions{Addrs: []string{srv.Addr()}, Prefix: uniquePrefix(),
		DialTimeout: 300 * time.Millisecond, ReadTimeout: 300 * time.Millisecond})
	ctx := context.Background()
	apply(t, st, activity(newSession(1), 1))
	if err := srv.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer srv.Signal(syscall.SIGCONT)
	start := time.Now()
	_, err := st.Apply(ctx, activity(newSession(1), 1))
	if err == nil || !strings.Contains(err.Error(), "idlegate store: Redis at "+srv.Addr()+": apply") {
		t.Fatalf("Apply against a hung Redis: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Apply took %v against a hung Redis", d)
	}
	t.Logf("Apply failed after %v: %v", time.Since(start).Round(time.Millisecond), err)
	srv.Signal(syscall.SIGCONT)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := st.Lookup(ctx, zone, rid(1)); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("no recovery after SIGCONT: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
