package storage_test

import (
	"context"
	"testing"
	"time"

	"github.com/idlegate/idlegate/idletrack"
	"github.com/idlegate/idlegate/internal/redistest"
	"github.com/idlegate/idlegate/storage"
)

// An end and a rotation written by one instance are announced to the
// others, not to the writer itself.
func TestRedisInvalidations(t *testing.T) {
	srv := redistest.Start(t)
	sts := instances(t, 2, storage.RedisOptions{Addrs: []string{srv.Addr()}})
	a, b := sts[0], sts[1]
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ina, inb := a.Invalidations(ctx), b.Invalidations(ctx)
	time.Sleep(200 * time.Millisecond) // the SUBSCRIBE is asynchronous: a fixed start-up allowance, not a wait for a result

	s := newSession(1)
	apply(t, a, activity(s, 1))
	apply(t, a, &storage.Batch{Ends: []storage.EndWrite{endOf(s, idletrack.ReasonLogout, rat(time.Minute), "msg_1")}})
	r := newSession(2)
	apply(t, a, activity(r, 1))
	apply(t, a, &storage.Batch{Rotations: []storage.RotationWrite{{Zone: zone, Rotation: idletrack.Rotation{
		Old: r.ID, Session: idletrack.Session{ID: rid(3), User: "42", StartedAt: r.StartedAt, LastActivity: rat(time.Minute), Requests: 2},
		GraceUntil: rat(time.Minute + 30*time.Second), ForgetAt: rat(time.Hour)}}}})

	next := func() storage.Invalidation {
		t.Helper()
		select {
		case inv := <-inb:
			return inv
		case <-time.After(5 * time.Second):
			t.Fatal("no invalidation notice within 5 s")
		}
		panic("unreachable")
	}
	e := next()
	if !e.Ended || e.ID != s.ID || e.Zone != zone || e.Reason != idletrack.ReasonLogout || e.Until != rat(time.Minute)+int64(14*24*time.Hour) {
		t.Errorf("end notice: %+v", e)
	}
	ro := next()
	if ro.Ended || ro.ID != r.ID || ro.Alias.Target != rid(3) || ro.Alias.GraceUntil != rat(time.Minute+30*time.Second) {
		t.Errorf("rotation notice: %+v", ro)
	}
	select {
	case inv := <-ina:
		t.Errorf("the writer got its own notice: %+v", inv)
	case <-time.After(300 * time.Millisecond):
	}
}

// An activity-only write (the periodic flush) of a stale copy does not
// sign out a login another instance wrote, and an end reports the stored user.
func TestRedisActivityOnlyKeepsUser(t *testing.T) {
	srv := redistest.Start(t)
	sts := instances(t, 2, storage.RedisOptions{Addrs: []string{srv.Addr()}})
	a, b := sts[0], sts[1]
	s := newSession(1)
	s.User, s.LoginAt = "", 0
	apply(t, a, activity(s, 1))
	login := s
	login.User, login.LoginAt = "7", rat(time.Second)
	apply(t, a, &storage.Batch{Sessions: []storage.SessionWrite{{Zone: zone, Change: idletrack.Change{Session: login}}}})
	stale := s
	stale.LastActivity, stale.Requests = rat(2*time.Second), 2
	apply(t, b, &storage.Batch{Sessions: []storage.SessionWrite{{Zone: zone, Change: idletrack.Change{Session: stale, ReqDelta: 1}, ActivityOnly: true}}})
	rec, err := a.Lookup(context.Background(), zone, s.ID)
	if err != nil || rec.Session.User != "7" || rec.Session.LoginAt != rat(time.Second) || rec.Session.LastActivity != rat(2*time.Second) {
		t.Fatalf("after a stale activity write: %+v %v", rec, err)
	}
	res := apply(t, b, &storage.Batch{Ends: []storage.EndWrite{endOf(stale, idletrack.ReasonRevoked, rat(3*time.Second), "msg_u")}})
	if !res[0].Ended || res[0].End.Session.User != "7" {
		t.Errorf("end from a stale copy: %+v, want user 7", res[0])
	}
}
