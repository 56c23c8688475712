package storage_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/idlegate/idlegate/idletrack"
	"github.com/idlegate/idlegate/storage"
)

// Benchmarks of the bbolt store's side of the flush (activity of 10k
// sessions in one transaction), of ending sessions (the sweep's commit:
// session removed, tombstone and outbox event written) and of Load (the
// start-up). Run with
//
//	go test -run '^$' -bench . -benchmem ./storage
//
// BENCH_SESSIONS (default 100000) sets the sessions in the store; the
// figures in BENCHMARKS.md use 1000000.

func benchSessions() int {
	if n, err := strconv.Atoi(os.Getenv("BENCH_SESSIONS")); err == nil && n > 0 {
		return n
	}
	return 100_000
}

const benchZone = "sessionid"

// seeded opens a store in dir holding n sessions and returns their IDs.
func seeded(n int, at int64, dir string) (*storage.Bolt, []idletrack.ID) {
	st, err := storage.OpenBolt(filepath.Join(dir, "sessions.db"), storage.BoltOptions{})
	if err != nil {
		panic(err)
	}
	k := idletrack.NewKeyer(st.Key())
	ids := make([]idletrack.ID, n)
	const batch = 100_000
	for lo := 0; lo < n; lo += batch {
		var w storage.Batch
		for i := lo; i < min(n, lo+batch); i++ {
			ids[i] = k.ID(benchZone, fmt.Sprintf("k%031d", i))
			s := idletrack.Session{ID: ids[i], User: strconv.Itoa(i%100_000 + 1), StartedAt: at, LoginAt: at, LastActivity: at, Requests: 1}
			w.Sessions = append(w.Sessions, storage.SessionWrite{Zone: benchZone, Change: idletrack.Change{Session: s, ReqDelta: 1}})
		}
		// Ascending keys: bbolt splits nodes only at commit, so random
		// inserts into one large transaction cost O(n²) memmove.
		slices.SortFunc(w.Sessions, func(x, y storage.SessionWrite) int { return bytes.Compare(x.Session.ID[:], y.Session.ID[:]) })
		if _, err := st.Apply(context.Background(), &w); err != nil {
			panic(err)
		}
	}
	return st, ids
}

// BenchmarkBoltFlush is one activity flush: 10k sessions that were active in
// the last second, among the sessions in the store, in one transaction.
//
//   - rewrite: every session's record rewritten (the path before the
//     activity log, forced by an index cap of 0);
//   - log: activity appended to the log, never folded;
//   - log+fold: the log with the default limits, folded in the benchmark's
//     goroutine whenever a fold is due, so ns/session includes the fold's
//     amortised cost.
func BenchmarkBoltFlush(b *testing.B) {
	for _, mode := range []string{"rewrite", "log", "log+fold"} {
		b.Run(mode, func(b *testing.B) { benchFlush(b, mode) })
	}
}

func benchFlush(b *testing.B, mode string) {
	const changed = 10_000
	n := benchSessions()
	at := time.Now().UnixNano()
	st, ids := seeded(n, at, b.TempDir())
	defer st.Close()
	switch mode {
	case "rewrite":
		storage.SetLogLimits(st, 1<<30, 1<<30, 0, false)
	case "log":
		storage.SetLogLimits(st, 1<<30, 1<<30, 1<<30, false)
	case "log+fold":
		storage.SetLogLimits(st, 64<<10, 60, 128<<10, false)
	}
	folds := 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var w storage.Batch
		for j := range changed {
			id := ids[(i*changed+j)%n]
			s := idletrack.Session{ID: id, User: strconv.Itoa((i*changed+j)%n%100_000 + 1), StartedAt: at, LoginAt: at, LastActivity: at + int64(i+1), Requests: uint32(i + 2)}
			w.Sessions = append(w.Sessions, storage.SessionWrite{Zone: benchZone, Change: idletrack.Change{Session: s, ReqDelta: 1}, ActivityOnly: true})
		}
		if _, err := st.Apply(context.Background(), &w); err != nil {
			b.Fatal(err)
		}
		if mode == "log+fold" && storage.FoldDue(st) {
			if err := storage.FoldDueParts(st); err != nil {
				b.Fatal(err)
			}
			folds++
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*changed), "ns/session")
	b.ReportMetric(float64(folds), "folds")
}

// BenchmarkBoltEnd is the sweep's commit: 2,500 idle sessions ended in one
// transaction (what one 250 ms sweep ends at 10k deadlines per second),
// each with its tombstone and session.ended event.
func BenchmarkBoltEnd(b *testing.B) {
	const per = 2_500
	n := benchSessions()
	at := time.Now().UnixNano()
	st, ids := seeded(n+per*b.N, at, b.TempDir())
	defer st.Close()
	p := idletrack.DefaultPolicy()
	cpu0 := cpuTime()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var w storage.Batch
		for _, id := range ids[n+i*per : n+(i+1)*per] {
			end := idletrack.End{Session: idletrack.Session{ID: id, User: "42", StartedAt: at, LoginAt: at, LastActivity: at},
				Zone: benchZone, Reason: idletrack.ReasonIdle, EndedAt: at + int64(p.Idle)}
			w.Ends = append(w.Ends, storage.EndWrite{End: end, Policy: p, TombstoneUntil: end.EndedAt + int64(p.RememberEnded),
				Events: func(e idletrack.End) []storage.Event {
					return []storage.Event{{ID: "msg_" + e.Session.ID.Short(), Zone: e.Zone, Type: "session.ended",
						Body: make([]byte, 330), At: e.EndedAt, NextAt: e.EndedAt}}
				}})
		}
		if _, err := st.Apply(context.Background(), &w); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*per), "ns/end")
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N*per), "cpu-ns/end")
}

// BenchmarkBoltLoad reads every session of the store, as start-up does.
func BenchmarkBoltLoad(b *testing.B) {
	n := benchSessions()
	st, _ := seeded(n, time.Now().UnixNano(), b.TempDir())
	defer st.Close()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		count := 0
		if err := st.Load(context.Background(), benchZone, func(idletrack.Session) { count++ }, func(storage.Alias) {}); err != nil {
			b.Fatal(err)
		}
		if count != n {
			b.Fatalf("loaded %d", count)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/session")
}

// BenchmarkBoltOpen is OpenBolt of a store of BENCH_SESSIONS sessions, the
// other half of the start-up: bbolt maps the file and reads its freelist,
// and the consistency check walks every page.
func BenchmarkBoltOpen(b *testing.B) {
	n := benchSessions()
	dir := b.TempDir()
	st, _ := seeded(n, time.Now().UnixNano(), dir)
	st.Close()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		st, err := storage.OpenBolt(filepath.Join(dir, "sessions.db"), storage.BoltOptions{})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		st.Close()
		b.StartTimer()
	}
	if fi, err := os.Stat(filepath.Join(dir, "sessions.db")); err == nil {
		b.ReportMetric(float64(fi.Size())/float64(n), "file-B/session")
	}
}

// BenchmarkBoltFlushDirty is the engine's 1 s flush as the store sees it:
// dirty sessions, each a different one of the sessions in the store (10k
// and 1M, in a random order), written with the default log limits (the
// background fold runs as it would in Caddy; its cost is in the figures,
// from its steady state).
// It reports wall and CPU time (user+system of the whole process, so the
// fold's goroutine counts) and allocations per dirty session. Run it on one
// core:
//
//	go test -run '^$' -bench BoltFlushDirty -benchmem -cpu 1 ./storage
func BenchmarkBoltFlushDirty(b *testing.B) {
	sizes := []int{10_000, 1_000_000}
	if testing.Short() {
		sizes = sizes[:1]
	}
	cache := b.TempDir()
	for _, n := range sizes {
		for _, dirty := range []int{300, 3000} {
			b.Run(fmt.Sprintf("sessions=%d/dirty=%d", n, dirty), func(b *testing.B) { benchFlushDirty(b, cache, n, dirty) })
		}
	}
}

// seededCopy opens a copy of a store of n seeded sessions, seeded once per
// process (a million take a minute) in cache, and returns their IDs and
// the time they were seeded at.
func seededCopy(b *testing.B, cache string, n int) (*storage.Bolt, []idletrack.ID, int64) {
	src := filepath.Join(cache, fmt.Sprintf("seed-%d.db", n))
	sd, ok := seededIDs[n]
	if !ok {
		sd.at = time.Now().UnixNano()
		st, ids := seeded(n, sd.at, filepath.Join(cache, fmt.Sprint(n)))
		st.Close()
		if err := os.Rename(filepath.Join(cache, fmt.Sprint(n), "sessions.db"), src); err != nil {
			b.Fatal(err)
		}
		sd.ids = ids
		seededIDs[n] = sd
	}
	dir := b.TempDir()
	raw, err := os.ReadFile(src)
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sessions.db"), raw, 0o600); err != nil {
		b.Fatal(err)
	}
	st, err := storage.OpenBolt(filepath.Join(dir, "sessions.db"), storage.BoltOptions{})
	if err != nil {
		b.Fatal(err)
	}
	return st, sd.ids, sd.at
}

var seededIDs = map[int]struct {
	ids []idletrack.ID
	at  int64
}{}

func benchFlushDirty(b *testing.B, cache string, n, dirty int) {
	st, ids, at := seededCopy(b, cache, n)
	defer st.Close()
	users := make([]string, n)
	for i := range users {
		users[i] = strconv.Itoa(i%100_000 + 1)
	}
	order := newDirtyOrder(ids, users, rand.New(rand.NewPCG(1, 2)).Perm(n))
	var w storage.Batch
	next := 0
	flush := func(i int) {
		w.Reset()
		next = appendDirty(&w, benchZone, order, next, dirty, at)
		if _, err := st.Apply(context.Background(), &w); err != nil {
			b.Fatal(err)
		}
	}
	// Untimed, twice the default fold bound in dirty sessions: the
	// timed flushes then meet the folds as they run in the steady state
	// (otherwise the first 256k would meet none).
	for i := range (512 << 10) / dirty {
		flush(i)
	}
	cpu0 := cpuTime()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		flush(i)
	}
	b.StopTimer()
	per := float64(b.N * dirty)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/per, "ns/session")
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/per, "cpu-ns/session")
	b.ReportMetric(0, "ns/op")
}

// dirtyOrder is the order in which a benchmark's flushes dirty sessions:
// their IDs and users laid out in that order, so that building a batch
// reads memory in sequence. Read through a random permutation, the
// harness's own cache misses were ~0.6 µs per dirty session at 1M
// sessions, a tenth of what the benchmark reported for the flush.
type dirtyOrder struct {
	ids   []idletrack.ID
	users []string
}

func newDirtyOrder(ids []idletrack.ID, users []string, perm []int) dirtyOrder {
	o := dirtyOrder{ids: make([]idletrack.ID, len(perm)), users: make([]string, len(perm))}
	for i, k := range perm {
		o.ids[i], o.users[i] = ids[k], users[k]
	}
	return o
}

// appendDirty appends to w the activity-only writes of the flush's dirty
// sessions: the next dirty of o (from next, wrapping), each one more
// request and a later last activity than the flush before, as the engine
// writes them (sessions it loaded from the store: Stored). It returns
// where the next flush goes on.
func appendDirty(w *storage.Batch, zone string, o dirtyOrder, next, dirty int, at int64) int {
	n := len(o.ids)
	for range dirty {
		k := next % n
		next++
		s := idletrack.Session{ID: o.ids[k], User: o.users[k], StartedAt: at, LoginAt: at, LastActivity: at + int64(next), Requests: uint32(2 + next/n)}
		w.Sessions = append(w.Sessions, storage.SessionWrite{Zone: zone, Change: idletrack.Change{Session: s, ReqDelta: 1, Stored: true}, ActivityOnly: true})
	}
	return next
}

// cpuTime is the user and system time the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkBoltLookup is the store's answer for a cookie value that memory
// does not know (the request path's read for a new visitor): an ID the
// store does not hold either.
func BenchmarkBoltLookup(b *testing.B) {
	st, _ := seeded(10_000, time.Now().UnixNano(), b.TempDir())
	defer st.Close()
	k := idletrack.NewKeyer(st.Key())
	ids := make([]idletrack.ID, 1024)
	for i := range ids {
		ids[i] = k.ID(benchZone, fmt.Sprintf("new%d", i))
	}
	b.ReportAllocs()
	b.ResetTimer()
	lookupLoop(b, st, ids)
}

func lookupLoop(b *testing.B, st *storage.Bolt, ids []idletrack.ID) {
	for i := 0; i < b.N; i++ {
		if rec, err := st.Lookup(context.Background(), benchZone, ids[i%len(ids)]); err != nil || rec.Kind != storage.KindNone {
			b.Fatal(rec, err)
		}
	}
}
