package idletrack

import (
	"testing"
	"time"
)

func TestReserveKeepsSessionsAndDeadlines(t *testing.T) {
	c := newClock()
	tr, k := newTestTracker(testPolicy())
	early := idOf(k, "early")
	tr.Load(Session{ID: early, StartedAt: c.now(), LastActivity: c.now()})
	tr.Reserve(10_000) // one shard is not empty: it keeps its session
	late := idOf(k, "late")
	tr.Load(Session{ID: late, StartedAt: c.now(), LastActivity: c.now() + int64(time.Minute)})
	if tr.Len() != 2 {
		t.Fatalf("Len = %d, want 2", tr.Len())
	}
	if _, ok := tr.Get(early); !ok {
		t.Fatal("Reserve lost a loaded session")
	}
	c.advance(30*time.Minute + time.Second)
	ends := tr.Expired(c.now(), 10)
	if len(ends) != 1 || ends[0].Session.ID != early {
		t.Fatalf("Expired = %v, want only the early session", ends)
	}
}
