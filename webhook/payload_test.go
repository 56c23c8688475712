package webhook

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/idlegate/idlegate/idletrack"
)

func at(s string) int64 {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UnixNano()
}

func testID() idletrack.ID {
	var id idletrack.ID
	hex.Decode(id[:], []byte("5f2c9a1e7b3d4c60aabbccddeeff0011"))
	return id
}

// designEnded is the session.ended body of docs/design.md, verbatim.
const designEnded = `{
  "type": "session.ended",
  "timestamp": "2026-11-21T09:30:00Z",
  "data": {
    "session": "5f2c9a1e7b3d4c60",
    "zone": "laravel_session",
    "user": "42",
    "reason": "idle",
    "started_at": "2026-11-21T08:00:00Z",
    "last_activity_at": "2026-11-21T09:00:00Z",
    "ended_at": "2026-11-21T09:30:00Z",
    "duration_seconds": 3600,
    "requests": 118
  }
}`

func compact(t *testing.T, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(s)); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestEndedEventGolden: the body is docs/design.md's example byte for byte
// (after compaction), so field names, order and formats all match. The
// session started anonymously at 07:45 and logged in at 08:00: started_at
// and duration_seconds count from the login.
func TestEndedEventGolden(t *testing.T) {
	now := time.Date(2026, 11, 21, 9, 30, 2, 0, time.UTC)
	e := idletrack.End{
		Session: idletrack.Session{
			ID:           testID(),
			User:         "42",
			StartedAt:    at("2026-11-21T07:45:00.5Z"),
			LoginAt:      at("2026-11-21T08:00:00.25Z"),
			LastActivity: at("2026-11-21T09:00:00.75Z"),
			Requests:     118,
		},
		Zone:    "laravel_session",
		Reason:  idletrack.ReasonIdle,
		EndedAt: at("2026-11-21T09:30:00.75Z"),
	}
	ev := EndedEvent(e, now)
	if want := compact(t, designEnded); !bytes.Equal(ev.Body, want) {
		t.Fatalf("body\n got %s\nwant %s", ev.Body, want)
	}
	if ev.Type != "session.ended" || ev.Zone != "laravel_session" || ev.At != e.EndedAt ||
		ev.NextAt != now.UnixNano() || ev.Attempts != 0 || ev.LastError != "" {
		t.Fatalf("event = %+v", ev)
	}
	checkMessageID(t, ev.ID, now)
}

func TestEndedEventAnonymous(t *testing.T) {
	e := idletrack.End{
		Session: idletrack.Session{
			ID:           testID(),
			StartedAt:    at("2026-11-21T08:00:00Z"),
			LastActivity: at("2026-11-21T08:10:30Z"),
			Requests:     3,
		},
		Zone:    "sessionid",
		Reason:  idletrack.ReasonRevoked,
		EndedAt: at("2026-11-21T08:12:00Z"),
	}
	ev := EndedEvent(e, time.Now())
	want := `{"type":"session.ended","timestamp":"2026-11-21T08:12:00Z","data":{"session":"5f2c9a1e7b3d4c60","zone":"sessionid","user":null,"reason":"revoked","started_at":"2026-11-21T08:00:00Z","last_activity_at":"2026-11-21T08:10:30Z","ended_at":"2026-11-21T08:12:00Z","duration_seconds":630,"requests":3}}`
	if string(ev.Body) != want {
		t.Fatalf("body\n got %s\nwant %s", ev.Body, want)
	}
}

func TestStartedEvent(t *testing.T) {
	s := idletrack.Session{
		ID:           testID(),
		User:         `o"brien <x>`,
		StartedAt:    at("2026-11-21T07:45:00Z"),
		LoginAt:      at("2026-11-21T08:00:00Z"),
		LastActivity: at("2026-11-21T08:00:00Z"),
		Requests:     4,
	}
	now := time.Date(2026, 11, 21, 8, 0, 1, 0, time.UTC)
	ev := StartedEvent("laravel_session", s, now)
	var got map[string]any
	if err := json.Unmarshal(ev.Body, &got); err != nil {
		t.Fatal(err)
	}
	want := compact(t, `{
	  "type": "session.started",
	  "timestamp": "2026-11-21T08:00:00Z",
	  "data": {
	    "session": "5f2c9a1e7b3d4c60",
	    "zone": "laravel_session",
	    "user": "o\"brien \u003cx\u003e",
	    "started_at": "2026-11-21T08:00:00Z",
	    "last_activity_at": "2026-11-21T08:00:00Z",
	    "requests": 4
	  }
	}`)
	if !bytes.Equal(ev.Body, want) {
		t.Fatalf("body\n got %s\nwant %s", ev.Body, want)
	}
	if ev.Type != "session.started" || ev.At != s.LoginAt || ev.NextAt != now.UnixNano() {
		t.Fatalf("event = %+v", ev)
	}
	checkMessageID(t, ev.ID, now)
}

func checkMessageID(t *testing.T, id string, now time.Time) {
	t.Helper()
	rest, ok := strings.CutPrefix(id, "msg_")
	if !ok || len(rest) != 26 {
		t.Fatalf("id %q: want msg_ and 26 characters", id)
	}
	for _, c := range rest {
		if !strings.ContainsRune(crockford, c) {
			t.Fatalf("id %q: %q is not Crockford base32", id, c)
		}
	}
	// The first 10 characters are the milliseconds, as in every ULID.
	var ms uint64
	for _, c := range rest[:10] {
		ms = ms<<5 | uint64(strings.IndexRune(crockford, c))
	}
	if int64(ms) != now.UnixMilli() {
		t.Fatalf("id %q encodes %d ms, want %d", id, ms, now.UnixMilli())
	}
}

func TestMessageIDsUniqueAndOrdered(t *testing.T) {
	seen := map[string]bool{}
	base := time.Now()
	prev := ""
	for i := range 1000 {
		id := NewMessageID(base.Add(time.Duration(i) * time.Millisecond))
		if seen[id] {
			t.Fatalf("duplicate id %q", id)
		}
		seen[id] = true
		if id <= prev {
			t.Fatalf("id %q does not sort after %q", id, prev)
		}
		prev = id
	}
}

func BenchmarkEndedEvent(b *testing.B) {
	e := idletrack.End{
		Session: idletrack.Session{ID: testID(), User: "42", StartedAt: 1, LoginAt: 2, LastActivity: 3, Requests: 118},
		Zone:    "laravel_session", Reason: idletrack.ReasonIdle, EndedAt: 4,
	}
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		EndedEvent(e, now)
	}
}
