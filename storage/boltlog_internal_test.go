package storage

import (
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
