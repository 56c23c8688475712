package engine

import (
	"time"

	"github.com/idlegate/idlegate/idletrack"
	"github.com/idlegate/idlegate/storage"
	"github.com/idlegate/idlegate/webhook"
)

// WebhookEvents is the Encoder of a zone's webhook policy: which events its
// webhook is sent (ended, started) and whether sessions that never had a
// user are reported; the events are Standard Webhooks messages
// (webhook.EndedEvent, webhook.StartedEvent).
type WebhookEvents struct{}

// Ended implements Encoder.
func (WebhookEvents) Ended(c *ZoneConfig, e idletrack.End, now time.Time) []storage.Event {
	w := c.Webhook
	if w == nil || !w.Ended || (e.Session.User == "" && !w.IncludeAnonymous) {
		return nil
	}
	return []storage.Event{webhook.EndedEvent(e, now)}
}

// Started implements Encoder.
func (WebhookEvents) Started(c *ZoneConfig, s idletrack.Session, now time.Time) []storage.Event {
	w := c.Webhook
	if w == nil || !w.Started || (s.User == "" && !w.IncludeAnonymous) {
		return nil
	}
	return []storage.Event{webhook.StartedEvent(c.Name, s, now)}
}

var _ Encoder = WebhookEvents{}
