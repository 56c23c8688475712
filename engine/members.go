package engine

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/idlegate/idlegate/idletrack"
	"github.com/idlegate/idlegate/storage"
)

// Credential members (docs/design.md, "Credential members"): the cookies an
// application sets with a session besides the session cookie, bound to the
// session by value, so that a request carrying only one of them (WordPress
// signs /wp-admin in from wordpress_<hash> alone) is refused once the
// session has ended.

// MemberBind is one member value a response set: its keyed ID (Zone.MemberID)
// and the cookie's name.
type MemberBind struct {
	ID   idletrack.ID
	Name string
}

// MemberVerdict is what a member value in a request stands for.
type MemberVerdict struct {
	// StatusUnknown: no session's credential (never bound, shared, or its
	// session is forgotten); StatusActive: of the live session ID;
	// StatusEnded: its session ended for Reason.
	Status idletrack.Status
	ID     idletrack.ID
	Reason idletrack.Reason
}

// memberCacheMax bounds each of a zone's member caches; a full cache is
// emptied (the store still knows every binding).
const memberCacheMax = 1 << 16

// memberNegative is how long a zone remembers that the store holds no
// binding for a member value, so that cookies set before idlegate was
// installed do not cost a store read (a Redis round trip) per request. A
// binding written by this process replaces the entry at once; one written
// by another instance is seen after at most this long.
const memberNegative int64 = 30e9

// memberTarget is a cached binding: the session, or shared.
type memberTarget struct {
	target idletrack.ID
	shared bool
}

// memberCache is a zone's memory of member bindings.
type memberCache struct {
	mu    sync.Mutex
	bound map[idletrack.ID]memberTarget
	none  map[idletrack.ID]int64 // → until (Unix ns)
}

func (c *memberCache) get(id idletrack.ID, now int64) (t memberTarget, known, absent bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t, ok := c.bound[id]; ok {
		return t, true, false
	}
	if until, ok := c.none[id]; ok {
		if now < until {
			return t, false, true
		}
		delete(c.none, id)
	}
	return t, false, false
}

func (c *memberCache) put(id idletrack.ID, t memberTarget) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.bound == nil || len(c.bound) >= memberCacheMax {
		c.bound = make(map[idletrack.ID]memberTarget)
	}
	delete(c.none, id)
	c.bound[id] = t
}

// bind records a binding this process writes, as the store will carry it
// out: a value already bound to another session becomes shared.
func (c *memberCache) bind(id, target idletrack.ID) {
	c.mu.Lock()
	cur, ok := c.bound[id]
	c.mu.Unlock()
	if ok && (cur.shared || cur.target != target) {
		cur.shared = true
		c.put(id, cur)
		return
	}
	c.put(id, memberTarget{target: target})
}

func (c *memberCache) absent(id idletrack.ID, until int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.none == nil || len(c.none) >= memberCacheMax {
		c.none = make(map[idletrack.ID]int64)
	}
	c.none[id] = until
}

func (c *memberCache) forget(id idletrack.ID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.bound, id)
}

// MemberID derives the ID of a member value: the keyed hash of the cookie's
// name and its value as the application decodes it. It is derived apart
// from session IDs, and the stores keep members in a keyspace of their own.
func (z *Zone) MemberID(name, value string) idletrack.ID {
	return z.e.keyer.MemberID(z.Name(), name, value)
}

// BindMembers binds member values a response set to the live session
// target. The write is not waited for: it goes out with the next commit,
// at once (the engine wakes), and memory knows the binding before that.
func (z *Zone) BindMembers(target idletrack.ID, binds []MemberBind, now int64) {
	if len(binds) == 0 {
		return
	}
	b := storage.Batch{Members: make([]storage.MemberWrite, 0, len(binds))}
	for _, m := range binds {
		z.members.bind(m.ID, target)
		b.Members = append(b.Members, storage.MemberWrite{Zone: z.Name(), Target: target, Member: m.ID, Name: m.Name, At: now})
	}
	z.e.enqueue(&b, false)
}

// Member says what the member value id of a request stands for, without
// adopting anything: an unknown value (set before idlegate was installed)
// is StatusUnknown. A session found expired is ended, as Check ends it.
func (z *Zone) Member(ctx context.Context, id idletrack.ID, now int64) MemberVerdict {
	t, known, absent := z.members.get(id, now)
	if absent {
		return MemberVerdict{}
	}
	if !known {
		rec, err := z.e.store.LookupMember(ctx, z.Name(), id)
		if err != nil {
			// Fail open, as for adoption, but do not ask again at once.
			z.e.storeError("member lookup", err)
			z.members.absent(id, now+memberNegative)
			return MemberVerdict{}
		}
		if !rec.Found {
			z.members.absent(id, now+memberNegative)
			return MemberVerdict{}
		}
		t = memberTarget{target: rec.Target, shared: rec.Shared}
		z.members.put(id, t)
	}
	if t.shared {
		return MemberVerdict{}
	}
	v := z.tracker.Request(t.target, now, false)
	for hops := 0; v.Status == idletrack.StatusRotated && hops < 4; hops++ {
		// Rotated away past its grace: the session goes on at v.ID (the
		// store moved the member there too).
		v = z.tracker.Request(v.ID, now, false)
	}
	if v.Status == idletrack.StatusUnknown {
		v = z.lookup(ctx, t.target, now, false, false)
	}
	if v.Ended != nil {
		v = z.expired(ctx, v, now, false)
	}
	switch v.Status {
	case idletrack.StatusActive:
		return MemberVerdict{Status: idletrack.StatusActive, ID: v.ID}
	case idletrack.StatusEnded:
		return MemberVerdict{Status: idletrack.StatusEnded, ID: t.target, Reason: v.Reason}
	case idletrack.StatusRotated:
		// Still rotating after the hops: read the store next time.
		z.members.forget(id)
	}
	return MemberVerdict{}
}

// Family returns the zone's cookie family as the store held it when the
// zone was loaded, with what was saved since.
func (z *Zone) Family() []storage.FamilyMember {
	if f := z.family.Load(); f != nil {
		return *f
	}
	return nil
}

// SaveFamily records the zone's cookie family; the engine's goroutine
// writes it to the store at once (it is woken), off the request path.
func (z *Zone) SaveFamily(f []storage.FamilyMember) {
	f = append([]storage.FamilyMember(nil), f...)
	z.family.Store(&f)
	z.familyDirty.Store(true)
	select {
	case z.e.wake <- struct{}{}:
	default:
	}
}

// familyState is a zone's stored cookie family.
type familyState struct {
	family      atomic.Pointer[[]storage.FamilyMember]
	familyDirty atomic.Bool
}

// saveFamilies writes the families that changed since the last flush. A
// failed write is tried again on the next one.
func (e *Engine) saveFamilies(ctx context.Context) {
	for _, z := range e.Zones() {
		e.saveFamily(ctx, z)
	}
}

func (e *Engine) saveFamily(ctx context.Context, z *Zone) {
	if !z.familyDirty.Swap(false) {
		return
	}
	if err := e.store.SaveFamily(ctx, z.Name(), z.Family()); err != nil {
		z.familyDirty.Store(true)
		e.storeError("family", err)
	}
}

// loadFamily reads a new zone's family from the store.
func (z *Zone) loadFamily(ctx context.Context) {
	f, err := z.e.store.LoadFamily(ctx, z.Name())
	if err != nil {
		z.e.storeError("family load", err)
		return
	}
	if f != nil {
		z.family.Store(&f)
	}
}
