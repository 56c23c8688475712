package idletrack

import (
	"slices"
	"sync"
)

// deadlines is a lazy min-heap of session deadlines. An entry's time is never
// later than the session's real deadline: activity only moves a deadline
// forward, so a touch does not update the heap at all. When the sweeper pops
// an entry whose session has been active since, it pushes it back at the new
// deadline. A sweep therefore costs O(expired + stale), never O(sessions),
// and the request path never takes the heap's lock.
type deadlines struct {
	mu    sync.Mutex
	items []deadline
}

type deadline struct {
	at int64
	id ID
}

func (d *deadlines) push(at int64, id ID) {
	d.mu.Lock()
	d.pushLocked(at, id)
	d.mu.Unlock()
}

func (d *deadlines) pushLocked(at int64, id ID) {
	d.items = append(d.items, deadline{at, id})
	d.up(len(d.items) - 1)
}

// reserve makes room for n more entries.
func (d *deadlines) reserve(n int) {
	d.mu.Lock()
	d.items = slices.Grow(d.items, n)
	d.mu.Unlock()
}

// popDue removes and returns the earliest entry if it is due at now.
func (d *deadlines) popDue(now int64) (deadline, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.items) == 0 || d.items[0].at > now {
		return deadline{}, false
	}
	top := d.items[0]
	last := len(d.items) - 1
	d.items[0] = d.items[last]
	d.items = d.items[:last]
	if last > 0 {
		d.down(0)
	}
	return top, true
}

// next returns the earliest deadline, if any.
func (d *deadlines) next() (int64, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.items) == 0 {
		return 0, false
	}
	return d.items[0].at, true
}

// resetLocked replaces the heap's contents, e.g. after the policy changed.
// The caller holds d.mu.
func (d *deadlines) resetLocked(items []deadline) {
	d.items = items
	for i := len(items)/2 - 1; i >= 0; i-- {
		d.down(i)
	}
}

func (d *deadlines) len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.items)
}

func (d *deadlines) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if d.items[p].at <= d.items[i].at {
			return
		}
		d.items[p], d.items[i] = d.items[i], d.items[p]
		i = p
	}
}

func (d *deadlines) down(i int) {
	n := len(d.items)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && d.items[r].at < d.items[l].at {
			m = r
		}
		if d.items[i].at <= d.items[m].at {
			return
		}
		d.items[i], d.items[m] = d.items[m], d.items[i]
		i = m
	}
}
