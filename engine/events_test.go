package engine

import (
	"testing"
	"time"

	"github.com/idlegate/idlegate/idletrack"
)

// TestWebhookEventsPolicy: a zone's webhook gets the events it asked for,
// and anonymous sessions only with include_anonymous.
func TestWebhookEventsPolicy(t *testing.T) {
	user := idletrack.Session{ID: idletrack.ID{1}, User: "42", StartedAt: 1, LoginAt: 1, LastActivity: 2}
	anon := idletrack.Session{ID: idletrack.ID{2}, StartedAt: 1, LastActivity: 2}
	now := time.Unix(100, 0)
	for _, tt := range []struct {
		why            string
		w              *Webhook
		s              idletrack.Session
		ended, started int
	}{
		{"no webhook", nil, user, 0, 0},
		{"ended only (the default)", &Webhook{Ended: true}, user, 1, 0},
		{"started too", &Webhook{Ended: true, Started: true}, user, 1, 1},
		{"an anonymous session is not reported", &Webhook{Ended: true, Started: true}, anon, 0, 0},
		{"unless include_anonymous", &Webhook{Ended: true, Started: true, IncludeAnonymous: true}, anon, 1, 1},
	} {
		c := &ZoneConfig{Name: "z", Webhook: tt.w}
		e := idletrack.End{Session: tt.s, Zone: "z", Reason: idletrack.ReasonIdle, EndedAt: 3}
		if n := len((WebhookEvents{}).Ended(c, e, now)); n != tt.ended {
			t.Errorf("%s: %d ended events, want %d", tt.why, n, tt.ended)
		}
		if n := len((WebhookEvents{}).Started(c, tt.s, now)); n != tt.started {
			t.Errorf("%s: %d started events, want %d", tt.why, n, tt.started)
		}
	}
}
