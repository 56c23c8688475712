package idletrack

import (
	"fmt"
	"strconv"
	"sync"
	"testing"
)

// TestKeyerCacheAgreesWithHMAC: whatever the cache holds, ID answers what
// the HMAC computes — for values seen once, again, after being evicted by
// many more values than the cache holds, and in other zones.
func TestKeyerCacheAgreesWithHMAC(t *testing.T) {
	k := NewKeyer([]byte("key"))
	n := 3 * 2 * idCacheSets // three times the slots: evictions everywhere
	for round := range 2 {
		for i := range n {
			v := "value-" + strconv.Itoa(i)
			for _, zone := range []string{"a", "b"} {
				if got, want := k.ID(zone, v), k.sum(zone, "", "", v); got != want {
					t.Fatalf("round %d: ID(%q, %q) = %v from the cache, want %v", round, zone, v, got, want)
				}
			}
		}
	}
	// A zone/value split does not alias: ("a", "\x00b") is not ("a\x00", "b")...
	// both feed the same bytes to the HMAC by design (a zone name never holds
	// a NUL), so the cache must agree with the HMAC on them too.
	if k.ID("z", "v") != k.sum("z", "", "", "v") || k.ID("z", "w") == k.ID("z", "v") {
		t.Fatal("cached IDs of different values agree")
	}
}

// TestKeyerCacheConcurrent: readers racing writers on the same sets never
// see one value's hash with another value's ID (the sequence lock), and
// the race detector sees only atomic accesses.
func TestKeyerCacheConcurrent(t *testing.T) {
	k := NewKeyer([]byte("key"))
	want := make(map[string]ID)
	var vals []string
	for i := range 4096 {
		v := fmt.Sprintf("v%d", i)
		vals = append(vals, v)
		want[v] = k.sum("zone", "", "", v)
	}
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20000 {
				v := vals[(i*7+g*131)%len(vals)]
				if got := k.ID("zone", v); got != want[v] {
					errs <- fmt.Sprintf("ID(%q) = %v, want %v", v, got, want[v])
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
}

// TestKeyerMissDoesNotAllocate: a value the cache does not hold costs the
// HMAC and a cache write, no allocation (TestKeyerDoesNotAllocate covers a
// hit).
func TestKeyerMissDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's instrumentation allocates")
	}
	k := NewKeyer([]byte("key"))
	vals := make([]string, 1100)
	for i := range vals {
		vals[i] = fmt.Sprintf("abcdefabcdefabcdefabcdefabcdefabcdef%04d", i)
	}
	k.ID("zone", "warm-up")
	i := 0
	if n := testing.AllocsPerRun(1000, func() { k.ID("laravel_session", vals[i]); i++ }); n != 0 {
		t.Fatalf("Keyer.ID of a new value allocates %.1f times per call", n)
	}
}

// BenchmarkKeyerCache compares an ID served from the cache (a known
// session's request) with one computed (a value the cache does not hold).
func BenchmarkKeyerCache(b *testing.B) {
	k := NewKeyer([]byte("0123456789abcdef0123456789abcdef"))
	v := "abcdefabcdefabcdefabcdefabcdefabcdefabcd"
	b.Run("hit", func(b *testing.B) {
		b.ReportAllocs()
		k.ID("sessionid", v)
		for b.Loop() {
			_ = k.ID("sessionid", v)
		}
	})
	b.Run("hmac", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = k.sum("sessionid", "", "", v)
		}
	})
}
