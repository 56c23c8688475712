package storage

import (
	"context"

	"github.com/idlegate/idlegate/idletrack"
)

// Members are the credential cookies of a session's family, bound to the
// session by value (docs/design.md, "Credential members"): the login
// response of WordPress sets wordpress_logged_in_<hash>, the cookie idlegate
// tracks, and wordpress_<hash>, which signs /wp-admin in by itself. A
// member is named by its keyed hash (idletrack.Keyer over the zone, the
// cookie's name and its value), kept apart from session IDs: it lives in a
// keyspace of its own in both stores, so no cookie value can be read as the
// other kind. A member resolves to its session while the session lives,
// follows it across rotations, and once the session ends it lasts as long
// as the session's tombstone: ending a session ends its members with the
// same durable-tombstone rule (EndWrite.NoAnonymousTombstone), in the same
// write.
//
// MemberStore is part of Store; it is a separate interface only to be
// documented on its own.
type MemberStore interface {
	// LookupMember says which session the member value id of zone was
	// bound to.
	LookupMember(ctx context.Context, zone string, id idletrack.ID) (MemberRecord, error)

	// LoadFamily returns the cookie family stored for zone (nil if none).
	LoadFamily(ctx context.Context, zone string) ([]FamilyMember, error)
	// SaveFamily replaces the cookie family stored for zone; at most
	// MaxFamily members are kept.
	SaveFamily(ctx context.Context, zone string, f []FamilyMember) error
}

// MemberWrite binds the member value Member, a cookie called Name, to the
// session Target. A store follows Target's rotation aliases, keeps at most
// MaxMembers values per session (when full, the oldest value of the same
// name gives way, else the oldest), and marks a value that a second session
// is bound to as shared: a value several sessions were given (a language,
// a constant test cookie) is not one session's credential, and is never
// refused. A member bound to a session that has already ended ends with it.
type MemberWrite struct {
	Zone   string
	Target idletrack.ID
	Member idletrack.ID
	Name   string // the cookie's name; names are not secrets
	At     int64  // when it was set (Unix ns), to find the oldest
}

// MaxMembers bounds the member values bound to one session.
const MaxMembers = 8

// MemberRecord is what a store knows of a member value.
type MemberRecord struct {
	Found bool
	// Shared: the value was set for several sessions; it names none.
	Shared bool
	// Target is the session the value belongs to (after rotations): live,
	// or ended and then found as a tombstone by Lookup.
	Target idletrack.ID
}

// FamilyMember is a cookie of a zone's family as stored: its name and the
// Path and Domain it was set with. Values are never stored.
type FamilyMember struct {
	Name   string `json:"n"`
	Path   string `json:"p"`
	Domain string `json:"d,omitempty"`
}

// MaxFamily bounds a stored family (sessioncookie keeps at most as many).
const MaxFamily = 32

// clampFamily keeps the first MaxFamily members.
func clampFamily(f []FamilyMember) []FamilyMember {
	if len(f) > MaxFamily {
		f = f[:MaxFamily]
	}
	return f
}
