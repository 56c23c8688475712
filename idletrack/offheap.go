package idletrack

import (
	"strconv"
	"sync/atomic"
	"unsafe"
)

// Session state lives outside the Go heap.
//
// A tracked session is a few dozen bytes of plain numbers, and a tracker
// holds up to a million of them. On the Go heap, every byte of that would
// be counted again by the garbage collector's heap goal (GOGC=100 lets the
// heap grow to twice the live data before a collection), so a session would
// cost Caddy's resident memory about twice its size, and each collection
// would have to mark it. The tracker's bulk, pointer-free arrays (session
// entries, the hash index, the deadline heap) are therefore allocated with
// mmap and freed explicitly, as fastcache and similar caches do: resident
// memory per session is its size, and the collector never sees it. Small
// arrays, and platforms without mmap, use ordinary Go memory.
//
// Only pointer-free types may be allocated here: the collector does not
// scan this memory, so a Go pointer stored in it would not keep its target
// alive.

// offHeapMin is the size from which an array is mapped rather than made:
// below it, a page per array would waste more than the collector's overhead.
const offHeapMin = 32 << 10

var offHeapBytes atomic.Int64

// OffHeapBytes returns the bytes that trackers hold outside the Go heap
// (counted in the process's resident memory, not in runtime.MemStats).
func OffHeapBytes() int64 { return offHeapBytes.Load() }

// makeOff returns a zeroed slice of n Ts, off the Go heap when it is large.
// It panics if memory cannot be mapped, as make does when the heap cannot
// grow.
func makeOff[T any](n int) []T {
	if n == 0 {
		return nil
	}
	var zero T
	size := n * int(unsafe.Sizeof(zero))
	if size < offHeapMin {
		return make([]T, n)
	}
	b, err := mapAnon(size)
	if err != nil {
		panic("idletrack: cannot map " + strconv.Itoa(size) + " bytes: " + err.Error())
	}
	offHeapBytes.Add(int64(size))
	return unsafe.Slice((*T)(unsafe.Pointer(unsafe.SliceData(b))), n)
}

// freeOff releases a slice made by makeOff (whole, as returned: its cap is
// its length). Nothing may use s afterwards.
func freeOff[T any](s []T) {
	s = s[:cap(s)]
	var zero T
	size := len(s) * int(unsafe.Sizeof(zero))
	if size < offHeapMin {
		return // the collector's
	}
	if err := unmapAnon(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), size)); err != nil {
		panic("idletrack: cannot unmap: " + err.Error())
	}
	offHeapBytes.Add(-int64(size))
}
