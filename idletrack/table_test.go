package idletrack

import (
	"math/rand/v2"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// TestTableModel drives a table with random inserts, removals and lookups
// against a map, over IDs that share long probe runs, through growth.
func TestTableModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	tb := new(table)
	defer tb.release()
	model := map[ID]entry{}
	users := map[ID]string{}
	idOf := func(k int) ID {
		var id ID
		id[0], id[1] = byte(k), byte(k>>8) // few bits: many IDs collide in the index
		return id
	}
	for step := range 200_000 {
		id := idOf(rng.IntN(5000))
		switch op := rng.IntN(10); {
		case op < 5:
			if _, ok := model[id]; ok {
				continue
			}
			e := entry{ID: id, LastActivity: int64(step), Requests: uint32(step)}
			u := string(rune('a' + step%26))
			tb.insert(e, u)
			model[id], users[id] = e, u
		case op < 8:
			_, want := model[id]
			if got := tb.remove(id); got != want {
				t.Fatalf("step %d: remove = %v, want %v", step, got, want)
			}
			delete(model, id)
			delete(users, id)
		default:
			slot, ok := tb.find(id)
			want, inModel := model[id]
			if ok != inModel {
				t.Fatalf("step %d: find = %v, want %v", step, ok, inModel)
			}
			if ok && (tb.at(slot).LastActivity != want.LastActivity || tb.user(slot) != users[id]) {
				t.Fatalf("step %d: entry %+v %q, want %+v %q", step, *tb.at(slot), tb.user(slot), want, users[id])
			}
		}
		if tb.len() != len(model) {
			t.Fatalf("step %d: len %d, want %d", step, tb.len(), len(model))
		}
	}
	seen := 0
	tb.each(func(slot uint32, e *entry) bool {
		if want, ok := model[e.ID]; !ok || want.Requests != e.Requests {
			t.Fatalf("each: unexpected %+v", *e)
		}
		seen++
		return true
	})
	if seen != len(model) {
		t.Fatalf("each saw %d, want %d", seen, len(model))
	}
	for id := range model {
		if _, ok := tb.find(id); !ok {
			t.Fatalf("lost %x", id[:2])
		}
	}
}

// settledOffHeap collects garbage until OffHeapBytes stops changing.
func settledOffHeap() int64 {
	prev := int64(-1)
	for range 50 {
		runtime.GC()
		time.Sleep(5 * time.Millisecond)
		if cur := int64(OffHeapBytes()); cur == prev {
			return cur
		} else {
			prev = cur
		}
	}
	return prev
}

// TestTrackerReleasesOffHeap checks that a tracker's off-heap memory goes
// when the tracker does.
func TestTrackerReleasesOffHeap(t *testing.T) {
	// Trackers of earlier tests are released by finalizers, which may run
	// during this one and move the baseline: let them run first.
	base := settledOffHeap()
	func() {
		tr := NewTracker("z", DefaultPolicy())
		k := NewKeyer([]byte("k"))
		for i := range 50_000 {
			tr.Load(Session{ID: k.ID("z", strconv.Itoa(i)), StartedAt: 1, LastActivity: 1})
		}
		if got := int64(OffHeapBytes()) - base; got < 50_000*56 {
			t.Fatalf("off-heap bytes %d for 50000 sessions, want at least %d", got, 50_000*56)
		}
		runtime.KeepAlive(tr)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for int64(OffHeapBytes()) > base {
		if time.Now().After(deadline) {
			t.Fatalf("off-heap bytes %d after the tracker went, want %d", OffHeapBytes(), base)
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
}
