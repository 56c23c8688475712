package idletrack

import "sync"

// deadlines is a lazy min-heap of session deadlines. An entry's time is never
// later than the session's real deadline: activity only moves a deadline
// forward, so a touch does not update the heap at all. When the sweeper pops
// an entry whose session has been active since, it pushes it back at the new
// deadline. A sweep therefore costs O(expired + stale), never O(sessions),
// and the request path never takes the heap's lock.
//
// The heap's array is off the Go heap (offheap.go): it holds an entry per
// session.
type deadlines struct {
	mu  sync.Mutex
	buf []deadline // made by makeOff; len(buf) is the capacity
	n   int        // entries in use: buf[:n] is the heap
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
	d.appendLocked(at, id)
	d.up(d.n - 1)
}

// appendLocked adds an entry at the end, without restoring heap order.
func (d *deadlines) appendLocked(at int64, id ID) {
	if d.n == len(d.buf) {
		d.growLocked(max(1024, 2*len(d.buf)))
	}
	d.buf[d.n] = deadline{at, id}
	d.n++
}

// growLocked moves the heap to an array of size entries (at least n).
func (d *deadlines) growLocked(size int) {
	buf := makeOff[deadline](size)
	copy(buf, d.buf[:d.n])
	freeOff(d.buf)
	d.buf = buf
}

// reserve makes room for n more entries.
func (d *deadlines) reserve(n int) {
	d.mu.Lock()
	if d.n+n > len(d.buf) {
		d.growLocked(d.n + n)
	}
	d.mu.Unlock()
}

// popDue removes and returns the earliest entry if it is due at now.
func (d *deadlines) popDue(now int64) (deadline, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.n == 0 || d.buf[0].at > now {
		return deadline{}, false
	}
	top := d.buf[0]
	d.n--
	d.buf[0] = d.buf[d.n]
	if d.n > 0 {
		d.down(0)
	}
	return top, true
}

// rebuildLocked replaces the heap's contents with what fill adds, e.g.
// after the policy changed; size is a hint of how many. The caller holds
// d.mu.
func (d *deadlines) rebuildLocked(size int, fill func(add func(at int64, id ID))) {
	old := d.buf
	d.buf, d.n = makeOff[deadline](max(1024, size)), 0
	fill(d.appendLocked)
	freeOff(old)
	for i := d.n/2 - 1; i >= 0; i-- {
		d.down(i)
	}
}

func (d *deadlines) len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n
}

// release frees the heap's array; the heap is empty afterwards.
func (d *deadlines) release() {
	d.mu.Lock()
	freeOff(d.buf)
	d.buf, d.n = nil, 0
	d.mu.Unlock()
}

func (d *deadlines) up(i int) {
	h := d.buf
	for i > 0 {
		p := (i - 1) / 2
		if h[p].at <= h[i].at {
			return
		}
		h[p], h[i] = h[i], h[p]
		i = p
	}
}

func (d *deadlines) down(i int) {
	h, n := d.buf, d.n
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && h[r].at < h[l].at {
			m = r
		}
		if h[i].at <= h[m].at {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}
