package idletrack

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// A reload changes the idle timeout while sessions start: every session
// must keep a deadline in the sweeper's index, or it would never expire
// silently.
func TestSetPolicyUnderConcurrentStartsKeepsEveryDeadline(t *testing.T) {
	c := newClock()
	p := testPolicy()
	p.Idle = time.Minute
	tr, k := newTestTracker(p)
	const starters, each = 4, 2000
	var wg sync.WaitGroup
	for g := range starters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				tr.Start(idOf(k, fmt.Sprintf("%d-%d", g, i)), c.now(), "u")
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for i := 0; ; i++ {
		select {
		case <-done:
		default:
			q := p
			q.Idle = time.Minute + time.Duration(i%7+1)*time.Second
			tr.SetPolicy(q)
			continue
		}
		break
	}
	ended := tr.Expired(c.now()+int64(10*time.Minute), starters*each+1)
	if len(ended) != starters*each {
		t.Fatalf("the sweep ended %d of %d sessions: the others lost their deadline in a concurrent SetPolicy", len(ended), starters*each)
	}
}
