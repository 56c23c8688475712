package idletrack

import (
	"fmt"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// Benchmarks of the request path (ID derivation, the activity touch, the
// refusal decision), the flush (Collect), the sweep (Expired) and the memory
// of a tracked session. Run with
//
//	go test -run '^$' -bench . -benchmem ./idletrack
//
// The figures are published in BENCHMARKS.md.

// benchCookie is a cookie value of a typical length (Django's sessionid is
// 32 characters, PHPSESSID 26-32, Laravel's encrypted cookie ~300).
func benchCookie(i int) string { return fmt.Sprintf("k%031d", i) }

func benchIDs(k *Keyer, n int) []ID {
	ids := make([]ID, n)
	for i := range ids {
		ids[i] = k.ID("sessionid", benchCookie(i))
	}
	return ids
}

// loaded returns a tracker holding n established sessions, all active at now.
func loaded(n int, now int64) (*Tracker, []ID) {
	p := DefaultPolicy()
	p.MaxSessions = max(n, p.MaxSessions)
	t := NewTracker("sessionid", p)
	ids := benchIDs(NewKeyer([]byte("0123456789abcdef0123456789abcdef")), n)
	for _, id := range ids {
		t.Load(Session{ID: id, User: "42", StartedAt: now, LastActivity: now, Requests: 1})
	}
	return t, ids
}

func BenchmarkKeyerID(b *testing.B) {
	k := NewKeyer([]byte("0123456789abcdef0123456789abcdef"))
	for _, size := range []int{32, 300} {
		v := fmt.Sprintf("%0*d", size, 7)
		b.Run(fmt.Sprintf("cookie=%dB", size), func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					_ = k.ID("sessionid", v)
				}
			})
		})
	}
}

// BenchmarkTrackerRequest is the decision for a known, active session that
// counts as activity: one shard lock, no allocation.
func BenchmarkTrackerRequest(b *testing.B) {
	now := time.Now().UnixNano()
	for _, n := range []int{10_000, 1_000_000} {
		t, ids := loaded(n, now)
		t.Collect(nil)
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			var seq atomic.Uint64
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := int(seq.Add(7919)) // spread the goroutines over the IDs
				for pb.Next() {
					i++
					if i >= len(ids) {
						i = 0
					}
					if v := t.Request(ids[i], now, true); v.Status != StatusActive {
						b.Fatalf("status %v", v.Status)
					}
				}
			})
		})
		// Each round of activity marks the sessions dirty once; drain so
		// the dirty lists do not count against the next run.
		t.Collect(nil)
	}
}

// BenchmarkTrackerRefuse is the decision for a replayed cookie of an ended
// session, answered from the tombstone cache.
func BenchmarkTrackerRefuse(b *testing.B) {
	now := time.Now().UnixNano()
	t, ids := loaded(1000, now)
	for _, id := range ids {
		t.End(id, ReasonLogout, now)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if v := t.Request(ids[i%len(ids)], now, true); v.Status != StatusEnded {
			b.Fatalf("status %v", v.Status)
		}
	}
}

// BenchmarkTrackerCollect is the in-memory half of the flush: 10k sessions
// active since the last flush, among 1M tracked. Its cost follows the
// sessions that changed, not the sessions tracked.
func BenchmarkTrackerCollect(b *testing.B) {
	now := time.Now().UnixNano()
	for _, n := range []int{10_000, 1_000_000} {
		t, ids := loaded(n, now)
		t.Collect(nil)
		b.Run(fmt.Sprintf("sessions=%d/changed=10000", n), func(b *testing.B) {
			buf := make([]Change, 0, 10_000)
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				for j := range 10_000 {
					t.Request(ids[(i*10_000+j)%len(ids)], now+int64(i), true)
				}
				b.StartTimer()
				buf = t.Collect(buf[:0])
				if len(buf) != 10_000 {
					b.Fatalf("collected %d", len(buf))
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*10_000), "ns/session")
		})
	}
}

// BenchmarkTrackerExpired is the in-memory half of the sweep: ending 10k
// sessions whose deadline passed, among n tracked. ns/ended must not grow
// with n (the deadline heap costs O(log n) per pop).
func BenchmarkTrackerExpired(b *testing.B) {
	const due = 10_000
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprintf("sessions=%d/expired=%d", n, due), func(b *testing.B) {
			base := time.Now().UnixNano()
			p := DefaultPolicy()
			p.MaxSessions = 2 * n
			t := NewTracker("sessionid", p)
			k := NewKeyer([]byte("0123456789abcdef0123456789abcdef"))
			// n-due sessions that stay active, due that expire per round.
			for i := range n - due {
				t.Load(Session{ID: k.ID("sessionid", benchCookie(i)), StartedAt: base + int64(time.Hour), LastActivity: base + int64(time.Hour)})
			}
			fresh := benchIDs(k, n+due*(b.N+1))[n:]
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				for _, id := range fresh[i*due : (i+1)*due] {
					t.Load(Session{ID: id, User: "42", StartedAt: base, LastActivity: base})
				}
				b.StartTimer()
				ends := t.Expired(base+int64(p.Idle), due+1)
				if len(ends) != due {
					b.Fatalf("ended %d, want %d", len(ends), due)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*due), "ns/ended")
		})
	}
}

// BenchmarkTrackerMemory measures the memory held per tracked session:
// the Go heap (runtime.ReadMemStats: HeapAlloc after a GC, before and after
// loading) plus what the tracker maps off the heap (OffHeapBytes: mapped,
// whether touched or not, so small trackers show their first chunks).
// Each session has a user, as signed-in sessions do, and has been through
// one activity flush.
func BenchmarkTrackerMemory(b *testing.B) {
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			ids := benchIDs(NewKeyer([]byte("0123456789abcdef0123456789abcdef")), n)
			p := DefaultPolicy()
			p.MaxSessions = n
			var perSession float64
			for i := 0; i < b.N; i++ {
				before := heapInUse()
				t := NewTracker("sessionid", p)
				now := time.Now().UnixNano()
				for j, id := range ids {
					// A fresh user string per session, as a response header gives.
					user := strconv.Itoa(j % 100_000)
					t.Load(Session{ID: id, User: user, StartedAt: now, LastActivity: now, Requests: 1})
					t.Request(id, now+1, true) // one round of activity, then a flush
				}
				t.Collect(nil)
				after := heapInUse()
				perSession = float64(after-before) / float64(n)
				runtime.KeepAlive(t)
			}
			b.ReportMetric(perSession, "B/session")
		})
	}
}

// heapInUse is the memory trackers hold: the Go heap in use after a
// collection, plus what they hold off the heap (offheap.go).
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc + uint64(OffHeapBytes())
}
