package storage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/redis/go-redis/v9"

	"github.com/idlegate/idlegate/idletrack"
)

// redisApplyScript writes one zone's part of a batch. KEYS[1] is the zone's
// key base, ARGV[1] MinKeyTTL in ms, ARGV[2] the invalidation channel,
// ARGV[3] this instance's consumer name, ARGV[4] the zone, then a list of
// operations:
//
//	C id version tomb alias   check: the session's write version ("" when
//	                          absent) and whether a tombstone and an alias
//	                          exist ("0"/"1") are as the caller read them
//	S id st li la rq delta u a
//	                          session write: la merges with max, rq grows by
//	                          delta (is rq when the session is new); with a
//	                          = "1" (activity only) st, li and u of a stored
//	                          session stay as they are
//	A packed                  activity-only session writes, each exactly as
//	                          S with a = "1", packed into one argument:
//	                          entries of the 32-character hex ID, then st,
//	                          li, la, rq, delta, each a length byte and its
//	                          decimal digits, then u, a 4-byte little-endian
//	                          length and its bytes (struct format
//	                          redisActEntry); no per-session arguments to
//	                          box and format in Go
//	R old new st li la rq u alias forget-ms
//	                          rotation: drop old, write new (rq merges with
//	                          max), keep old as an alias until forget-ms
//	Y id la rq                an idle/absolute end that yields: merge la and
//	                          rq with max and move the idle index entry
//	E id tomb until-ms n [event-id json next-at]*n
//	                          end: drop the session and its index entries,
//	                          write the tombstone, queue n events
//	Q event-id json next-at   queue an event
//	M target member name at   bind a member value to a session (members.go):
//	                          follows target's aliases; a value already
//	                          bound to another session becomes shared ("*")
//
// Members (redis_members.go): <p>{<z>}:m:<member> holds the target's hex
// ID ("*" when shared), without TTL while the session lives;
// <p>{<z>}:ms:<target> is the session's list of members (member -> "at
// name"), at most MaxMembers. An end gives each of the session's members
// the tombstone's PXAT and drops the list; a rotation moves the list and
// repoints the members.
//
// Every check runs before any write: if one fails the script returns 0 and
// has changed nothing; otherwise it returns 1. Each end and rotation is
// published on the invalidation channel (see redis_invalidate.go). Writes for an ID that has a
// tombstone or an alias are dropped, so an instance flushing activity of a
// session another instance ended or rotated cannot bring it back.
//
// Times are compared as decimal strings: Unix nanoseconds do not fit a Lua
// number (a double) exactly.
var redisApplyScript = redis.NewScript(`
local base = KEYS[1]
local idle, abs, aliases = base .. 'idle', base .. 'abs', base .. 'aliases'
local evs, due = base .. 'ev', base .. 'due'
local t = redis.call('TIME')
local nowms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local minttl = tonumber(ARGV[1])
local chan, origin, zone = ARGV[2], ARGV[3], ARGV[4]
local MAXMEMBERS = 8 -- storage.MaxMembers
local width = {C = 4, S = 8, R = 9, Y = 3, Q = 3, M = 4, A = 1}
local ENTRY = '<c32Bc0Bc0Bc0Bc0Bc0I4c0' -- redisActEntry
local function notify(kind, id, v)
  redis.call('PUBLISH', chan, cjson.encode({o = origin, z = zone, k = kind, id = id, v = v}))
end

local function gt(a, b)
  if #a ~= #b then return #a > #b end
  return a > b
end
local function pxat(ms)
  local at = tonumber(ms)
  if at < nowms + minttl then at = nowms + minttl end
  return string.format('%.0f', at)
end
local function step(i)
  if ARGV[i] == 'E' then return i + 5 + 3 * tonumber(ARGV[i + 4]) end
  return i + 1 + width[ARGV[i]]
end
local function put(id, st, li, la, rq, delta, u, actonly)
  if redis.call('EXISTS', base .. 't:' .. id, base .. 'a:' .. id) > 0 then return end
  local k = base .. 's:' .. id
  local old = redis.call('HMGET', k, 'st', 'la', 'rq')
  if not old[1] then
    redis.call('HSET', k, 'st', st, 'li', li, 'la', la, 'rq', rq, 'u', u, 'v', '1')
    redis.call('ZADD', idle, la, id)
    redis.call('ZADD', abs, st, id)
    return
  end
  if gt(old[2], la) then la = old[2] end
  if actonly then
    st = old[1]
    redis.call('HSET', k, 'la', la)
  else
    redis.call('HSET', k, 'st', st, 'li', li, 'la', la, 'u', u)
  end
  if delta then
    if delta ~= '0' then redis.call('HINCRBY', k, 'rq', delta) end
  elseif gt(rq, old[3]) then
    redis.call('HSET', k, 'rq', rq)
  end
  redis.call('HINCRBY', k, 'v', 1)
  redis.call('ZADD', idle, 'NX', la, id)
  if old[1] ~= st then redis.call('ZADD', abs, st, id) end
end
local function bind(target, m, name, at)
  for _ = 1, 8 do
    local av = redis.call('GET', base .. 'a:' .. target)
    if not av then break end
    target = string.match(av, '^(%S+)')
  end
  local mk = base .. 'm:' .. m
  local cur = redis.call('GET', mk)
  if cur then
    if cur ~= '*' and cur ~= target then
      redis.call('HDEL', base .. 'ms:' .. cur, m)
      redis.call('SET', mk, '*', 'KEEPTTL')
    end
    return
  end
  local tk = base .. 't:' .. target
  local ttl = redis.call('PTTL', tk)
  if ttl > 0 then
    redis.call('SET', mk, target, 'PX', ttl)
    return
  end
  local ms = base .. 'ms:' .. target
  if redis.call('HLEN', ms) >= MAXMEMBERS then
    local kv = redis.call('HGETALL', ms)
    local victim, vat, vsame
    for j = 1, #kv, 2 do
      local sp = string.find(kv[j + 1], ' ', 1, true)
      local vt, vn = string.sub(kv[j + 1], 1, sp - 1), string.sub(kv[j + 1], sp + 1)
      local same = vn == name
      if not victim or (same and not vsame) or (same == vsame and gt(vat, vt)) then
        victim, vat, vsame = kv[j], vt, same
      end
    end
    redis.call('HDEL', ms, victim)
    redis.call('DEL', base .. 'm:' .. victim)
  end
  redis.call('SET', mk, target)
  redis.call('HSET', ms, m, at .. ' ' .. name)
end
local function drop(id)
  redis.call('DEL', base .. 's:' .. id)
  redis.call('ZREM', idle, id)
  redis.call('ZREM', abs, id)
end

local i = 5
while i <= #ARGV do
  if ARGV[i] == 'C' then
    local id = ARGV[i + 1]
    local v = redis.call('HGET', base .. 's:' .. id, 'v') or ''
    if v ~= ARGV[i + 2]
      or tostring(redis.call('EXISTS', base .. 't:' .. id)) ~= ARGV[i + 3]
      or tostring(redis.call('EXISTS', base .. 'a:' .. id)) ~= ARGV[i + 4] then
      return 0
    end
  elseif ARGV[i] == 'A' then
    -- A malformed argument fails here (struct.unpack raises), before
    -- any write.
    local p, pos = ARGV[i + 1], 1
    while pos <= #p do
      pos = select(8, struct.unpack(ENTRY, p, pos))
    end
  end
  i = step(i)
end

i = 5
while i <= #ARGV do
  local op, a = ARGV[i], i + 1
  if op == 'S' then
    put(ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5], ARGV[a + 6], ARGV[a + 7] == '1')
  elseif op == 'A' then
    local p, pos = ARGV[a], 1
    local id, st, li, la, rq, delta, u
    while pos <= #p do
      id, st, li, la, rq, delta, u, pos = struct.unpack(ENTRY, p, pos)
      put(id, st, li, la, rq, delta, u, true)
    end
  elseif op == 'R' then
    local old = ARGV[a]
    drop(old)
    put(ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5], nil, ARGV[a + 6])
    redis.call('SET', base .. 'a:' .. old, ARGV[a + 7], 'PXAT', pxat(ARGV[a + 8]))
    redis.call('ZREMRANGEBYSCORE', aliases, '-inf', string.format('%.0f', nowms))
    redis.call('ZADD', aliases, ARGV[a + 8], old)
    local oms, nms = base .. 'ms:' .. old, base .. 'ms:' .. ARGV[a + 1]
    local kv = redis.call('HGETALL', oms)
    for j = 1, #kv, 2 do
      local mk = base .. 'm:' .. kv[j]
      if redis.call('GET', mk) == old then
        redis.call('SET', mk, ARGV[a + 1])
        redis.call('HSET', nms, kv[j], kv[j + 1])
      end
    end
    redis.call('DEL', oms)
    notify('R', old, ARGV[a + 7])
  elseif op == 'Y' then
    local k = base .. 's:' .. ARGV[a]
    local cur = redis.call('HMGET', k, 'la', 'rq')
    if cur[1] then
      local la = ARGV[a + 1]
      if gt(cur[1], la) then la = cur[1] end
      if gt(ARGV[a + 2], cur[2]) then redis.call('HSET', k, 'rq', ARGV[a + 2]) end
      redis.call('HSET', k, 'la', la)
      redis.call('HINCRBY', k, 'v', 1)
      redis.call('ZADD', idle, la, ARGV[a])
    end
  elseif op == 'E' then
    local id = ARGV[a]
    drop(id)
    redis.call('SET', base .. 't:' .. id, ARGV[a + 1], 'PXAT', pxat(ARGV[a + 2]))
    local ms = base .. 'ms:' .. id
    for _, m in ipairs(redis.call('HKEYS', ms)) do
      local mk = base .. 'm:' .. m
      if redis.call('GET', mk) == id then redis.call('SET', mk, id, 'PXAT', pxat(ARGV[a + 2])) end
    end
    redis.call('DEL', ms)
    notify('E', id, ARGV[a + 1])
    for j = 0, tonumber(ARGV[a + 3]) - 1 do
      local e = a + 4 + 3 * j
      redis.call('HSET', evs, ARGV[e], ARGV[e + 1])
      redis.call('ZADD', due, ARGV[e + 2], ARGV[e])
    end
  elseif op == 'Q' then
    redis.call('HSET', evs, ARGV[a], ARGV[a + 1])
    redis.call('ZADD', due, ARGV[a + 2], ARGV[a])
  elseif op == 'M' then
    bind(ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3])
  end
  i = step(i)
end
return 1
`)

// maxEndConflicts bounds how often Apply re-reads a zone whose sessions
// other instances kept changing between the read and the write.
const maxEndConflicts = 16

// zoneWrites is one zone's part of a batch, in batch order.
type zoneWrites struct {
	zone      string
	nsess     int // session writes of the zone (their indexes: redisScratch.order)
	rotations []RotationWrite
	ends      []int // indexes into Batch.Ends
	events    []Event
	members   []MemberWrite
}

// Apply implements Store. Per zone, session writes go first, in scripts of
// up to redisSessionChunk sessions, then the rotations, ends and events in
// one script, all or nothing. A batch is therefore not atomic as a whole:
// zones may live on different Cluster nodes, and one script for a flush of
// thousands of sessions would stall Redis for every instance. Each session
// write stands alone (activity merges with max), so nothing depends on
// that atomicity; what a failure leaves written, the engine's retry of the
// whole batch writes again: ends and events are idempotent (tombstones,
// event IDs), and only request counts of the written chunks may grow twice.
func (s *Redis) Apply(ctx context.Context, b *Batch) (_ []EndResult, err error) {
	defer s.wrap("apply", &err)
	if err := s.check(); err != nil {
		return nil, err
	}
	var order []*zoneWrites
	byZone := map[string]*zoneWrites{}
	zw := func(zone string) *zoneWrites {
		w := byZone[zone]
		if w == nil {
			w = &zoneWrites{zone: zone}
			byZone[zone] = w
			order = append(order, w)
		}
		return w
	}
	sc := s.scratch()
	defer s.release(sc)
	var last *zoneWrites
	for i := range b.Sessions {
		if last == nil || b.Sessions[i].Zone != last.zone {
			last = zw(b.Sessions[i].Zone)
		}
		last.nsess++
	}
	for _, w := range b.Rotations {
		z := zw(w.Zone)
		z.rotations = append(z.rotations, w)
	}
	for i, w := range b.Ends {
		z := zw(w.End.Zone)
		z.ends = append(z.ends, i)
	}
	for _, e := range b.Events {
		z := zw(e.Zone)
		z.events = append(z.events, e)
	}
	for _, m := range b.Members {
		z := zw(m.Zone)
		z.members = append(z.members, m)
	}
	// Zones that may queue events are listed for the delivery worker
	// first: a listed zone with an empty outbox costs nothing.
	var outboxZones []any
	for _, z := range order {
		if len(z.ends)+len(z.events) > 0 {
			outboxZones = append(outboxZones, z.zone)
		}
	}
	if len(outboxZones) > 0 {
		if err := s.c.SAdd(ctx, s.prefix+"zones", outboxZones...).Err(); err != nil {
			return nil, err
		}
	}
	results := make([]EndResult, len(b.Ends))
	for _, z := range order {
		if z.nsess > 0 {
			// The zone's session writes, in batch order, by index: the
			// writes themselves are not copied.
			idx := sc.order[:0]
			for i := range b.Sessions {
				if b.Sessions[i].Zone == z.zone {
					idx = append(idx, int32(i))
				}
			}
			sc.order = idx
			base := s.base(z.zone)
			for chunk := range slices.Chunk(idx, redisSessionChunk) {
				if err := s.applySessions(ctx, base, z.zone, b.Sessions, chunk, sc); err != nil {
					return nil, err
				}
			}
		}
		if len(z.rotations)+len(z.ends)+len(z.events)+len(z.members) > 0 {
			if err := s.applyZone(ctx, b, z, results); err != nil {
				return nil, err
			}
		}
	}
	return results, nil
}

// redisSessionChunk is the most session writes one script carries. A
// script blocks Redis while it runs (about 10 µs per session write), so a
// flush of many sessions goes in several scripts of about 5 ms each.
const redisSessionChunk = 500

// simSession is what a zone script will find for one ID that the batch
// ends, replayed in Go so EndWrite.Events sees the end as carried out.
type simSession struct {
	version     string // as read: the script checks it
	readTomb    bool
	readAlias   bool
	exists      bool
	s           idletrack.Session
	tomb, alias bool
}

func (x *simSession) put(s idletrack.Session, delta uint32, rotation, activityOnly bool) {
	if x.tomb || x.alias {
		return
	}
	if !x.exists {
		x.exists, x.s = true, s
		return
	}
	la, rq := max(x.s.LastActivity, s.LastActivity), x.s.Requests+delta
	if rotation {
		rq = max(x.s.Requests, s.Requests)
	}
	if activityOnly {
		s.StartedAt, s.LoginAt, s.User = x.s.StartedAt, x.s.LoginAt, x.s.User
	}
	x.s = s
	x.s.LastActivity, x.s.Requests = la, rq
}

func b01(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

func (s *Redis) applyZone(ctx context.Context, b *Batch, z *zoneWrites, results []EndResult) error {
	base := s.base(z.zone)
	res := make([]EndResult, len(z.ends))
	for range maxEndConflicts {
		sim, err := s.readForEnds(ctx, base, b, z.ends)
		if err != nil {
			return err
		}
		args := []any{MinKeyTTL.Milliseconds(), s.redisInvalChannel(), s.consumer, z.zone}
		for id, x := range sim {
			args = append(args, "C", hexID(id), x.version, b01(x.readTomb), b01(x.readAlias))
		}
		for _, w := range z.rotations {
			ss := w.Session
			av := hexID(ss.ID) + " " + itoa(w.GraceUntil) + " " + itoa(w.ForgetAt)
			args = append(args, "R", hexID(w.Old), hexID(ss.ID), ss.StartedAt, ss.LoginAt, ss.LastActivity, ss.Requests, ss.User, av, w.ForgetAt/1e6)
			if x := sim[w.Old]; x != nil {
				x.exists, x.alias = false, true
			}
			if x := sim[ss.ID]; x != nil {
				x.put(ss, 0, true, false)
			}
		}
		for _, m := range z.members {
			args = append(args, "M", hexID(m.Target), hexID(m.Member), m.Name, m.At)
		}
		for k, i := range z.ends {
			w := b.Ends[i]
			end := w.End
			x := sim[end.Session.ID]
			if x.tomb {
				res[k] = EndResult{} // it ended before: exactly once
				continue
			}
			if x.exists {
				end.Session.LastActivity = max(end.Session.LastActivity, x.s.LastActivity)
				end.Session.Requests = max(end.Session.Requests, x.s.Requests)
				// The store names the user: this instance may not have
				// seen a login that another one wrote.
				end.Session.User, end.Session.LoginAt = x.s.User, x.s.LoginAt
				if end.Reason == idletrack.ReasonIdle || end.Reason == idletrack.ReasonAbsolute {
					if at, _ := end.Session.Deadline(&w.Policy); at > end.EndedAt {
						// Active since, as far as the store knows.
						cur := end.Session
						args = append(args, "Y", hexID(cur.ID), cur.LastActivity, cur.Requests)
						x.s.LastActivity, x.s.Requests = cur.LastActivity, cur.Requests
						res[k] = EndResult{Current: &cur}
						continue
					}
				}
			}
			tombUntil := w.TombstoneUntil
			if !w.tombstone(&end) {
				// A short tombstone, gone by itself, is the claim that keeps
				// a second instance from ending the session again; it does
				// not last long enough for a flood to grow the store.
				tombUntil = min(tombUntil, end.EndedAt+int64(anonymousClaim))
			}
			var evs []Event
			if w.Events != nil {
				evs = w.Events(end)
			}
			args = append(args, "E", hexID(end.Session.ID), itoa(tombUntil)+" "+string(end.Reason), tombUntil/1e6, len(evs))
			for _, e := range evs {
				j, err := json.Marshal(e)
				if err != nil {
					return err
				}
				args = append(args, e.ID, j, e.NextAt)
			}
			x.exists, x.tomb = false, true
			res[k] = EndResult{Ended: true, End: end}
		}
		for _, e := range z.events {
			j, err := json.Marshal(e)
			if err != nil {
				return err
			}
			args = append(args, "Q", e.ID, j, e.NextAt)
		}
		ok, err := redisApplyScript.Run(ctx, s.c, []string{base}, args...).Int()
		if err != nil {
			return err
		}
		if ok == 1 {
			for k, i := range z.ends {
				results[i] = res[k]
			}
			return nil
		}
		// Another instance wrote one of these sessions since the read.
		s.conflicts.Add(1)
	}
	return fmt.Errorf("idlegate store: zone %q: sessions to end kept changing under writes of other instances (%d tries)", z.zone, maxEndConflicts)
}

// readForEnds reads, in one round trip, what the store holds for every ID
// that the zone's part of the batch ends.
func (s *Redis) readForEnds(ctx context.Context, base string, b *Batch, ends []int) (map[idletrack.ID]*simSession, error) {
	if len(ends) == 0 {
		return nil, nil
	}
	type reads struct {
		id   idletrack.ID
		s    *redis.SliceCmd
		t, a *redis.IntCmd
	}
	sim := make(map[idletrack.ID]*simSession, len(ends))
	var rs []reads
	p := s.c.Pipeline()
	for _, i := range ends {
		id := b.Ends[i].End.Session.ID
		if sim[id] != nil {
			continue
		}
		sim[id] = &simSession{}
		h := hexID(id)
		rs = append(rs, reads{id: id, s: p.HMGet(ctx, base+"s:"+h, sessionFields...), t: p.Exists(ctx, base+"t:"+h), a: p.Exists(ctx, base+"a:"+h)})
	}
	if _, err := p.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	for _, r := range rs {
		sess, v, ok, err := decodeSession(r.id, r.s.Val())
		if err != nil {
			return nil, err
		}
		x := sim[r.id]
		x.exists, x.s, x.version = ok, sess, v
		x.readTomb, x.readAlias = r.t.Val() > 0, r.a.Val() > 0
		x.tomb, x.alias = x.readTomb, x.readAlias
	}
	return sim, nil
}
