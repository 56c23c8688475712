package webhook

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"time"

	"github.com/idlegate/idlegate/idletrack"
	"github.com/idlegate/idlegate/storage"
)

// Event types, the "type" of a payload and of a storage.Event.
const (
	TypeSessionEnded   = "session.ended"
	TypeSessionStarted = "session.started"
)

// endedPayload and startedPayload are the bodies of docs/design.md, field for
// field and in its order. User is a pointer so that an anonymous session
// says "user": null rather than a user whose ID is the empty string.
type endedPayload struct {
	Type      string    `json:"type"`
	Timestamp string    `json:"timestamp"`
	Data      endedData `json:"data"`
}

type endedData struct {
	Session         string  `json:"session"`
	Zone            string  `json:"zone"`
	User            *string `json:"user"`
	Reason          string  `json:"reason"`
	StartedAt       string  `json:"started_at"`
	LastActivityAt  string  `json:"last_activity_at"`
	EndedAt         string  `json:"ended_at"`
	DurationSeconds int64   `json:"duration_seconds"`
	Requests        uint32  `json:"requests"`
}

type startedPayload struct {
	Type      string      `json:"type"`
	Timestamp string      `json:"timestamp"`
	Data      startedData `json:"data"`
}

type startedData struct {
	Session        string  `json:"session"`
	Zone           string  `json:"zone"`
	User           *string `json:"user"`
	StartedAt      string  `json:"started_at"`
	LastActivityAt string  `json:"last_activity_at"`
	Requests       uint32  `json:"requests"`
}

// EndedEvent builds the outbox event of a session end, due for delivery at
// now. The body is the session.ended payload of docs/design.md:
//
//   - "timestamp" and "ended_at" are e.EndedAt (for idle and absolute ends,
//     the deadline rather than the moment the sweeper noticed);
//   - "started_at" is the start of the online time: the login when a user
//     is known, otherwise the start of the session (Session.OnlineSince),
//     so that ended_at − started_at and duration_seconds tell one story;
//   - "duration_seconds" is e.DurationSeconds(): started_at to
//     last_activity_at, in whole seconds;
//   - "user" is null for a session that never had a user;
//   - times are RFC 3339 in UTC with whole seconds.
//
// Event.At is e.EndedAt, from which the lag metric is measured.
func EndedEvent(e idletrack.End, now time.Time) storage.Event {
	s := &e.Session
	ended := rfc3339(e.EndedAt)
	body := mustMarshal(endedPayload{
		Type:      TypeSessionEnded,
		Timestamp: ended,
		Data: endedData{
			Session:         s.ID.Short(),
			Zone:            e.Zone,
			User:            user(s.User),
			Reason:          string(e.Reason),
			StartedAt:       rfc3339(s.OnlineSince()),
			LastActivityAt:  rfc3339(s.LastActivity),
			EndedAt:         ended,
			DurationSeconds: e.DurationSeconds(),
			Requests:        s.Requests,
		},
	})
	return storage.Event{
		ID:     NewMessageID(now),
		Zone:   e.Zone,
		Type:   TypeSessionEnded,
		Body:   body,
		At:     e.EndedAt,
		NextAt: now.UnixNano(),
	}
}

// StartedEvent builds the outbox event of a session start, due for
// delivery at now. The body is the session.started payload: the fields of
// session.ended without reason, ended_at and duration_seconds. Its
// "timestamp" and "started_at" are s.OnlineSince(): the login when the
// session has a user (the usual moment to report a start: the user came
// online), otherwise the first sight of the session. Event.At is the same
// instant.
func StartedEvent(zone string, s idletrack.Session, now time.Time) storage.Event {
	at := s.OnlineSince()
	started := rfc3339(at)
	body := mustMarshal(startedPayload{
		Type:      TypeSessionStarted,
		Timestamp: started,
		Data: startedData{
			Session:        s.ID.Short(),
			Zone:           zone,
			User:           user(s.User),
			StartedAt:      started,
			LastActivityAt: rfc3339(s.LastActivity),
			Requests:       s.Requests,
		},
	})
	return storage.Event{
		ID:     NewMessageID(now),
		Zone:   zone,
		Type:   TypeSessionStarted,
		Body:   body,
		At:     at,
		NextAt: now.UnixNano(),
	}
}

func user(u string) *string {
	if u == "" {
		return nil
	}
	return &u
}

// rfc3339 formats Unix nanoseconds as RFC 3339 in UTC, truncated to whole
// seconds: "2026-11-21T09:30:00Z".
func rfc3339(ns int64) string {
	return time.Unix(0, ns).UTC().Format(time.RFC3339)
}

// mustMarshal encodes a payload. The payload types hold only strings and
// integers, which always encode; invalid UTF-8 in a user name becomes
// U+FFFD.
func mustMarshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("webhook: encoding a payload: " + err.Error()) // unreachable: see above
	}
	return b
}

// crockford is the base32 alphabet of ULIDs: digits and upper-case letters
// without I, L, O and U, so an ID read aloud or retyped stays unambiguous.
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// NewMessageID returns a new webhook-id: "msg_" followed by a 26-character
// ULID (48 bits of milliseconds since the Unix epoch at now, then 80 random
// bits from crypto/rand, in Crockford base32). IDs sort by creation time,
// which keeps dead-letter listings readable, and are unique without
// coordination between Caddy instances.
func NewMessageID(now time.Time) string {
	var b [16]byte
	ms := uint64(now.UnixMilli())
	binary.BigEndian.PutUint16(b[0:2], uint16(ms>>32))
	binary.BigEndian.PutUint32(b[2:6], uint32(ms))
	rand.Read(b[6:]) // never fails: crypto/rand crashes the program instead
	hi, lo := binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])

	var out [4 + 26]byte
	copy(out[:], "msg_")
	for i := len(out) - 1; i >= 4; i-- {
		out[i] = crockford[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(out[:])
}
