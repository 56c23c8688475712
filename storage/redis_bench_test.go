package storage_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/idlegate/idlegate/idletrack"
	"github.com/idlegate/idlegate/internal/redistest"
	"github.com/idlegate/idlegate/storage"
)

// BenchmarkRedisFlushDirty is the engine's 1 s flush as the Redis store
// sees it: activity-only writes of dirty sessions, each a different one of
// 10k stored sessions in a random order. Besides the wall time it reports,
// per dirty session, the CPU time of this process (user+system: the Go
// side only, redis-server is another process) and what the flush
// allocates. Run it on one core:
//
//	go test -run '^$' -bench RedisFlushDirty -cpu 1 ./storage
//
// and for a CPU profile of the Go side add -cpuprofile /tmp/redisflush.pprof.
func BenchmarkRedisFlushDirty(b *testing.B) {
	srv := redistest.Start(b)
	st, err := storage.OpenRedis(storage.RedisOptions{Addrs: []string{srv.Addr()}})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	const n = 10_000
	at := time.Now().UnixNano()
	k := idletrack.NewKeyer(st.Key())
	ids := make([]idletrack.ID, n)
	users := make([]string, n)
	var w storage.Batch
	for i := range n {
		ids[i] = k.ID(redisBenchZone, fmt.Sprintf("k%031d", i))
		users[i] = strconv.Itoa(i%100_000 + 1)
		s := idletrack.Session{ID: ids[i], User: users[i], StartedAt: at, LoginAt: at, LastActivity: at, Requests: 1}
		w.Sessions = append(w.Sessions, storage.SessionWrite{Zone: redisBenchZone, Change: idletrack.Change{Session: s, ReqDelta: 1}})
	}
	if _, err := st.Apply(context.Background(), &w); err != nil {
		b.Fatal(err)
	}
	for _, dirty := range []int{300, 3000} {
		b.Run(fmt.Sprintf("sessions=%d/dirty=%d", n, dirty), func(b *testing.B) {
			order := newDirtyOrder(ids, users, rand.New(rand.NewPCG(1, 2)).Perm(n))
			next := 0
			flush := func() {
				w.Reset()
				next = appendDirty(&w, redisBenchZone, order, next, dirty, at)
				if _, err := st.Apply(context.Background(), &w); err != nil {
					b.Fatal(err)
				}
			}
			flush() // buffers grown, script loaded
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			cpu0 := cpuTime()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				flush()
			}
			b.StopTimer()
			cpu := cpuTime() - cpu0
			runtime.ReadMemStats(&m1)
			per := float64(b.N * dirty)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/per, "ns/session")
			b.ReportMetric(float64(cpu.Nanoseconds())/per, "cpu-ns/session")
			b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/per, "allocs/session")
			b.ReportMetric(float64(m1.TotalAlloc-m0.TotalAlloc)/per, "B/session")
			b.ReportMetric(0, "ns/op")
		})
	}
}

const redisBenchZone = "sessionid"
