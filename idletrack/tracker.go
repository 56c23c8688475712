package idletrack

import (
	"runtime"
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
	if v.Status != StatusActive {
		return 0
	}
	return RemainingSeconds(v.Deadline, now)
}

// RemainingSeconds is the whole number of seconds from now (Unix ns) to
// deadline, 0 once it passed: what status_path, remaining_header and the
// admin API show.
func RemainingSeconds(deadline, now int64) int64 {
	if deadline <= now {
		return 0
	}
	return (deadline - now) / int64(time.Second)
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
// lifecycle rules of docs/design.md and returns decisions and End events; it never
// does I/O. All methods are safe for concurrent use. Times are Unix
// nanoseconds supplied by the caller, so tests drive it with a fake clock.
type Tracker struct {
	zone   string
	policy atomic.Pointer[Policy]
	shards [shardCount]shard
	dl     *deadlines

	established atomic.Int64 // live sessions that are not probationary
	probation   atomic.Int64 // adopted sessions seen once

	probMu   sync.Mutex
	probRing []ID // FIFO of adopted IDs; its length bounds the probation pool
	probNext int
}

type shard struct {
	mu    sync.Mutex
	live  *table
	alias map[ID]alias
	back  map[ID][]ID // live session -> its rotated-away values still inside their grace
	tomb  map[ID]tomb
	dirty []ID
	_     [32]byte // keep neighbouring shard locks off one cache line
}

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
	t := &Tracker{zone: zone, dl: new(deadlines)}
	var mem trackerMemory
	mem.dl = t.dl
	for i := range t.shards {
		t.shards[i].live = new(table)
		mem.tables[i] = t.shards[i].live
		t.shards[i].alias = make(map[ID]alias)
		t.shards[i].back = make(map[ID][]ID)
		t.shards[i].tomb = make(map[ID]tomb)
	}
	t.policy.Store(&p)
	// The off-heap memory goes when the tracker does: nothing reaches a
	// shard's table or the deadline heap other than through the tracker.
	runtime.AddCleanup(t, func(m trackerMemory) { m.release() }, mem)
	return t
}

// trackerMemory is what a tracker holds off the Go heap.
type trackerMemory struct {
	tables [shardCount]*table
	dl     *deadlines
}

func (m trackerMemory) release() {
	for _, tb := range m.tables {
		tb.release()
	}
	m.dl.release()
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
		sh.live.reserve(sh.live.len() + per)
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
	t.dl.rebuildLocked(t.Len(), func(add func(int64, ID)) { t.eachDeadline(&p, add) })
}

// eachDeadline calls add with every live session's deadline under p,
// holding one shard lock at a time.
func (t *Tracker) eachDeadline(p *Policy, add func(int64, ID)) {
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		sh.live.each(func(_ uint32, e *entry) bool {
			at, _ := e.deadline(p)
			add(at, e.ID)
			return true
		})
		sh.mu.Unlock()
	}
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
		if slot, ok := sh.live.find(id); ok {
			v := t.touchLocked(sh, slot, p, now, activity)
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

func (t *Tracker) touchLocked(sh *shard, slot uint32, p *Policy, now int64, activity bool) Verdict {
	e := sh.live.at(slot)
	at, why := e.deadline(p)
	if now >= at {
		id := e.ID
		end := t.endLocked(sh, slot, p, why, at)
		return Verdict{Status: StatusEnded, ID: id, Reason: why, Ended: end}
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
		at, _ = e.deadline(p)
	}
	return Verdict{Status: StatusActive, ID: e.ID, Deadline: at, User: sh.live.user(slot)}
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
func (t *Tracker) endLocked(sh *shard, slot uint32, p *Policy, why Reason, at int64) *End {
	e := sh.live.at(slot)
	s, probation, adopted := e.session(sh.live.user(slot)), e.flags&fProbation != 0, e.flags&fAdopted != 0
	sh.live.remove(s.ID)
	delete(sh.back, s.ID)
	if probation {
		t.probation.Add(-1)
		return nil
	}
	t.established.Add(-1)
	t.rememberLocked(sh, s.ID, at+int64(p.RememberEnded), why)
	return &End{Session: s, Zone: t.zone, Reason: why, EndedAt: at, Adopted: adopted}
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
	if slot, ok := sh.live.find(id); ok { // adopted concurrently
		v := t.touchLocked(sh, slot, p, now, true)
		sh.mu.Unlock()
		return v
	}
	e := entry{ID: id, StartedAt: now, LastActivity: now, Requests: 1, flags: fProbation | fAdopted}
	sh.live.insert(e, "")
	t.probation.Add(1)
	at, _ := e.deadline(p)
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
	d := t.dl
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.n <= 2*t.Len()+deadlineSlack {
		return // compacted concurrently
	}
	d.rebuildLocked(t.Len()+deadlineSlack, func(add func(int64, ID)) { t.eachDeadline(p, add) })
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
	if e := sh.live.get(old); e != nil && e.flags&fProbation != 0 {
		sh.live.remove(old)
		t.probation.Add(-1)
	}
	sh.mu.Unlock()
}

// Ended reports what the tracker knows of whether id is an ended identity
// at now: one remembered as ended, or a rotated-away value past its grace.
// known is false when the tracker has never seen id (or has forgotten it);
// the caller then asks the store, which remembers every end.
func (t *Tracker) Ended(id ID, now int64) (ended, known bool) {
	sh := t.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if _, ok := sh.live.find(id); ok {
		return false, true
	}
	if a, ok := sh.alias[id]; ok && now < a.forgetAt {
		return now >= a.graceUntil, true
	}
	if tb, ok := sh.tomb[id]; ok && now < tb.until {
		return true, true
	}
	return false, false
}

// Start begins a session that the upstream has just issued. It returns false
// when the tracker is full (the session goes untracked; nothing is evicted)
// or when the ID is already live or remembered as ended.
func (t *Tracker) Start(id ID, now int64, user string) (Session, bool) {
	p := t.policy.Load()
	sh := t.shard(id)
	sh.mu.Lock()
	if _, ok := sh.live.find(id); ok {
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
	sh.live.insert(newEntry(s, fStored), user)
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
	slot, ok := sh.live.find(id)
	if !ok || sh.live.user(slot) == user {
		return UserChange{}
	}
	e := sh.live.at(slot)
	var uc UserChange
	if prev := sh.live.user(slot); prev != "" {
		uc.Ended = &End{Session: e.session(prev), Zone: t.zone, Reason: ReasonLogout, EndedAt: now}
		e.StartedAt, e.Requests, e.storedReq = now, 1, 0
	}
	sh.live.users[slot], e.LoginAt = user, now
	if e.flags&fProbation != 0 {
		t.promoteLocked(sh, e)
	}
	uc.Login, uc.Changed = true, e.flags&fProbation == 0
	if uc.Changed {
		e.flags |= fStored
	}
	uc.Session = e.session(user)
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
	slot, ok := osh.live.find(old)
	if !ok {
		osh.mu.Unlock()
		return Rotation{}, false
	}
	moved := *osh.live.at(slot) // same start, user and counters
	moved.ID, moved.inflight, moved.flags = id, 0, moved.flags&fProbation|fStored
	user := osh.live.user(slot)
	osh.mu.Unlock()

	// The new value is live before the old one becomes an alias, so a
	// parallel request with the old value always finds one or the other.
	nsh := t.shard(id)
	nsh.mu.Lock()
	if tb, ok := nsh.tomb[id]; ok && now < tb.until {
		// Never onto an ended identity: that would make it live again.
		nsh.mu.Unlock()
		return Rotation{}, false
	}
	nsh.live.put(moved, user)
	nsh.mu.Unlock()

	r := Rotation{Old: old, GraceUntil: now + int64(p.RotationGrace), ForgetAt: now + int64(p.RememberEnded)}
	var cur entry
	osh.mu.Lock()
	if slot, ok = osh.live.find(old); ok {
		cur = *osh.live.at(slot)
		osh.live.remove(old)
		osh.alias[old] = alias{target: id, graceUntil: r.GraceUntil, forgetAt: r.ForgetAt}
	}
	osh.mu.Unlock()
	nsh.mu.Lock()
	if !ok {
		// Ended or rotated concurrently: undo.
		nsh.live.remove(id)
		nsh.mu.Unlock()
		return Rotation{}, false
	}
	// Requests that touched the old value after the copy still count.
	e := &moved // if the new value ended meanwhile, report what moved
	if slot, found := nsh.live.find(id); found {
		e, user = nsh.live.at(slot), nsh.live.user(slot)
	}
	e.LastActivity = max(e.LastActivity, cur.LastActivity)
	e.Requests = max(e.Requests, cur.Requests)
	e.inflight += cur.inflight
	if e.flags&fProbation != 0 && e != &moved {
		t.promoteLocked(nsh, e) // the upstream recognised the session
	}
	r.Session = e.session(user)
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
	if _, live := nsh.live.find(id); live { // else rotated on or ended meanwhile: chains stay short
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
	slot, ok := sh.live.find(id)
	if !ok {
		return nil
	}
	return t.endLocked(sh, slot, p, why, now)
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
		slot, ok := sh.live.find(d.id)
		if !ok {
			sh.mu.Unlock()
			continue // ended, rotated or evicted since: a stale entry
		}
		at, why := sh.live.at(slot).deadline(p)
		if at > now {
			sh.mu.Unlock()
			t.dl.push(at, d.id)
			continue
		}
		end := t.endLocked(sh, slot, p, why, at)
		sh.mu.Unlock()
		if end != nil {
			out = append(out, *end)
		}
	}
	return out
}

// Change is a session to write to the store.
type Change struct {
	Session  Session
	ReqDelta uint32 // requests since the last write, for stores shared by several instances
	// Stored is set when an earlier write gave the store this session with
	// its current start, login and user (the write that started, loaded,
	// logged in or rotated it): a store may then take this write as
	// activity of the record it holds without reading the record first.
	// The earlier write may still be queued, or in this same batch ahead
	// of this one, so a store must not rely on the record being there.
	Stored bool
}

// Collect appends every session changed since the last Collect to dst and
// clears their dirty marks. Probationary sessions are not persisted.
func (t *Tracker) Collect(dst []Change) []Change {
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		for _, id := range sh.dirty {
			slot, ok := sh.live.find(id)
			if !ok {
				continue
			}
			e := sh.live.at(slot)
			if e.flags&fDirty == 0 {
				continue
			}
			e.flags &^= fDirty
			if e.flags&fProbation != 0 {
				continue
			}
			stored := e.flags&fStored != 0
			e.flags |= fStored
			dst = append(dst, Change{Session: e.session(sh.live.user(slot)), ReqDelta: e.Requests - e.storedReq, Stored: stored})
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
	if slot, ok := sh.live.find(s.ID); ok {
		e := sh.live.at(slot)
		if s.LastActivity > e.LastActivity {
			e.LastActivity = s.LastActivity
		}
		if s.Requests > e.Requests {
			e.Requests = s.Requests
		}
		e.storedReq = max(e.storedReq, s.Requests)
		if sh.live.user(slot) == "" && s.User != "" {
			sh.live.users[slot], e.LoginAt = s.User, s.LoginAt
		}
		if e.flags&fProbation != 0 {
			t.promoteLocked(sh, e)
		}
		e.flags |= fStored
		sh.mu.Unlock()
		return
	}
	sh.live.insert(newEntry(s, fStored), s.User)
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
	if _, live := sh.live.find(id); !live {
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
	slot, ok := sh.live.find(id)
	if !ok || sh.live.at(slot).flags&fProbation != 0 {
		return Session{}, false
	}
	return sh.live.at(slot).session(sh.live.user(slot)), true
}

// Each calls fn with a copy of every established session until fn returns
// false. It holds one shard lock at a time; fn must not call the tracker.
func (t *Tracker) Each(fn func(Session) bool) {
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		more := sh.live.each(func(slot uint32, e *entry) bool {
			return e.flags&fProbation != 0 || fn(e.session(sh.live.user(slot)))
		})
		sh.mu.Unlock()
		if !more {
			return
		}
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
		if e := sh.live.get(id); e != nil {
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
