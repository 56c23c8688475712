package storage

import (
	"context"
	"encoding/json"
	"time"

	"github.com/redis/go-redis/v9"
)

// Invalidation notices in Redis.
//
// redisApplyScript publishes one message on <p>inval for every end and
// every rotation it writes, in the same script as the write, so a notice
// is sent if and only if the write happened:
//
//	{"o": "<consumer>", "z": "<zone>", "k": "E", "id": "<hex>", "v": "<until> <reason>"}
//	{"o": "<consumer>", "z": "<zone>", "k": "R", "id": "<old hex>", "v": "<target> <grace-until> <forget-at>"}
//
// v is the tombstone or alias value as stored. Each instance subscribes to
// the channel and drops from memory what the others ended or rotated;
// messages from its own consumer name are skipped. Pub/Sub is at most once:
// what is published while a subscriber's connection is down is lost, so a
// resubscription after a broken connection is reported as a Resync notice
// and the engine re-reads its live sessions. In a Cluster, PUBLISH reaches
// the subscribers of every node.

// redisInvalChannel is the Pub/Sub channel of invalidation notices.
func (s *Redis) redisInvalChannel() string { return s.prefix + "inval" }

type redisNotice struct {
	Origin string `json:"o"`
	Zone   string `json:"z"`
	Kind   string `json:"k"`
	ID     string `json:"id"`
	Value  string `json:"v"`
}

// Invalidations implements Invalidator.
func (s *Redis) Invalidations(ctx context.Context) <-chan Invalidation {
	out := make(chan Invalidation, 256)
	if s.check() != nil {
		close(out)
		return out
	}
	ps := s.c.Subscribe(ctx, s.redisInvalChannel())
	in := ps.ChannelWithSubscriptions(redis.WithChannelSize(1024), redis.WithChannelHealthCheckInterval(5*time.Second))
	go func() {
		defer close(out)
		defer ps.Close()
		subscribed := false
		for {
			var m any
			var ok bool
			select {
			case <-ctx.Done():
				return
			case m, ok = <-in:
				if !ok {
					return
				}
			}
			var inv Invalidation
			switch m := m.(type) {
			case *redis.Subscription:
				if m.Kind != "subscribe" {
					continue
				}
				if !subscribed {
					subscribed = true
					continue
				}
				inv.Resync = true // subscribed again: the connection broke
			case *redis.Message:
				var ok bool
				if inv, ok = s.decodeNotice(m.Payload); !ok {
					continue
				}
			default:
				continue
			}
			select {
			case out <- inv:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

// decodeNotice turns a published message into an Invalidation. ok is false
// for this instance's own notices and for messages it cannot read.
func (s *Redis) decodeNotice(payload string) (inv Invalidation, ok bool) {
	var n redisNotice
	if json.Unmarshal([]byte(payload), &n) != nil || n.Origin == s.consumer {
		return inv, false
	}
	id, err := parseID(n.ID)
	if err != nil {
		return inv, false
	}
	inv.Zone, inv.ID = n.Zone, id
	switch n.Kind {
	case "E":
		until, reason, err := decodeTombstone(n.Value)
		if err != nil {
			return inv, false
		}
		inv.Ended, inv.Until, inv.Reason = true, until, reason
	case "R":
		a, err := decodeAliasValue(id, n.Value)
		if err != nil {
			return inv, false
		}
		inv.Alias = a
	default:
		return inv, false
	}
	return inv, true
}

var _ Invalidator = (*Redis)(nil)
