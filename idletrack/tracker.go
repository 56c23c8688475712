package idletrack

import (
	"sync"
	"sync/atomic"
	"time"
)

// Status is the tracker's verdict on a request's session.
type Status uint8

const (
	// StatusUnknown: the tracker has never seen this ID. The caller asks the
	// store (it may be a tombstone, an alias, or a session another instance
	// started) and then calls Adopt, Load, LoadAlias or Remember.
	StatusUnknown Status = iota
	// StatusActive: a live session; the request goes on.
	StatusActive
	// StatusEnded: the session has ended (now, or earlier and remembered);
	// the request is refused.
	StatusEnded
	// StatusRotated: a rotated-away cookie value past its grace; refused.
	StatusRotated
)

// Verdict is the answer to a request.
type Verdict struct {
	Status   Status
	ID       ID     // the session the request belongs to (an alias resolves to its target)
	Deadline int64  // when the session expires if nothing else happens (StatusActive)
	User     string // the session's user when the request was seen (StatusActive)
	Reason   Reason // why it ended (StatusEnded)
	// Ended is set when this very request found the session past its
	// deadline: the tracker has ended it and the caller must persist the end.
	Ended *End
}

// Remaining is the whole number of seconds left at now, never negative.
func (v Verdict) Remaining(now int64) int64 {
	if v.Status != StatusActive || v.Deadline <= now {
		return 0
	}
	return (v.Deadline - now) / int64(time.Second)
}

const (
	shardCount   = 64
	maxAliasHops = 8
	// tombCachePerShard bounds the in-memory cache of ended IDs. The store
	// holds every tombstone; the cache only spares it repeated lookups of
	// the same replayed cookie.
	tombCachePerShard = 1024
)

// Tracker is the in-memory state of the sessions of one zone. It applies the
// lifecycle rules of DESIGN.md and returns decisions and End events; it never
// does I/O. All methods are safe for concurrent use. Times are Unix
// nanoseconds supplied by the caller, so tests drive it with a fake clock.
type Tracker struct {
	zone   string
	policy atomic.Pointer[Policy]
	shards [shardCount]shard
	dl     deadlines

	established atomic.Int64 // live sessions that are not probationary
	probation   atomic.Int64 // adopted sessions seen once

	probMu   sync.Mutex
	probRing []ID // FIFO of adopted IDs; its length bounds the probation pool
	probNext int
}

type shard struct {
	mu    sync.Mutex
	live  map[ID]*entry
	alias map[ID]alias
	back  map[ID][]ID // live session -> its rotated-away values still inside their grace
	tomb  map[ID]tomb
	dirty []ID
	_     [32]byte // keep neighbouring shard locks off one cache line
}

type entry struct {
	Session
	storedReq uint32 // Requests as last written to the store
	inflight  int32  // requests of the session being served now (InFlight)
	flags     uint8
}

const (
	fDirty     uint8 = 1 << iota // changed since the last Collect
	fProbation                   // adopted, seen once, not yet persisted
	fStored                      // the store has a record of it
)

type alias struct {
	target     ID
	graceUntil int64 // the old value works until then
	forgetAt   int64 // and is refused until then
}

type tomb struct {
	until  int64
	reason Reason
}

// NewTracker returns an empty tracker for zone under policy p.
func NewTracker(zone string, p Policy) *Tracker {
	t := &Tracker{zone: zone}
	for i := range t.shards {
		t.shards[i].live = make(map[ID]*entry)
		t.shards[i].alias = make(map[ID]alias)
		t.shards[i].back = make(map[ID][]ID)
		t.shards[i].tomb = make(map[ID]tomb)
	}
	t.policy.Store(&p)
	return t
}

// Reserve sizes the tracker for n sessions ahead of a bulk Load (start-up),
// so loading a large store neither rehashes the maps nor regrows the
// deadline index step by step. Only empty shards are resized.
func (t *Tracker) Reserve(n int) {
	if n <= 0 {
		return
	}
	per := n/shardCount + n/(8*shardCount) + 1 // the shards fill unevenly
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		if len(sh.live) == 0 {
			sh.live = make(map[ID]*entry, per)
		}
		sh.mu.Unlock()
	}
	t.dl.reserve(n)
}

// Zone returns the zone the tracker serves.
func (t *Tracker) Zone() string { return t.zone }

// Policy returns the policy in force.
func (t *Tracker) Policy() Policy { return *t.policy.Load() }

// SetPolicy applies a new policy to every session, e.g. after a config
// reload. If the deadlines changed, the deadline index is rebuilt.
func (t *Tracker) SetPolicy(p Policy) {
	old := t.policy.Swap(&p)
	if old.Idle == p.Idle && old.Absolute == p.Absolute {
		return
	}
	// The heap's lock is held across the scan, so a session that starts
	// (or is re-pushed by a sweep) meanwhile is either in a shard already
	// scanned or pushed after the reset: none loses its deadline. Nothing
	// takes the heap's lock while holding a shard lock, so this order is safe.
	t.dl.mu.Lock()
	defer t.dl.mu.Unlock()
	items := make([]deadline, 0, t.Len())
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		for id, e := range sh.live {
			at, _ := e.Deadline(&p)
			items = append(items, deadline{at, id})
		}
		sh.mu.Unlock()
	}
	t.dl.resetLocked(items)
}

// Len returns the number of live sessions, probationary ones included.
func (t *Tracker) Len() int { return int(t.established.Load() + t.probation.Load()) }

// Established returns the number of live, non-probationary sessions.
func (t *Tracker) Established() int { return int(t.established.Load()) }

func (t *Tracker) shard(id ID) *shard { return &t.shards[id[15]%shardCount] }

// Request looks up the session of a request at now. If activity is true and
// the session is live, the request counts as activity. A live session found
// past its deadline is ended here, and the End is returned in the verdict.
// This is the hot path: one shard lock, no allocation for a live session.
func (t *Tracker) Request(id ID, now int64, activity bool) Verdict {
	p := t.policy.Load()
	for range maxAliasHops {
		sh := t.shard(id)
		sh.mu.Lock()
		if e, ok := sh.live[id]; ok {
			v := t.touchLocked(sh, e, p, now, activity)
			sh.mu.Unlock()
			return v
		}
		if a, ok := sh.alias[id]; ok {
			sh.mu.Unlock()
			if now >= a.graceUntil {
				if now < a.forgetAt {
					return Verdict{Status: StatusRotated, ID: a.target}
				}
				return Verdict{Status: StatusUnknown, ID: id}
			}
			id = a.target
			continue
		}
		if tb, ok := sh.tomb[id]; ok {
			if now < tb.until {
				sh.mu.Unlock()
				return Verdict{Status: StatusEnded, ID: id, Reason: tb.reason}
			}
			delete(sh.tomb, id)
		}
		sh.mu.Unlock()
		return Verdict{Status: StatusUnknown, ID: id}
	}
	return Verdict{Status: StatusRotated, ID: id}
}

func (t *Tracker) touchLocked(sh *shard, e *entry, p *Policy, now int64, activity bool) Verdict {
	at, why := e.Deadline(p)
	if now >= at {
		end := t.endLocked(sh, e, p, why, at)
		return Verdict{Status: StatusEnded, ID: e.ID, Reason: why, Ended: end}
	}
	if activity {
		if now > e.LastActivity {
			e.LastActivity = now
		}
		e.Requests++
		if e.flags&fProbation != 0 && e.Requests >= 2 {
			t.promoteLocked(sh, e)
		}
		t.markDirtyLocked(sh, e)
		at, _ = e.Deadline(p)
	}
	return Verdict{Status: StatusActive, ID: e.ID, Deadline: at, User: e.User}
}

func (t *Tracker) markDirtyLocked(sh *shard, e *entry) {
	if e.flags&(fDirty|fProbation) == 0 {
		e.flags |= fDirty
		sh.dirty = append(sh.dirty, e.ID)
	}
}

// promoteLocked turns a probationary session into an established one, if
// there is room. Without room it stays probationary: a full tracker never
// pushes out a real session.
func (t *Tracker) promoteLocked(sh *shard, e *entry) {
	if t.established.Load() >= int64(t.policy.Load().MaxSessions) {
		return
	}
	e.flags &^= fProbation
	t.probation.Add(-1)
	t.established.Add(1)
	t.markDirtyLocked(sh, e)
}

// endLocked removes a live session and remembers its ID. It returns nil for
// a probationary session: a cookie value seen once, possibly invented, ends
// silently.
func (t *Tracker) endLocked(sh *shard, e *entry, p *Policy, why Reason, at int64) *End {
	delete(sh.live, e.ID)
	delete(sh.back, e.ID)
	if e.flags&fProbation != 0 {
		t.probation.Add(-1)
		return nil
	}
	t.established.Add(-1)
	t.rememberLocked(sh, e.ID, at+int64(p.RememberEnded), why)
	return &End{Session: e.Session, Zone: t.zone, Reason: why, EndedAt: at}
}

func (t *Tracker) rememberLocked(sh *shard, id ID, until int64, why Reason) {
	if len(sh.tomb) >= tombCachePerShard {
		for k := range sh.tomb {
			delete(sh.tomb, k)
			break
		}
	}
	sh.tomb[id] = tomb{until: until, reason: why}
}

// Adopt starts a probationary session for a cookie value that neither the
// tracker nor the store knows: a session that existed before idlegate was
// installed, or an invented value. It is promoted on its second request or
// when a user appears; until then it lives in a bounded FIFO pool, so a
// flood of invented values only evicts other unconfirmed values.
func (t *Tracker) Adopt(id ID, now int64) Verdict {
	p := t.policy.Load()
	sh := t.shard(id)
	sh.mu.Lock()
	if e, ok := sh.live[id]; ok { // adopted concurrently
		v := t.touchLocked(sh, e, p, now, true)
		sh.mu.Unlock()
		return v
	}
	e := &entry{Session: Session{ID: id, StartedAt: now, LastActivity: now, Requests: 1}, flags: fProbation}
	sh.live[id] = e
	t.probation.Add(1)
	at, _ := e.Deadline(p)
	sh.mu.Unlock()
	t.dl.push(at, id)
	t.admitProbation(id, p)
	if t.dl.len() > 2*t.Len()+deadlineSlack {
		t.compactDeadlines(p)
	}
	return Verdict{Status: StatusActive, ID: id, Deadline: at}
}

// deadlineSlack is how many stale entries the deadline index may hold
// beyond twice the live sessions before it is rebuilt.
const deadlineSlack = 4096

// compactDeadlines rebuilds the deadline index from the live sessions.
// Values evicted from the probation pool leave their entries behind until
// their deadline; under a flood of invented values that is rate × idle
// entries. Rebuilding once the index holds more than twice the live
// sessions keeps it O(live) at an amortised O(1) per adoption. The index
// lock is held throughout, so no concurrent push is lost (no path takes
// the index lock while holding a shard lock).
func (t *Tracker) compactDeadlines(p *Policy) {
	d := &t.dl
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.items) <= 2*t.Len()+deadlineSlack {
		return // compacted concurrently
	}
	items := make([]deadline, 0, t.Len()+deadlineSlack)
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		for id, e := range sh.live {
			at, _ := e.Deadline(p)
			items = append(items, deadline{at, id})
		}
		sh.mu.Unlock()
	}
	d.items = items
	for i := len(items)/2 - 1; i >= 0; i-- {
		d.down(i)
	}
}

func (t *Tracker) admitProbation(id ID, p *Policy) {
	t.probMu.Lock()
	defer t.probMu.Unlock()
	if limit := p.probationCap(); len(t.probRing) < limit {
		t.probRing = append(t.probRing, id)
		return
	}
	old := t.probRing[t.probNext]
	t.probRing[t.probNext] = id
	t.probNext = (t.probNext + 1) % len(t.probRing)
	sh := t.shard(old)
	sh.mu.Lock()
	if e, ok := sh.live[old]; ok && e.flags&fProbation != 0 {
		delete(sh.live, old)
		t.probation.Add(-1)
	}
	sh.mu.Unlock()
}

// Start begins a session that the upstream has just issued. It returns false
// when the tracker is full (the session goes untracked; nothing is evicted)
// or when the ID is already live or remembered as ended.
func (t *Tracker) Start(id ID, now int64, user string) (Session, bool) {
	p := t.policy.Load()
	sh := t.shard(id)
	sh.mu.Lock()
	if _, ok := sh.live[id]; ok {
		sh.mu.Unlock()
		return Session{}, false
	}
	if tb, ok := sh.tomb[id]; ok && now < tb.until {
		sh.mu.Unlock()
		return Session{}, false
	}
	if t.established.Load() >= int64(p.MaxSessions) {
		sh.mu.Unlock()
		return Session{}, false
	}
	s := Session{ID: id, User: user, StartedAt: now, LastActivity: now, Requests: 1} // the request that got the cookie
	if user != "" {
		s.LoginAt = now
	}
	sh.live[id] = &entry{Session: s, storedReq: s.Requests, flags: fStored}
	t.established.Add(1)
	at, _ := s.Deadline(p)
	sh.mu.Unlock()
	t.dl.push(at, id)
	return s, true
}

// UserChange is what SetUser did.
type UserChange struct {
	Session Session // the session after the change
	Login   bool    // a user appeared on an anonymous session (session.started)
	Ended   *End    // a different user took over: the old logical session ended (logout)
	// Changed: the session must be written to the store.
	Changed bool
}

// SetUser records that the upstream named user for session id at now. A user
// appearing on an anonymous session is a login: the online time starts now.
// A different user on the same session ends the old logical session with
// reason logout and continues the ID as a new one for the new user.
func (t *Tracker) SetUser(id ID, user string, now int64) UserChange {
	if user == "" {
		return UserChange{}
	}
	sh := t.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e, ok := sh.live[id]
	if !ok || e.User == user {
		return UserChange{}
	}
	var uc UserChange
	if e.User != "" {
		uc.Ended = &End{Session: e.Session, Zone: t.zone, Reason: ReasonLogout, EndedAt: now}
		e.StartedAt, e.Requests, e.storedReq = now, 1, 0
	}
	e.User, e.LoginAt = user, now
	if e.flags&fProbation != 0 {
		t.promoteLocked(sh, e)
	}
	uc.Login, uc.Changed = true, e.flags&fProbation == 0
	if uc.Changed {
		e.flags |= fStored
	}
	uc.Session = e.Session
	return uc
}

// Rotation is what Rotate did: the store deletes Old, writes Session under
// its new ID and keeps Old as an alias.
type Rotation struct {
	Old        ID
	Session    Session // under its new ID
	GraceUntil int64
	ForgetAt   int64
}

// Rotate moves session old to a new cookie value: same start, user and
// counters. The old value keeps working until now+RotationGrace and is then
// refused until now+RememberEnded. It returns false if old is not live.
func (t *Tracker) Rotate(old, id ID, now int64) (Rotation, bool) {
	p := t.policy.Load()
	if old == id {
		return Rotation{}, false
	}
	osh := t.shard(old)
	osh.mu.Lock()
	e, ok := osh.live[old]
	if !ok {
		osh.mu.Unlock()
		return Rotation{}, false
	}
	moved := &entry{Session: e.Session, storedReq: e.storedReq, flags: e.flags&fProbation | fStored}
	osh.mu.Unlock()
	moved.ID = id

	// The new value is live before the old one becomes an alias, so a
	// parallel request with the old value always finds one or the other.
	nsh := t.shard(id)
	nsh.mu.Lock()
	nsh.live[id] = moved
	nsh.mu.Unlock()

	r := Rotation{Old: old, GraceUntil: now + int64(p.RotationGrace), ForgetAt: now + int64(p.RememberEnded)}
	osh.mu.Lock()
	cur, ok := osh.live[old]
	if ok {
		delete(osh.live, old)
		osh.alias[old] = alias{target: id, graceUntil: r.GraceUntil, forgetAt: r.ForgetAt}
	}
	osh.mu.Unlock()
	nsh.mu.Lock()
	if !ok {
		// Ended or rotated concurrently: undo.
		delete(nsh.live, id)
		nsh.mu.Unlock()
		return Rotation{}, false
	}
	// cur is out of the map, so nobody else writes it; requests that touched
	// the old value after the copy still count.
	moved.LastActivity = max(moved.LastActivity, cur.LastActivity)
	moved.Requests = max(moved.Requests, cur.Requests)
	moved.inflight += cur.inflight
	if moved.flags&fProbation != 0 {
		t.promoteLocked(nsh, moved) // the upstream recognised the session
	}
	r.Session = moved.Session
	nsh.mu.Unlock()
	at, _ := r.Session.Deadline(p)
	t.dl.push(at, id)
	t.repoint(old, id, now)
	return r, true
}

// repoint makes the values rotated away from old before, and still inside
// their grace, point straight at id, as old itself now does. A session that
// rotates on every response (Laravel without laravel_key: each response
// re-encrypts the cookie) so never builds an alias chain longer than one
// hop, however many parallel requests rotate it within one grace.
func (t *Tracker) repoint(old, id ID, now int64) {
	osh := t.shard(old)
	osh.mu.Lock()
	prev := osh.back[old]
	delete(osh.back, old)
	osh.mu.Unlock()
	kept := make([]ID, 0, len(prev)+1)
	for _, a := range prev {
		ash := t.shard(a)
		ash.mu.Lock()
		if al, ok := ash.alias[a]; ok && al.target == old && now < al.graceUntil {
			al.target = id
			ash.alias[a] = al
			kept = append(kept, a)
		}
		ash.mu.Unlock()
	}
	kept = append(kept, old)
	nsh := t.shard(id)
	nsh.mu.Lock()
	if _, live := nsh.live[id]; live { // else rotated on or ended meanwhile: chains stay short
		nsh.back[id] = append(nsh.back[id], kept...)
	}
	nsh.mu.Unlock()
}

// End ends a live session for reason at now, exactly once: a second call, or
// a call for an ID that is not live, returns nil.
func (t *Tracker) End(id ID, why Reason, now int64) *End {
	p := t.policy.Load()
	sh := t.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e, ok := sh.live[id]
	if !ok {
		return nil
	}
	return t.endLocked(sh, e, p, why, now)
}

// Expired ends up to limit sessions whose deadline is at or before now and
// returns them, in deadline order. Probationary sessions end silently.
func (t *Tracker) Expired(now int64, limit int) []End {
	p := t.policy.Load()
	var out []End
	for len(out) < limit {
		d, ok := t.dl.popDue(now)
		if !ok {
			break
		}
		sh := t.shard(d.id)
		sh.mu.Lock()
		e, ok := sh.live[d.id]
		if !ok {
			sh.mu.Unlock()
			continue // ended, rotated or evicted since: a stale entry
		}
		at, why := e.Deadline(p)
		if at > now {
			sh.mu.Unlock()
			t.dl.push(at, d.id)
			continue
		}
		end := t.endLocked(sh, e, p, why, at)
		sh.mu.Unlock()
		if end != nil {
			out = append(out, *end)
		}
	}
	return out
}

// NextDeadline returns the earliest deadline in the index (possibly stale:
// never later than the real one).
func (t *Tracker) NextDeadline() (int64, bool) { return t.dl.next() }

// Change is a session to write to the store.
type Change struct {
	Session  Session
	ReqDelta uint32 // requests since the last write, for stores shared by several instances
}

// Collect appends every session changed since the last Collect to dst and
// clears their dirty marks. Probationary sessions are not persisted.
func (t *Tracker) Collect(dst []Change) []Change {
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		for _, id := range sh.dirty {
			e, ok := sh.live[id]
			if !ok || e.flags&fDirty == 0 {
				continue
			}
			e.flags &^= fDirty
			if e.flags&fProbation != 0 {
				continue
			}
			e.flags |= fStored
			dst = append(dst, Change{Session: e.Session, ReqDelta: e.Requests - e.storedReq})
			e.storedReq = e.Requests
		}
		clear(sh.dirty)
		sh.dirty = sh.dirty[:0]
		sh.mu.Unlock()
	}
	return dst
}

// Load puts a session read from the store into the tracker, e.g. at start-up
// or when another instance started it. A session already live is merged:
// the later activity and the higher request count win.
func (t *Tracker) Load(s Session) {
	p := t.policy.Load()
	sh := t.shard(s.ID)
	sh.mu.Lock()
	delete(sh.tomb, s.ID)
	if e, ok := sh.live[s.ID]; ok {
		if s.LastActivity > e.LastActivity {
			e.LastActivity = s.LastActivity
		}
		if s.Requests > e.Requests {
			e.Requests = s.Requests
		}
		e.storedReq = max(e.storedReq, s.Requests)
		if e.User == "" && s.User != "" {
			e.User, e.LoginAt = s.User, s.LoginAt
		}
		if e.flags&fProbation != 0 {
			t.promoteLocked(sh, e)
		}
		e.flags |= fStored
		sh.mu.Unlock()
		return
	}
	sh.live[s.ID] = &entry{Session: s, storedReq: s.Requests, flags: fStored}
	t.established.Add(1)
	sh.mu.Unlock()
	at, _ := s.Deadline(p)
	t.dl.push(at, s.ID)
}

// LoadAlias restores a rotated-away value read from the store.
func (t *Tracker) LoadAlias(old, target ID, graceUntil, forgetAt int64) {
	sh := t.shard(old)
	sh.mu.Lock()
	sh.alias[old] = alias{target: target, graceUntil: graceUntil, forgetAt: forgetAt}
	sh.mu.Unlock()
}

// Remember caches that id ended, until until, so replays of it are refused
// without asking the store again.
func (t *Tracker) Remember(id ID, until int64, why Reason) {
	sh := t.shard(id)
	sh.mu.Lock()
	if _, live := sh.live[id]; !live {
		t.rememberLocked(sh, id, until, why)
	}
	sh.mu.Unlock()
}

// Forget drops aliases whose forgetAt has passed and cached tombstones that
// expired. It bounds memory without the request path doing it.
func (t *Tracker) Forget(now int64) {
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		for id, a := range sh.alias {
			// Past the grace the store answers for the value; memory can let go.
			if now >= a.graceUntil {
				delete(sh.alias, id)
			}
		}
		for id, tb := range sh.tomb {
			if now >= tb.until {
				delete(sh.tomb, id)
			}
		}
		sh.mu.Unlock()
	}
}

// Get returns a copy of live session id.
func (t *Tracker) Get(id ID) (Session, bool) {
	sh := t.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e, ok := sh.live[id]
	if !ok || e.flags&fProbation != 0 {
		return Session{}, false
	}
	return e.Session, true
}

// Each calls fn with a copy of every established session until fn returns
// false. It holds one shard lock at a time; fn must not call the tracker.
func (t *Tracker) Each(fn func(Session) bool) {
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		for _, e := range sh.live {
			if e.flags&fProbation != 0 {
				continue
			}
			if !fn(e.Session) {
				sh.mu.Unlock()
				return
			}
		}
		sh.mu.Unlock()
	}
}

// InFlight adds delta to the number of requests of session id that are being
// served (following rotation aliases) and returns the new count; delta 0
// just reads it. A response that clears the user while other requests of the
// same session are in flight is most likely one of them racing a login (the
// app answered a request that still carried the old value with a fresh
// anonymous session), not a logout.
func (t *Tracker) InFlight(id ID, delta int32) int32 {
	for range maxAliasHops {
		sh := t.shard(id)
		sh.mu.Lock()
		if e, ok := sh.live[id]; ok {
			e.inflight = max(0, e.inflight+delta)
			n := e.inflight
			sh.mu.Unlock()
			return n
		}
		a, ok := sh.alias[id]
		sh.mu.Unlock()
		if !ok {
			return 0
		}
		id = a.target
	}
	return 0
}
