package storage_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/idlegate/idlegate/idletrack"
	"github.com/idlegate/idlegate/internal/redistest"
	"github.com/idlegate/idlegate/storage"
)

// The packed activity-only writes (op A) leave Redis exactly as one op S
// per write did: the same batches, applied to one store that packs and to
// one that does not, give the same keys, fields and index scores. The
// batches cover a session missing from the store, one another instance
// signed in meanwhile (its user and login stay), one whose stored activity
// is newer, ended and rotated sessions (the writes are dropped), the same
// ID twice in one batch, runs of op A between op S writes, several zones
// and more writes than one script carries.
func TestRedisPackedActivityMatchesSessionWrites(t *testing.T) {
	srv := redistest.Start(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer c.Close()
	packed := openRedis(t, storage.RedisOptions{Addrs: []string{srv.Addr()}, Prefix: "packed:"})
	plain := openRedis(t, storage.RedisOptions{Addrs: []string{srv.Addr()}, Prefix: "plain:"})
	storage.SetRedisPacking(plain, false)

	zones := []string{zone, "", "a{b}c"}
	sess := func(n int, user string, la time.Duration, rq uint32) idletrack.Session {
		s := idletrack.Session{ID: rid(n), User: user, StartedAt: rat(0), LastActivity: rat(la), Requests: rq}
		if user != "" {
			s.LoginAt = rat(0)
		}
		return s
	}
	act := func(z string, s idletrack.Session, delta uint32) storage.SessionWrite {
		return storage.SessionWrite{Zone: z, Change: idletrack.Change{Session: s, ReqDelta: delta}, ActivityOnly: true}
	}
	full := func(z string, s idletrack.Session, delta uint32) storage.SessionWrite {
		return storage.SessionWrite{Zone: z, Change: idletrack.Change{Session: s, ReqDelta: delta}}
	}
	var steps []*storage.Batch
	seed := &storage.Batch{}
	for _, z := range zones {
		for n := 1; n <= 5; n++ {
			seed.Sessions = append(seed.Sessions, full(z, sess(n, "42", time.Minute, 2), 2))
		}
	}
	steps = append(steps, seed)
	// Another instance: session 2 signs in as 77, 3 ends, 4 is rotated.
	other := &storage.Batch{Sessions: []storage.SessionWrite{full(zone, idletrack.Session{ID: rid(2), User: "77", StartedAt: rat(0), LoginAt: rat(90 * time.Second), LastActivity: rat(90 * time.Second), Requests: 3}, 1)}}
	other.Ends = append(other.Ends, endOf(sess(3, "42", time.Minute, 2), idletrack.ReasonIdle, rat(40*time.Minute), "msg_3"))
	other.Rotations = append(other.Rotations, storage.RotationWrite{Zone: zone, Rotation: idletrack.Rotation{Old: rid(4), Session: sess(104, "42", time.Minute, 2), GraceUntil: rat(2 * time.Minute), ForgetAt: rat(time.Hour)}})
	steps = append(steps, other)
	// This instance's flush, with stale copies.
	flush := &storage.Batch{}
	for _, z := range zones {
		flush.Sessions = append(flush.Sessions,
			act(z, sess(1, "42", 2*time.Minute, 5), 3),
			act(z, sess(2, "42", 2*time.Minute, 4), 2),
			act(z, sess(3, "42", 2*time.Minute, 4), 2),
			act(z, sess(4, "42", 2*time.Minute, 4), 2),
			act(z, sess(5, "42", 30*time.Second, 2), 0), // older than stored
			act(z, sess(6, "9", 2*time.Minute, 3), 3),   // missing
			act(z, sess(7, "", 2*time.Minute, 1), 1),    // missing, anonymous
			full(z, sess(8, "8", time.Minute, 1), 1),    // op S between runs of op A
			act(z, sess(8, "8", 3*time.Minute, 2), 1),   // twice in one batch
			act(z, sess(1, "42", 3*time.Minute, 6), 1),
		)
	}
	for n := 1000; n < 2200; n++ { // three scripts
		s := sess(n, fmt.Sprint(n), time.Duration(n)*time.Millisecond, uint32(n%7))
		if n%3 == 0 {
			flush.Sessions = append(flush.Sessions, full(zone, s, 1))
		} else {
			flush.Sessions = append(flush.Sessions, act(zone, s, uint32(n%5)))
		}
	}
	steps = append(steps, flush)
	// A second flush on what the first wrote.
	again := &storage.Batch{}
	for n := 1000; n < 1600; n++ {
		again.Sessions = append(again.Sessions, act(zone, sess(n, "x", time.Duration(n)*time.Microsecond, 9), 1))
	}
	steps = append(steps, again)

	for i, b := range steps {
		apply(t, packed, b)
		apply(t, plain, b)
		if got, want := dumpRedis(t, c, "packed:"), dumpRedis(t, c, "plain:"); !reflect.DeepEqual(got, want) {
			for k, v := range want {
				if !reflect.DeepEqual(got[k], v) {
					t.Errorf("step %d: %s: packed %q, one write each %q", i, k, got[k], v)
				}
			}
			for k, v := range got {
				if _, ok := want[k]; !ok {
					t.Errorf("step %d: %s: packed %q, one write each: missing", i, k, v)
				}
			}
			t.FailNow()
		}
	}

	ctx := context.Background()
	check := func(n int, kind storage.Kind, user string, la time.Duration, rq uint32) {
		t.Helper()
		r, err := packed.Lookup(ctx, zone, rid(n))
		if err != nil {
			t.Fatal(err)
		}
		if r.Kind != kind {
			t.Fatalf("session %d: kind %v, want %v", n, r.Kind, kind)
		}
		if kind == storage.KindSession && (r.Session.User != user || r.Session.LastActivity != rat(la) || r.Session.Requests != rq) {
			t.Fatalf("session %d: %+v, want user %q, activity %v, %d requests", n, r.Session, user, la, rq)
		}
	}
	check(1, storage.KindSession, "42", 3*time.Minute, 6)
	check(2, storage.KindSession, "77", 2*time.Minute, 5)
	check(3, storage.KindTombstone, "", 0, 0)
	check(4, storage.KindAlias, "", 0, 0)
	check(5, storage.KindSession, "42", time.Minute, 2)
	check(6, storage.KindSession, "9", 2*time.Minute, 3)
	check(7, storage.KindSession, "", 2*time.Minute, 1)
	check(8, storage.KindSession, "8", 3*time.Minute, 2)
}

// dumpRedis reads every key under prefix but the HMAC key: hashes, sorted
// sets with scores and strings (without their TTL), named without prefix.
func dumpRedis(t *testing.T, c *redis.Client, prefix string) map[string]string {
	t.Helper()
	ctx := context.Background()
	keys, err := c.Keys(ctx, prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, k := range keys {
		name := strings.TrimPrefix(k, prefix)
		if name == "key" {
			continue
		}
		var v any
		switch typ := c.Type(ctx, k).Val(); typ {
		case "hash":
			v, err = c.HGetAll(ctx, k).Result()
		case "zset":
			v, err = c.ZRangeWithScores(ctx, k, 0, -1).Result()
		case "string":
			v, err = c.Get(ctx, k).Result()
		case "set":
			v, err = c.SMembers(ctx, k).Result()
		default:
			t.Fatalf("%s: type %s", k, typ)
		}
		if err != nil {
			t.Fatal(err)
		}
		out[name] = fmt.Sprint(v)
	}
	return out
}

// A malformed op A argument fails the script before it writes anything,
// also what came before it, and Redis keeps serving.
func TestRedisPackedActivityMalformed(t *testing.T) {
	srv := redistest.Start(t)
	st := openRedis(t, storage.RedisOptions{Addrs: []string{srv.Addr()}, Prefix: uniquePrefix()})
	ctx := context.Background()
	w := func(n int, user string) storage.SessionWrite {
		return storage.SessionWrite{Zone: zone, Change: idletrack.Change{Session: idletrack.Session{ID: rid(n), User: user, StartedAt: rat(0), LoginAt: rat(0), LastActivity: rat(time.Minute), Requests: 1}, ReqDelta: 1}, ActivityOnly: true}
	}
	good := storage.RedisActEntry(w(1, "42"))
	two := append(storage.RedisActEntry(w(2, "43")), good...)
	bad := [][]byte{
		good[:len(good)-1],                     // user cut short
		good[:31],                              // ID cut short
		good[:40],                              // in a number
		append(append([]byte(nil), two...), 0), // a trailing byte
		append(append([]byte(nil), good...), good[:50]...),
		append(append([]byte(nil), good[:32]...), 0xff, '1'), // length past the end
		{0xff, 0xff, 0xff, 0xff},
	}
	// A user length of 4 GiB - 1 at the end of an otherwise good entry.
	huge := append([]byte(nil), good[:len(good)-2-4]...)
	huge = append(huge, 0xff, 0xff, 0xff, 0xff)
	bad = append(bad, huge)
	rng := rand.New(rand.NewPCG(3, 4))
	for range 200 {
		b := make([]byte, 1+rng.IntN(200))
		for i := range b {
			b[i] = byte(rng.UintN(256))
		}
		bad = append(bad, b)
	}
	var id9 idletrack.ID
	id9[15] = 9
	hex9 := hex.EncodeToString(id9[:])
	for i, p := range bad {
		// A session write and a good op A first: neither may be written.
		err := storage.RunRedisApply(st, zone, "S", hex9, rat(0), 0, rat(0), 1, 1, "", "0", "A", good, "A", p)
		if i < 8 && err == nil {
			t.Fatalf("malformed argument %d (%q) accepted", i, p)
		}
		if err != nil {
			for _, n := range []int{1, 9} {
				id := rid(n)
				if n == 9 {
					id = id9
				}
				if r, err := st.Lookup(ctx, zone, id); err != nil || r.Kind != storage.KindNone {
					t.Fatalf("argument %d: session %d written by a failed script: %+v, %v", i, n, r, err)
				}
			}
		}
	}
	// Redis serves on, and a good argument (also an empty one) works.
	if err := storage.RunRedisApply(st, zone, "A", []byte{}, "A", two); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 2} {
		if r, err := st.Lookup(ctx, zone, rid(n)); err != nil || r.Kind != storage.KindSession || r.Session.LastActivity != rat(time.Minute) {
			t.Fatalf("session %d: %+v, %v", n, r, err)
		}
	}
}
