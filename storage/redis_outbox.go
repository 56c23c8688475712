package storage

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/redis/go-redis/v9"
)

// The outbox in Redis.
//
// Events live with the zone whose session end queued them, because the end
// and its events are one script and a script touches one Cluster slot:
// <p>{<z>}:ev holds the event JSON, <p>{<z>}:due schedules it by NextAt.
// <p>zones lists the zones, so one worker reads every zone's outbox.
//
// Several instances run a delivery worker on the same outbox. Due claims
// what it returns: redisClaimScript writes a lease "<consumer> <expiry>" in
// <p>{<z>}:lease, with the expiry in Redis's own clock (TIME), so instance
// clocks do not matter. While the lease runs, Due on other instances leaves
// the event out; Due on the holder still returns it (its worker filters its
// own in-flight events with skip). Delivered, Reschedule and Bury release
// the lease. An instance that dies holding a lease delays its events by at
// most the lease (RedisOptions.Lease, default 60 s); then any instance
// takes them. Reschedule and Bury from an instance whose lease another
// instance has taken over are ignored: the holder's outcome counts.
// Delivery stays at least once: an attempt that outlives its lease may
// overlap another instance's.
//
// Redis Streams with a consumer group were considered: XAUTOCLAIM gives the
// same crash recovery, but a stream is ordered by insertion, not by NextAt,
// so retries would need this schedule anyway, and then the stream and the
// schedule are two copies that must agree. One sorted set scheduled by
// NextAt plus a lease per claimed event does all of it in O(log n) per
// event, and Due costs O(due) (plus events leased elsewhere).
//
// Dead letters are <p>{<z>}:dead (JSON) and <p>{<z>}:deadq (ID -> At).
var redisClaimScript = redis.NewScript(`
local base = KEYS[1]
local evs, due, lease = base .. 'ev', base .. 'due', base .. 'lease'
local t = redis.call('TIME')
local nowms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expires = string.format('%.0f', nowms + tonumber(ARGV[3]))
local now = tonumber(ARGV[1])
local out = {}
for i = 4, #ARGV do
  local id = ARGV[i]
  local sc = redis.call('ZSCORE', due, id)
  if sc and tonumber(sc) <= now then
    local l = redis.call('HGET', lease, id)
    local free = true
    if l then
      local owner, exp = string.match(l, '^(.*) (%d+)$')
      free = owner == ARGV[2] or tonumber(exp) <= nowms
    end
    if free then
      local ev = redis.call('HGET', evs, id)
      if ev then
        redis.call('HSET', lease, id, ARGV[2] .. ' ' .. expires)
        out[#out + 1] = ev
      else
        redis.call('ZREM', due, id)
        redis.call('HDEL', lease, id)
      end
    end
  end
end
return out
`)

// redisSettleScript records the outcome of an attempt: ARGV[1] is D
// (delivered), R (reschedule to score ARGV[5]) or B (bury with score
// ARGV[5]), ARGV[2] the consumer, ARGV[3] the event ID, ARGV[4] its JSON.
// It returns -1 if the event is not in this zone's outbox, 0 if another
// consumer holds its lease (R, B), 1 when done.
var redisSettleScript = redis.NewScript(`
local base = KEYS[1]
local op, id = ARGV[1], ARGV[3]
local evs, due, lease = base .. 'ev', base .. 'due', base .. 'lease'
if redis.call('HEXISTS', evs, id) == 0 then return -1 end
if op ~= 'D' then
  local l = redis.call('HGET', lease, id)
  if l then
    local t = redis.call('TIME')
    local nowms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    local owner, exp = string.match(l, '^(.*) (%d+)$')
    if owner ~= ARGV[2] and tonumber(exp) > nowms then return 0 end
  end
end
redis.call('HDEL', lease, id)
if op == 'R' then
  redis.call('HSET', evs, id, ARGV[4])
  redis.call('ZADD', due, ARGV[5], id)
  return 1
end
redis.call('HDEL', evs, id)
redis.call('ZREM', due, id)
if op == 'B' then
  redis.call('HSET', base .. 'dead', id, ARGV[4])
  redis.call('ZADD', base .. 'deadq', ARGV[5], id)
end
return 1
`)

// redisReviveScript moves dead letters back to the outbox: ARGV[1] is the
// due time, then pairs of event ID and the event's JSON with a fresh
// attempt count. It returns how many it moved.
var redisReviveScript = redis.NewScript(`
local base = KEYS[1]
local n = 0
for i = 2, #ARGV, 2 do
  local id = ARGV[i]
  if redis.call('HDEL', base .. 'dead', id) == 1 then
    redis.call('ZREM', base .. 'deadq', id)
    redis.call('HDEL', base .. 'lease', id)
    redis.call('HSET', base .. 'ev', id, ARGV[i + 1])
    redis.call('ZADD', base .. 'due', ARGV[1], id)
    n = n + 1
  end
end
return n
`)

func (s *Redis) zones(ctx context.Context) ([]string, error) {
	z, err := s.c.SMembers(ctx, s.prefix+"zones").Result()
	slices.Sort(z)
	return z, err
}

// dueQueue is one zone's due events, read a page at a time.
type dueQueue struct {
	zone string
	buf  []redis.Z
	off  int64
	done bool
}

// Due implements Outbox: it merges the zones' schedules, earliest first,
// and claims what it returns (see redisClaimScript).
func (s *Redis) Due(ctx context.Context, now int64, limit int, skip func(id string) bool) (_ []Event, err error) {
	defer s.wrap("outbox due", &err)
	if err := s.check(); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, nil
	}
	zones, err := s.zones(ctx)
	if err != nil {
		return nil, err
	}
	qs := make([]*dueQueue, len(zones))
	for i, z := range zones {
		qs[i] = &dueQueue{zone: z}
	}
	page := int64(limit + 32)
	var out []Event
	for round := 0; round < 32 && len(out) < limit; round++ {
		// Refill the zones whose buffer ran out.
		p := s.c.Pipeline()
		cmds := map[*dueQueue]*redis.ZSliceCmd{}
		for _, q := range qs {
			if len(q.buf) == 0 && !q.done {
				cmds[q] = p.ZRangeByScoreWithScores(ctx, s.base(q.zone)+"due", &redis.ZRangeBy{Min: "-inf", Max: itoa(now), Offset: q.off, Count: page})
			}
		}
		if len(cmds) > 0 {
			if _, err := p.Exec(ctx); err != nil {
				return nil, err
			}
		}
		for q, c := range cmds {
			q.buf = c.Val()
			q.off += int64(len(q.buf))
			q.done = int64(len(q.buf)) < page
		}
		// Pick the earliest across zones until a buffer needs refilling.
		picks := map[string][]any{}
		npicks := 0
	pick:
		for len(out)+npicks < limit {
			var best *dueQueue
			for _, q := range qs {
				if len(q.buf) == 0 {
					if !q.done {
						break pick
					}
					continue
				}
				if best == nil || q.buf[0].Score < best.buf[0].Score {
					best = q
				}
			}
			if best == nil {
				break
			}
			id, _ := best.buf[0].Member.(string)
			best.buf = best.buf[1:]
			if skip != nil && skip(id) {
				continue
			}
			picks[best.zone] = append(picks[best.zone], id)
			npicks++
		}
		for zone, ids := range picks {
			args := append([]any{now, s.consumer, s.lease.Milliseconds()}, ids...)
			js, err := redisClaimScript.Run(ctx, s.c, []string{s.base(zone)}, args...).StringSlice()
			if err != nil {
				return nil, err
			}
			for _, j := range js {
				var e Event
				if err := json.Unmarshal([]byte(j), &e); err != nil {
					return nil, fmt.Errorf("outbox of zone %q: bad event: %w", zone, err)
				}
				out = append(out, e)
			}
		}
		if npicks == 0 && !slices.ContainsFunc(qs, func(q *dueQueue) bool { return !q.done || len(q.buf) > 0 }) {
			break
		}
	}
	slices.SortStableFunc(out, func(a, b Event) int { return cmp.Or(cmp.Compare(a.NextAt, b.NextAt), cmp.Compare(a.ID, b.ID)) })
	return out, nil
}

// settle runs redisSettleScript in the outbox that holds e: its zone's,
// or, for an event queued by an end in another zone, that one's.
func (s *Redis) settle(ctx context.Context, op string, e Event, score int64) (err error) {
	defer s.wrap("outbox "+map[string]string{"D": "delivered", "R": "reschedule", "B": "bury"}[op], &err)
	if err := s.check(); err != nil {
		return err
	}
	j, err := json.Marshal(e)
	if err != nil {
		return err
	}
	try := func(zone string) (int, error) {
		return redisSettleScript.Run(ctx, s.c, []string{s.base(zone)}, op, s.consumer, e.ID, j, score).Int()
	}
	r, err := try(e.Zone)
	if err != nil || r != -1 {
		return err
	}
	zones, err := s.zones(ctx)
	if err != nil {
		return err
	}
	for _, z := range zones {
		if z == e.Zone {
			continue
		}
		if r, err := try(z); err != nil || r != -1 {
			return err
		}
	}
	return nil // not queued (any more): like Bolt, nothing to do
}

// Delivered implements Outbox.
func (s *Redis) Delivered(ctx context.Context, e Event) error { return s.settle(ctx, "D", e, 0) }

// Reschedule implements Outbox.
func (s *Redis) Reschedule(ctx context.Context, e Event) error {
	return s.settle(ctx, "R", e, e.NextAt)
}

// Bury implements Outbox.
func (s *Redis) Bury(ctx context.Context, e Event) error { return s.settle(ctx, "B", e, e.At) }

// deadOf reads the dead letters ids of zone (all when ids is nil).
func (s *Redis) deadOf(ctx context.Context, zone string, ids []string) ([]Event, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	vals, err := s.c.HMGet(ctx, s.base(zone)+"dead", ids...).Result()
	if err != nil {
		return nil, err
	}
	var out []Event
	for _, v := range vals {
		j, ok := v.(string)
		if !ok {
			continue
		}
		var e Event
		if err := json.Unmarshal([]byte(j), &e); err != nil {
			return nil, fmt.Errorf("dead letters of zone %q: bad event: %w", zone, err)
		}
		out = append(out, e)
	}
	return out, nil
}

// DeadLetters implements Outbox.
func (s *Redis) DeadLetters(ctx context.Context, limit int) (_ []Event, err error) {
	defer s.wrap("dead letters", &err)
	if err := s.check(); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, nil
	}
	zones, err := s.zones(ctx)
	if err != nil {
		return nil, err
	}
	var out []Event
	for _, z := range zones {
		ids, err := s.c.ZRange(ctx, s.base(z)+"deadq", 0, int64(limit-1)).Result()
		if err != nil {
			return nil, err
		}
		evs, err := s.deadOf(ctx, z, ids)
		if err != nil {
			return nil, err
		}
		out = append(out, evs...)
	}
	slices.SortStableFunc(out, func(a, b Event) int { return cmp.Or(cmp.Compare(a.At, b.At), cmp.Compare(a.ID, b.ID)) })
	return out[:min(limit, len(out))], nil
}

// Revive implements Outbox.
func (s *Redis) Revive(ctx context.Context, ids []string, now int64) (_ int, err error) {
	defer s.wrap("revive", &err)
	if err := s.check(); err != nil {
		return 0, err
	}
	zones, err := s.zones(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, z := range zones {
		want := ids
		if len(want) == 0 {
			if want, err = s.c.ZRange(ctx, s.base(z)+"deadq", 0, -1).Result(); err != nil {
				return n, err
			}
		}
		for chunk := range slices.Chunk(want, 500) {
			evs, err := s.deadOf(ctx, z, chunk)
			if err != nil || len(evs) == 0 {
				if err != nil {
					return n, err
				}
				continue
			}
			args := []any{now}
			for _, e := range evs {
				e.Attempts, e.NextAt, e.LastError = 0, now, ""
				j, err := json.Marshal(e)
				if err != nil {
					return n, err
				}
				args = append(args, e.ID, j)
			}
			m, err := redisReviveScript.Run(ctx, s.c, []string{s.base(z)}, args...).Int()
			n += m
			if err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// OutboxStats implements Outbox: events queued (claimed or not) and dead
// letters, over every zone.
func (s *Redis) OutboxStats(ctx context.Context) (pending, dead int, err error) {
	defer s.wrap("outbox stats", &err)
	if err := s.check(); err != nil {
		return 0, 0, err
	}
	zones, err := s.zones(ctx)
	if err != nil || len(zones) == 0 {
		return 0, 0, err
	}
	p := s.c.Pipeline()
	var cmds []*redis.IntCmd
	for _, z := range zones {
		cmds = append(cmds, p.ZCard(ctx, s.base(z)+"due"), p.ZCard(ctx, s.base(z)+"deadq"))
	}
	if _, err := p.Exec(ctx); err != nil {
		return 0, 0, err
	}
	for i, c := range cmds {
		if i%2 == 0 {
			pending += int(c.Val())
		} else {
			dead += int(c.Val())
		}
	}
	return pending, dead, nil
}

// redisHastenScript makes every event of one zone's schedule that is due
// after ARGV[1] due at ARGV[1].
var redisHastenScript = redis.NewScript(`
local later = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf')
for _, id in ipairs(later) do
  redis.call('ZADD', KEYS[1], ARGV[1], id)
end
return #later
`)

// Hasten implements Hastener.
func (s *Redis) Hasten(ctx context.Context, zone string, now int64) (n int, err error) {
	defer s.wrap("hasten", &err)
	if err := s.check(); err != nil {
		return 0, err
	}
	return redisHastenScript.Run(ctx, s.c, []string{s.base(zone) + "due"}, now).Int()
}

var _ Hastener = (*Redis)(nil)
