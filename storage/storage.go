// Package storage persists idlegate's state behind one interface, Store,
// with two implementations: Bolt (an embedded bbolt file, the default) and
// Redis (shared by several Caddy instances). It also holds the durable
// webhook outbox: ending a session and queueing its events is one atomic
// write.
//
// A Store never sees a raw cookie value: sessions are named by their
// idletrack.ID, a keyed hash whose key the store generates once and keeps.
package storage

import (
	"context"
	"errors"
	"time"

	"github.com/idlegate/idlegate/idletrack"
)

// Store is the persistence of sessions, tombstones, rotation aliases and the
// webhook outbox. Implementations are safe for concurrent use. Zones
// namespace everything: one store can serve several sites.
type Store interface {
	// Key returns the secret HMAC key for session IDs. It is generated
	// when the store is first created and never changes.
	Key() []byte

	// Shared reports whether other processes write the same store. A
	// shared store is re-read before a session is refused or ended.
	Shared() bool

	// Load calls fn for every live session of zone and alias for every
	// rotated-away value still in its grace period.
	Load(ctx context.Context, zone string, fn func(idletrack.Session), alias func(Alias)) error

	// Lookup says what the store knows of id in zone.
	Lookup(ctx context.Context, zone string, id idletrack.ID) (Record, error)

	// Apply writes b atomically: all of it or nothing. It returns one
	// EndResult per b.Ends, in order.
	Apply(ctx context.Context, b *Batch) ([]EndResult, error)

	// Expiring returns up to limit IDs of zone whose stored last activity
	// is at or before idleCutoff, or whose start is at or before absCutoff
	// (when absCutoff > 0). The index is lazy: an ID may have been active
	// since, which a conditional end then finds out. Cost is O(returned).
	Expiring(ctx context.Context, zone string, idleCutoff, absCutoff int64, limit int) ([]idletrack.ID, error)

	// Purge deletes tombstones and aliases whose memory period ended at or
	// before now and returns how many it removed.
	Purge(ctx context.Context, now int64) (int, error)

	MemberStore

	Outbox

	// Close releases the store. The caller stops using it first.
	Close() error
}

// Outbox is the durable queue of webhook events.
type Outbox interface {
	// Due returns up to limit events whose NextAt is at or before now,
	// earliest first, leaving out those listed in skip (in flight).
	Due(ctx context.Context, now int64, limit int, skip func(id string) bool) ([]Event, error)
	// Delivered removes a delivered event.
	Delivered(ctx context.Context, e Event) error
	// Reschedule stores e's new Attempts, NextAt and LastError.
	Reschedule(ctx context.Context, e Event) error
	// Bury moves e to the dead letters.
	Bury(ctx context.Context, e Event) error
	// DeadLetters lists up to limit dead letters, oldest first.
	DeadLetters(ctx context.Context, limit int) ([]Event, error)
	// Revive re-queues the dead letters with the given IDs (all when ids is
	// empty) for delivery at now with a fresh attempt count.
	Revive(ctx context.Context, ids []string, now int64) (int, error)
	// OutboxStats counts pending events and dead letters.
	OutboxStats(ctx context.Context) (pending, dead int, err error)
}

// Event is a queued webhook. Body is fixed when the event is queued; the
// URL and secret are those configured for Zone at delivery time.
type Event struct {
	ID        string `json:"id"`   // webhook-id: stable across attempts
	Zone      string `json:"zone"` // the zone whose webhook receives it
	Type      string `json:"type"` // session.ended, session.started
	Body      []byte `json:"body"` // the JSON payload
	At        int64  `json:"at"`   // when it happened (Unix ns), for the lag metric
	Attempts  int    `json:"attempts"`
	NextAt    int64  `json:"next_at"` // Unix ns
	LastError string `json:"last_error,omitempty"`
}

// Batch is one atomic write.
type Batch struct {
	// Sessions to write: new sessions, activity, users.
	Sessions []SessionWrite
	// Rotations: delete Old, write the session under its new ID, keep Old
	// as an alias.
	Rotations []RotationWrite
	// Ends: sessions to end. An end is carried out unless the store already
	// holds a tombstone for the ID (it ended before: exactly once), or, for
	// idle and absolute ends, the stored session shows activity that puts
	// its deadline after End.EndedAt (another instance saw it active).
	Ends []EndWrite
	// Events to queue regardless of ends (session.started).
	Events []Event
	// Members bind credential cookies of sessions by value (members.go);
	// they are written after the rotations and before the ends.
	Members []MemberWrite
}

// Len returns the number of writes in b.
func (b *Batch) Len() int {
	return len(b.Sessions) + len(b.Rotations) + len(b.Ends) + len(b.Events) + len(b.Members)
}

// Reset empties b, keeping its capacity.
func (b *Batch) Reset() {
	b.Sessions, b.Rotations, b.Ends, b.Events = b.Sessions[:0], b.Rotations[:0], b.Ends[:0], b.Events[:0]
	b.Members = b.Members[:0]
}

// SessionWrite writes a session of Zone.
type SessionWrite struct {
	Zone string
	idletrack.Change
	// ActivityOnly writes only the activity and request count of a session
	// the store already holds; its stored start, login and user stay as
	// they are. The engine's periodic flush sets it: in a shared store
	// another instance may have signed the session in since this one read
	// it, and a stale copy must not sign it out again.
	ActivityOnly bool
}

// RotationWrite records a rotation in Zone.
type RotationWrite struct {
	Zone string
	idletrack.Rotation
}

// EndWrite ends a session.
type EndWrite struct {
	End idletrack.End
	// Policy decides, with the stored state merged in, whether an idle or
	// absolute end still holds.
	Policy idletrack.Policy
	// TombstoneUntil: the ID is refused until then (EndedAt+RememberEnded).
	TombstoneUntil int64
	// NoAnonymousTombstone: an end of a session that never had a user, as
	// the store knows it, leaves no lasting tombstone, so that invented
	// cookie values cannot grow the store (docs/SECURITY.md, "Floods"). The
	// session's record is removed and the end reported all the same; a
	// shared store keeps a tombstone of at most anonymousClaim as the claim
	// that keeps a second instance from ending the session again.
	NoAnonymousTombstone bool
	// Events builds the events to queue from the end as carried out (after
	// merging stored activity and requests). It may return none.
	Events func(idletrack.End) []Event
}

// anonymousClaim is how long a shared store keeps the tombstone of an end
// that earns none.
const anonymousClaim = 10 * time.Minute

// tombstone reports whether end, as carried out, leaves a tombstone.
func (w *EndWrite) tombstone(end *idletrack.End) bool {
	return !w.NoAnonymousTombstone || end.Session.User != "" || end.Session.LoginAt != 0
}

// EndResult says what became of an EndWrite.
type EndResult struct {
	Ended bool
	// End is the end as carried out (Ended) — merged with the stored state.
	End idletrack.End
	// Current is the stored session when an idle/absolute end did not hold:
	// the tracker loads it and carries on.
	Current *idletrack.Session
}

// Invalidator is implemented by a shared store that tells each instance
// what the other instances ended or rotated, so that an instance stops
// accepting a cookie value from memory as soon as another one logged it
// out, revoked it, ended it or rotated it away, rather than at its own
// deadline. The engine uses it when its store implements it.
//
// Notices are a fast path, not the record: the store still refuses to
// revive an ended or rotated session whatever an instance writes. A notice
// sent while an instance is cut off from the store is lost; the instance
// is told so with a notice whose Resync is set, and then re-reads what
// its memory holds.
type Invalidator interface {
	// Invalidations delivers the notices of other instances until ctx is
	// done or the store is closed; then the channel is closed.
	Invalidations(ctx context.Context) <-chan Invalidation
}

// Invalidation is what another instance did to one session ID.
type Invalidation struct {
	Zone string
	ID   idletrack.ID
	// Ended: ID ended for Reason and is refused until Until. Otherwise ID
	// was rotated away: Alias says to what, and until when it works.
	Ended  bool
	Reason idletrack.Reason
	Until  int64
	Alias  Alias
	// Resync: notices may have been lost (the connection to the store
	// broke and is back). Zone and ID are empty.
	Resync bool
}

// Alias is a rotated-away cookie value of a session.
type Alias struct {
	Old, Target          idletrack.ID
	GraceUntil, ForgetAt int64
}

// Kind is what a Lookup found.
type Kind uint8

// Record kinds.
const (
	KindNone Kind = iota
	KindSession
	KindAlias
	KindTombstone
)

// Record is what a store knows of one ID.
type Record struct {
	Kind    Kind
	Session idletrack.Session // KindSession
	Alias   Alias             // KindAlias
	Until   int64             // KindTombstone: refused until then
	Reason  idletrack.Reason  // KindTombstone
}

// ErrClosed is returned by a store used after Close.
var ErrClosed = errors.New("idlegate store is closed")

// DefaultLockTimeout is how long opening a bbolt file waits for another
// process that holds it.
const DefaultLockTimeout = 5 * time.Second

// Hastener is implemented by stores that can make a zone's waiting events
// due at once. The engine calls it when a zone's webhook target changes, so
// fixing a wrong URL and reloading delivers what was waiting without waiting
// out each event's backoff.
type Hastener interface {
	Hasten(ctx context.Context, zone string, now int64) (int, error)
}
