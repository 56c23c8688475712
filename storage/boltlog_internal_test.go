package storage

import (
	"encoding/binary"
	"testing"

	"github.com/idlegate/idlegate/idletrack"
)

// The log stores identities: a change of the function would make every
// entry of a file written before it apply to nothing.
func TestIdentityIsStable(t *testing.T) {
	for _, c := range []struct {
		s    idletrack.Session
		want uint64
	}{
		{idletrack.Session{}, 0x33fe8bd4f9c57863},
		{idletrack.Session{StartedAt: 1795248000000000000, LoginAt: 1795248000000000000, User: "42"}, 0x21bca08a32b76911},
		{idletrack.Session{StartedAt: 1795248000000000000, LoginAt: 1795248060000000000, User: "alice@example.com"}, 0x7ee7fb639d09160d},
	} {
		if got := identity(c.s); got != c.want {
			t.Errorf("identity(%+v) = %#x, want %#x", c.s, got, c.want)
		}
	}
	a := idletrack.Session{StartedAt: 1, LoginAt: 2, User: "ab"}
	for _, b := range []idletrack.Session{
		{StartedAt: 2, LoginAt: 2, User: "ab"}, {StartedAt: 1, LoginAt: 3, User: "ab"},
		{StartedAt: 1, LoginAt: 2, User: "ab\x00"}, {StartedAt: 1, LoginAt: 2, User: "ba"}, {StartedAt: 1, LoginAt: 2},
	} {
		if identity(a) == identity(b) {
			t.Errorf("%+v and %+v have one identity", a, b)
		}
	}
}

// An idlegate from before fold markers reads a marker as a value of two
// resets (of the first and last ID the fold wrote), never as a bad value;
// this one tells a marker from a flush's value of two resets.
func TestMarkIsTwoResetsToAnOlderReader(t *testing.T) {
	lo, hi := idletrack.ID{0x10, 1}, idletrack.ID{0x1f, 2}
	v := appendMark(nil, lo, hi, 77)
	if len(v)%logEntry != 1 || v[0] != logTag {
		t.Fatalf("marker of %d bytes, tag %d: not a value of entries", len(v), v[0])
	}
	for e := v[1:]; len(e) > 0; e = e[logEntry:] {
		if int64(binary.BigEndian.Uint64(e[16:])) != logReset {
			t.Fatalf("marker entry %x is not a reset", e[:logEntry])
		}
	}
	if !isMark(v) || logEntries(v) != 0 {
		t.Fatalf("not read back as a marker")
	}
	if m := decodeMark(80, v); m.lo != lo || m.hi != hi || m.upto != 77 || m.at != 80 {
		t.Fatalf("decoded %+v", m)
	}
	resets := appendLogEntry(appendLogEntry(nil, lo, logReset, 0, 0), hi, logReset, 0, 0)
	if isMark(resets) {
		t.Fatalf("a flush's two resets read as a marker")
	}
	r := replayer{idx: newLogIndex()}
	r.idx.put(lo, logEnt{last: 5, seq: 1})
	r.idx.put(idletrack.ID{0x11}, logEnt{last: 7, seq: 78})
	r.idx.put(idletrack.ID{0x12}, logEnt{last: 8, seq: 2})
	if err := r.value(80, v); err != nil {
		t.Fatal(err)
	}
	r.finish()
	if _, ok := r.idx.get(lo); ok || r.idx.len() != 1 {
		t.Fatalf("after the marker: %v, want only the entry set after 77", r.idx)
	}
	if e, _ := r.idx.get(idletrack.ID{0x11}); e.last != 7 {
		t.Fatalf("after the marker: %v, want only the entry set after 77", r.idx)
	}
}

// A full index folds the range holding most sessions; a long log, the
// range whose activity is oldest (empty ranges hold none).
func TestFoldPicksTheRange(t *testing.T) {
	l := logLimits{foldIndex: 10, foldValues: 5, foldBytes: 1 << 20}
	zl := newZoneLog()
	add := func(p, n int) {
		for i := range n {
			zl.idx.put(idletrack.ID{byte(p << 4), byte(i)}, logEnt{last: 1})
		}
	}
	add(3, 2)
	add(7, 3)
	add(12, 1)
	if _, ok := l.due(zl); ok {
		t.Fatalf("due with 6 sessions and no values")
	}
	zl.clean = [foldParts]uint64{3: 9, 7: 4, 12: 6, 0: 1}
	zl.values = 5
	if p, ok := l.due(zl); !ok || p != 7 {
		t.Fatalf("long log: range %d %v, want 7 (clean to 4; range 0, clean to 1, is empty)", p, ok)
	}
	add(12, 5)
	if p, ok := l.due(zl); !ok || p != 12 {
		t.Fatalf("full index: range %d %v, want 12 (5 sessions)", p, ok)
	}
	zl.idx = newLogIndex()
	if p, ok := l.due(zl); !ok || p != -1 {
		t.Fatalf("long log of no session: range %d %v, want -1", p, ok)
	}
}
