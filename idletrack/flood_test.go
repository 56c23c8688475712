package idletrack

import (
	"fmt"
	"testing"
	"time"
)

// A flood of invented values must not grow the deadline index: each adopted
// value pushes a deadline, and a value evicted from the probation pool
// used to leave its entry behind until the idle timeout passed — 2,000,000
// values at 6,000/s grew Caddy's heap by 80 MiB in the e2e flood test.
func TestFloodDoesNotGrowDeadlineIndex(t *testing.T) {
	c := newClock()
	p := testPolicy()
	p.MaxSessions, p.MaxProbation = 100, 50
	tr, k := newTestTracker(p)
	realID := idOf(k, "real")
	tr.Start(realID, c.now(), "42")
	maxIndex := 0
	for i := range 200_000 {
		id := idOf(k, fmt.Sprintf("invented-%d", i))
		if v := tr.Request(id, c.now(), true); v.Status == StatusUnknown {
			tr.Adopt(id, c.now())
		}
		maxIndex = max(maxIndex, tr.dl.len())
	}
	if bound := 2*(100+50) + deadlineSlack; maxIndex > bound {
		t.Fatalf("deadline index reached %d entries for %d live sessions (bound %d)", maxIndex, tr.Len(), bound)
	}
	// Compaction kept every live session's deadline: the real one still
	// ends on time, exactly once.
	c.advance(30 * time.Minute)
	got := tr.Expired(c.now(), 1000)
	if len(got) != 1 || got[0].Session.ID != realID || got[0].EndedAt != c.now() {
		t.Fatalf("want the real session to end at its deadline, got %d ends", len(got))
	}
	if tr.Len() != 0 {
		t.Fatalf("%d sessions left after every deadline passed", tr.Len())
	}
}
