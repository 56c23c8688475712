package storage

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/idlegate/idlegate/idletrack"
)

// Redis is the shared store: several Caddy instances point at the same
// Redis (single node, Sentinel or Cluster) and see the same sessions,
// tombstones and outbox.
//
// # Key layout
//
// Every key of a zone carries the zone as a hash tag, so all of them live
// in one Cluster slot and one Lua script can change them atomically:
//
//	<p>key                 string  the HMAC key for session IDs (32 bytes, SET NX once)
//	<p>zones               set     zones that have an outbox (read by the delivery worker)
//	<p>{<z>}:s:<id>        hash    a session: st, li, la, rq, u, v (start, login, last
//	                               activity, requests, user, write version)
//	<p>{<z>}:idle          zset    lazy idle index: ID -> last activity when indexed
//	<p>{<z>}:abs           zset    absolute index: ID -> start; also the list of sessions
//	<p>{<z>}:a:<id>        string  rotation alias "target grace-until forget-at", TTL to forget-at
//	<p>{<z>}:aliases       zset    alias IDs -> forget-at (ms), so Load finds them
//	<p>{<z>}:t:<id>        string  tombstone "until reason", TTL to until
//	<p>{<z>}:ev            hash    queued events: event ID -> JSON
//	<p>{<z>}:due           zset    queued events: event ID -> NextAt
//	<p>{<z>}:lease         hash    claimed events: event ID -> "consumer expiry-ms"
//	<p>{<z>}:dead, :deadq  hash, zset  dead letters: JSON, and ID -> At
//
// <p> is RedisOptions.Prefix, <id> the session ID in hex and <z> the zone
// (hex-encoded with a leading "%" when it is empty or holds "{", "}" or "%").
// Times are Unix nanoseconds unless marked ms. Sorted-set scores are
// doubles, exact to about 256 ns for present-day nanosecond times; the
// indexes are lazy, so an entry a few hundred nanoseconds late is harmless.
//
// Tombstones and aliases expire by key TTL (PXAT), so memory stays bounded
// without a sweep and Purge has nothing to delete. A TTL is never shorter
// than MinKeyTTL: the stored until/forget-at times decide, the TTL only
// collects garbage, so a caller clock that differs from Redis's (or a test
// clock) cannot make a tombstone vanish before it is read.
//
// # Writes
//
// Apply runs one Lua script per zone (redisApplyScript), so each zone's part
// of a batch is all or nothing. Ends are optimistic: the sessions to end are
// read first, merged in Go with what the batch itself writes, and
// EndWrite.Events is called on the merged end; the script then checks that
// each such session's write version, tombstone and alias are still as read
// before it writes anything, and otherwise changes nothing and Apply tries
// again. So when several instances end the same session, exactly one
// script finds no tombstone, and one event is queued.
//
// # Outbox
//
// See the comment on redisClaimScript: per-zone sorted sets scheduled by
// NextAt, claimed by one consumer at a time with a lease in Redis time.
//
// # Availability
//
// OpenRedis fails when Redis cannot be reached: the HMAC key lives in Redis
// and without it no session ID can be computed. Later, while Redis is away,
// every call returns an error after at most two tries of DialTimeout or
// ReadTimeout (the engine keeps enforcing from memory and retries its
// writes); calls work again once Redis is back.
type Redis struct {
	c        redis.UniversalClient
	addrs    string // for errors
	prefix   string
	consumer string
	lease    time.Duration
	key      []byte
	closed   atomic.Bool

	conflicts atomic.Int64 // zone scripts that found a session changed since the read

	scratchMu sync.Mutex
	sc        redisScratch // Apply's buffers (redis_flush.go), under scratchMu
	noPack    bool         // tests: activity-only writes as op S, not op A
}

// RedisOptions configure OpenRedis. Either URL or Addrs names the server.
type RedisOptions struct {
	// URL is a redis:// or rediss:// (TLS) URL, e.g.
	// redis://:password@10.0.0.5:6379/0. Its host is added to Addrs.
	URL string
	// Addrs are host:port addresses: one is a single node, several a
	// Cluster; with MasterName they are Sentinels.
	Addrs []string
	// MasterName is the Sentinel master's name (Sentinel mode).
	MasterName string
	// Password overrides the URL's password when set.
	Password string
	// TLS connects with TLS (implied by a rediss:// URL).
	TLS bool
	// Prefix starts every key (default "idlegate:"). Instances that share
	// sessions use the same prefix.
	Prefix string
	// Consumer names this instance in outbox leases; it must differ between
	// instances (default hostname-pid-random).
	Consumer string
	// Lease is how long an event claimed by Due stays with this instance
	// before another may take it (default 60s). Keep it above the longest
	// webhook timeout.
	Lease time.Duration
	// DialTimeout (default 1s) and ReadTimeout (default 2s; writes the
	// same) bound how long a call waits for an unreachable Redis: a call
	// tries twice, so it fails after at most about twice the larger one.
	DialTimeout, ReadTimeout time.Duration
}

// MinKeyTTL is the shortest TTL given to a tombstone or alias key.
const MinKeyTTL = time.Hour

// DefaultRedisPrefix starts every key when RedisOptions.Prefix is empty.
const DefaultRedisPrefix = "idlegate:"

// OpenRedis connects to Redis, checks that it answers, and reads (or
// creates, once for all instances) the HMAC key.
func OpenRedis(o RedisOptions) (*Redis, error) {
	uo := &redis.UniversalOptions{
		Addrs:                 append([]string(nil), o.Addrs...),
		MasterName:            o.MasterName,
		Password:              o.Password,
		DialTimeout:           o.DialTimeout,
		ReadTimeout:           o.ReadTimeout,
		WriteTimeout:          o.ReadTimeout,
		ContextTimeoutEnabled: true,
		// One retry, for a pooled connection that died with a restarted
		// Redis; one dial per try, so an unreachable Redis costs at most
		// two DialTimeouts.
		MaxRetries:      1,
		DialerRetries:   1,
		DisableIdentity: true,
	}
	if uo.DialTimeout <= 0 {
		uo.DialTimeout = time.Second
	}
	if uo.ReadTimeout <= 0 {
		uo.ReadTimeout, uo.WriteTimeout = 2*time.Second, 2*time.Second
	}
	uo.PoolTimeout = uo.ReadTimeout + time.Second
	if o.URL != "" {
		u, err := redis.ParseURL(o.URL)
		if err != nil {
			return nil, fmt.Errorf("idlegate store: bad Redis URL %q: %w (want redis://[:password@]host:port[/db] or rediss://...)", redactURL(o.URL), err)
		}
		uo.Addrs = append([]string{u.Addr}, uo.Addrs...)
		uo.DB, uo.Username = u.DB, u.Username
		if uo.Password == "" {
			uo.Password = u.Password
		}
		uo.TLSConfig = u.TLSConfig
	}
	if len(uo.Addrs) == 0 {
		return nil, errors.New("idlegate store: no Redis address: set a redis:// URL or at least one host:port")
	}
	if o.TLS && uo.TLSConfig == nil {
		uo.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if uo.TLSConfig != nil && uo.TLSConfig.ServerName == "" && len(uo.Addrs) == 1 {
		uo.TLSConfig.ServerName, _, _ = strings.Cut(uo.Addrs[0], ":")
	}
	s := &Redis{
		c:        redis.NewUniversalClient(uo),
		addrs:    strings.Join(uo.Addrs, ","),
		prefix:   o.Prefix,
		consumer: o.Consumer,
		lease:    o.Lease,
	}
	if s.prefix == "" {
		s.prefix = DefaultRedisPrefix
	}
	if s.consumer == "" {
		host, _ := os.Hostname()
		var b [4]byte
		rand.Read(b[:])
		s.consumer = fmt.Sprintf("%s-%d-%x", host, os.Getpid(), b)
	}
	if s.lease <= 0 {
		s.lease = 60 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), uo.DialTimeout+uo.ReadTimeout)
	defer cancel()
	if err := s.initKey(ctx); err != nil {
		s.c.Close()
		return nil, fmt.Errorf("idlegate store: cannot use Redis at %s: %w; check that Redis runs there and the address, password and TLS setting are right",
			strings.Join(uo.Addrs, ","), err)
	}
	return s, nil
}

// redactURL hides a password in a URL for error messages.
func redactURL(u string) string {
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		return u
	}
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		rest = "***@" + rest[at+1:]
	}
	return scheme + "://" + rest
}

func (s *Redis) initKey(ctx context.Context) error {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return err
	}
	name := s.prefix + "key"
	if err := s.c.SetNX(ctx, name, k, 0).Err(); err != nil {
		return err
	}
	got, err := s.c.Get(ctx, name).Bytes()
	if err != nil {
		return err
	}
	if len(got) != 32 {
		return fmt.Errorf("key %q holds %d bytes, not a 32-byte idlegate key; is the prefix shared with something else?", name, len(got))
	}
	s.key = got
	return nil
}

// Key implements Store.
func (s *Redis) Key() []byte { return s.key }

// Shared implements Store: other instances write the same Redis.
func (s *Redis) Shared() bool { return true }

// Close implements Store.
func (s *Redis) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	return s.c.Close()
}

// wrap names the store and the operation in an error from Redis, e.g.
// "idlegate store: Redis at 10.0.0.5:6379: lookup: i/o timeout".
func (s *Redis) wrap(op string, err *error) {
	if *err != nil && !errors.Is(*err, ErrClosed) {
		*err = fmt.Errorf("idlegate store: Redis at %s: %s: %w", s.addrs, op, *err)
	}
}

func (s *Redis) check() error {
	if s.closed.Load() {
		return ErrClosed
	}
	return nil
}

// base returns the key prefix of zone's keys: "<prefix>{<zone>}:".
func (s *Redis) base(zone string) string {
	tag := zone
	if zone == "" || strings.ContainsAny(zone, "{}%") {
		tag = "%" + hex.EncodeToString([]byte(zone))
	}
	return s.prefix + "{" + tag + "}:"
}

func hexID(id idletrack.ID) string { return hex.EncodeToString(id[:]) }

func parseID(h string) (idletrack.ID, error) {
	var id idletrack.ID
	if len(h) != 2*len(id) {
		return id, fmt.Errorf("bad session ID %q in Redis", h)
	}
	_, err := hex.Decode(id[:], []byte(h))
	return id, err
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// sessionFields are the fields read from a session hash, in this order.
var sessionFields = []string{"st", "li", "la", "rq", "u", "v"}

// decodeSession turns an HMGET of sessionFields into a session. ok is false
// when the hash does not exist.
func decodeSession(id idletrack.ID, v []any) (s idletrack.Session, version string, ok bool, err error) {
	if len(v) != len(sessionFields) || v[0] == nil {
		return s, "", false, nil
	}
	str := func(i int) string { x, _ := v[i].(string); return x }
	s.ID = id
	var errs [4]error
	s.StartedAt, errs[0] = strconv.ParseInt(str(0), 10, 64)
	s.LoginAt, errs[1] = strconv.ParseInt(str(1), 10, 64)
	s.LastActivity, errs[2] = strconv.ParseInt(str(2), 10, 64)
	rq, e := strconv.ParseUint(str(3), 10, 64)
	errs[3] = e
	s.Requests = uint32(min(rq, 1<<32-1))
	s.User = str(4)
	if err := errors.Join(errs[:]...); err != nil {
		return s, "", false, fmt.Errorf("session %s: bad record in Redis: %w", id.Short(), err)
	}
	return s, str(5), true, nil
}

func decodeAliasValue(old idletrack.ID, v string) (Alias, error) {
	f := strings.Fields(v)
	a := Alias{Old: old}
	if len(f) != 3 {
		return a, fmt.Errorf("alias %s: bad record in Redis", old.Short())
	}
	var err1, err2, err3 error
	a.Target, err1 = parseID(f[0])
	a.GraceUntil, err2 = strconv.ParseInt(f[1], 10, 64)
	a.ForgetAt, err3 = strconv.ParseInt(f[2], 10, 64)
	return a, errors.Join(err1, err2, err3)
}

func decodeTombstone(v string) (until int64, reason idletrack.Reason, err error) {
	u, r, _ := strings.Cut(v, " ")
	until, err = strconv.ParseInt(u, 10, 64)
	return until, idletrack.Reason(r), err
}

// Load implements Store. It walks the zone's absolute index, which lists
// every live session, in pages.
func (s *Redis) Load(ctx context.Context, zone string, fn func(idletrack.Session), alias func(Alias)) (err error) {
	defer s.wrap("load", &err)
	if err := s.check(); err != nil {
		return err
	}
	b := s.base(zone)
	const page = 1000
	for off := int64(0); ; off += page {
		ids, err := s.c.ZRange(ctx, b+"abs", off, off+page-1).Result()
		if err != nil {
			return err
		}
		p := s.c.Pipeline()
		cmds := make([]*redis.SliceCmd, len(ids))
		for i, h := range ids {
			cmds[i] = p.HMGet(ctx, b+"s:"+h, sessionFields...)
		}
		if len(ids) > 0 {
			if _, err := p.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
				return err
			}
		}
		for i, h := range ids {
			id, err := parseID(h)
			if err != nil {
				return err
			}
			sess, _, ok, err := decodeSession(id, cmds[i].Val())
			if err != nil {
				return err
			}
			if ok {
				fn(sess)
			}
		}
		if len(ids) < page {
			break
		}
	}
	ids, err := s.c.ZRange(ctx, b+"aliases", 0, -1).Result()
	if err != nil || len(ids) == 0 {
		return err
	}
	p := s.c.Pipeline()
	cmds := make([]*redis.StringCmd, len(ids))
	for i, h := range ids {
		cmds[i] = p.Get(ctx, b+"a:"+h)
	}
	if _, err := p.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return err
	}
	for i, h := range ids {
		v, err := cmds[i].Result()
		if errors.Is(err, redis.Nil) {
			continue // forgotten; the index entry goes at the next rotation
		}
		id, err := parseID(h)
		if err != nil {
			return err
		}
		a, err := decodeAliasValue(id, v)
		if err != nil {
			return err
		}
		alias(a)
	}
	return nil
}

// Lookup implements Store: one round trip for session, alias and tombstone.
func (s *Redis) Lookup(ctx context.Context, zone string, id idletrack.ID) (_ Record, err error) {
	defer s.wrap("lookup", &err)
	if err := s.check(); err != nil {
		return Record{}, err
	}
	b, h := s.base(zone), hexID(id)
	p := s.c.Pipeline()
	sc := p.HMGet(ctx, b+"s:"+h, sessionFields...)
	ac := p.Get(ctx, b+"a:"+h)
	tc := p.Get(ctx, b+"t:"+h)
	if _, err := p.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return Record{}, err
	}
	if sess, _, ok, err := decodeSession(id, sc.Val()); err != nil || ok {
		return Record{Kind: KindSession, Session: sess}, err
	}
	if v, err := ac.Result(); err == nil {
		a, err := decodeAliasValue(id, v)
		return Record{Kind: KindAlias, Alias: a}, err
	}
	if v, err := tc.Result(); err == nil {
		until, reason, err := decodeTombstone(v)
		return Record{Kind: KindTombstone, Until: until, Reason: reason}, err
	}
	return Record{}, nil
}

// Expiring implements Store with ZRANGEBYSCORE ... LIMIT on the idle index,
// then on the absolute index.
func (s *Redis) Expiring(ctx context.Context, zone string, idleCutoff, absCutoff int64, limit int) (_ []idletrack.ID, err error) {
	defer s.wrap("expiring", &err)
	if err := s.check(); err != nil {
		return nil, err
	}
	b := s.base(zone)
	var out []idletrack.ID
	walk := func(key string, cutoff int64) error {
		ids, err := s.c.ZRangeByScore(ctx, key, &redis.ZRangeBy{Min: "-inf", Max: itoa(cutoff), Count: int64(limit - len(out))}).Result()
		if err != nil {
			return err
		}
		for _, h := range ids {
			id, err := parseID(h)
			if err != nil {
				return err
			}
			out = append(out, id)
		}
		return nil
	}
	if limit <= 0 {
		return nil, nil
	}
	if err := walk(b+"idle", idleCutoff); err != nil {
		return nil, err
	}
	if absCutoff > 0 && len(out) < limit {
		if err := walk(b+"abs", absCutoff); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Purge implements Store. Tombstones and aliases expire by key TTL and
// stale entries of a zone's alias list are dropped by the next rotation, so
// there is nothing to delete: Purge returns 0.
func (s *Redis) Purge(context.Context, int64) (int, error) { return 0, s.check() }

var _ Store = (*Redis)(nil)
