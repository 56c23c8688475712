package storage_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/idlegate/idlegate/idletrack"
	"github.com/idlegate/idlegate/internal/redistest"
	"github.com/idlegate/idlegate/storage"
)

// TestRedisFigures measures what the README publishes: Redis memory per
// session and Redis commands per write. Run it with
//
//	IDLEGATE_REDIS_FIGURES=1 go test -run TestRedisFigures -v ./storage/
func TestRedisFigures(t *testing.T) {
	if os.Getenv("IDLEGATE_REDIS_FIGURES") == "" {
		t.Skip("set IDLEGATE_REDIS_FIGURES=1 to measure")
	}
	srv := redistest.Start(t)
	ctx := context.Background()
	c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer c.Close()
	st := openRedis(t, storage.RedisOptions{Addrs: []string{srv.Addr()}})
	const n = 10000
	sess := func(i int, at time.Duration) idletrack.Session {
		return idletrack.Session{ID: rid(i), User: strconv.Itoa(100000 + i), StartedAt: rat(0), LoginAt: rat(0), LastActivity: rat(at), Requests: 1}
	}
	batch := func(from, to int, at time.Duration) *storage.Batch {
		b := &storage.Batch{}
		for i := from; i < to; i++ {
			b.Sessions = append(b.Sessions, storage.SessionWrite{Zone: zone, Change: idletrack.Change{Session: sess(i, at), ReqDelta: 1}})
		}
		return b
	}
	apply(t, st, batch(n, n+1, 0)) // the key and the zone's index keys exist
	before := usedMemory(t, c)
	for i := 0; i < n; i += 1000 {
		apply(t, st, batch(i, i+1000, 0))
	}
	after := usedMemory(t, c)
	t.Logf("INFO memory used_memory: +%d bytes for %d sessions = %.0f bytes per session", after-before, n, float64(after-before)/n)
	id1 := rid(1)
	h := hex.EncodeToString(id1[:])
	key := storage.DefaultRedisPrefix + "{" + zone + "}:s:" + h
	mu, _ := c.MemoryUsage(ctx, key).Result()
	idle, _ := c.MemoryUsage(ctx, storage.DefaultRedisPrefix+"{"+zone+"}:idle", 0).Result()
	abs, _ := c.MemoryUsage(ctx, storage.DefaultRedisPrefix+"{"+zone+"}:abs", 0).Result()
	t.Logf("MEMORY USAGE %s = %d bytes; idle index %d bytes, abs index %d bytes for %d entries (%.0f + %.0f per session)",
		key, mu, idle, abs, n+1, float64(idle)/(n+1), float64(abs)/(n+1))

	measure := func(what string, b *storage.Batch) {
		c.ConfigResetStat(ctx)
		start := time.Now()
		apply(t, st, b)
		took := time.Since(start)
		stats := commandStats(t, c)
		total, calls := 0, []string{}
		for name, s := range stats {
			if name == "hello" {
				continue // the client's connection handshake, not the write
			}
			total += s.calls
			calls = append(calls, fmt.Sprintf("%s=%d", name, s.calls))
		}
		sort.Strings(calls)
		t.Logf("%s: %d commands in Redis (%s), evalsha %d µs in Redis, Apply %v", what, total, strings.Join(calls, " "), stats["evalsha"].usec, took.Round(time.Microsecond))
	}
	for _, k := range []int{1, 100, 1000, n} {
		measure(fmt.Sprintf("Apply of %d activity changes", k), batch(0, k, time.Minute))
	}
	end := func(i int) storage.EndWrite {
		return endOf(sess(i, time.Minute), idletrack.ReasonIdle, rat(31*time.Minute), fmt.Sprint("msg_", i))
	}
	measure("Apply of 1 end (1 event)", &storage.Batch{Ends: []storage.EndWrite{end(0)}})
	b := &storage.Batch{}
	for i := 1; i <= 100; i++ {
		b.Ends = append(b.Ends, end(i))
	}
	measure("Apply of 100 ends (1 event each)", b)
	id1 = rid(1)
	if v, _ := c.Get(ctx, storage.DefaultRedisPrefix+"{"+zone+"}:t:"+hex.EncodeToString(id1[:])).Result(); v != "" {
		mu, _ := c.MemoryUsage(ctx, storage.DefaultRedisPrefix+"{"+zone+"}:t:"+hex.EncodeToString(id1[:])).Result()
		t.Logf("MEMORY USAGE of a tombstone key = %d bytes", mu)
	}
}

func usedMemory(t *testing.T, c *redis.Client) int64 {
	t.Helper()
	info, err := c.Info(context.Background(), "memory").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	t.Fatal("no used_memory in INFO memory")
	return 0
}

type cmdStat struct{ calls, usec int }

// commandStats parses INFO commandstats, leaving out the measuring's own
// commands (INFO, CONFIG).
func commandStats(t *testing.T, c *redis.Client) map[string]cmdStat {
	t.Helper()
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]cmdStat{}
	for _, line := range strings.Split(info, "\r\n") {
		name, rest, ok := strings.Cut(strings.TrimPrefix(line, "cmdstat_"), ":")
		if !ok || !strings.HasPrefix(line, "cmdstat_") || name == "info" || strings.HasPrefix(name, "config") {
			continue
		}
		var s cmdStat
		for _, f := range strings.Split(rest, ",") {
			k, v, _ := strings.Cut(f, "=")
			switch k {
			case "calls":
				s.calls, _ = strconv.Atoi(v)
			case "usec":
				s.usec, _ = strconv.Atoi(v)
			}
		}
		out[name] = s
	}
	return out
}
