package engine

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/idlegate/idlegate/idletrack"
	"github.com/idlegate/idlegate/storage"
)

// A zone's lifetime (docs/design.md, "Lifecycle"):
//
//   - Acquire creates the zone, loading its sessions from the store, or
//     takes one more reference to the running zone and applies the new
//     settings to it in place (sessions, deadlines and tombstones in memory
//     are kept).
//   - The settings in force are those of the newest lease. Releasing it
//     puts the newest remaining lease's settings back, so a config that
//     failed to load leaves the zone as the running config has it.
//   - Two leases of one config (Holder.Config) must agree on the settings:
//     one zone has one policy and one webhook.
//   - Releasing the last lease retires the zone: its activity is written,
//     it leaves the engine (no more sweeps, no webhook target, so its
//     waiting events stay in the outbox) and its memory is dropped. The
//     store keeps everything; a later Acquire loads it again and the
//     sweep ends, on their deadlines, the sessions that expired meanwhile.
//
// A Caddy reload provisions the new config before it cleans up the old
// one, so a zone both configs name is never retired in between.

// Holder says who takes a lease.
type Holder struct {
	// Config identifies the configuration the holder belongs to; leases
	// with the same non-nil Config must configure the zone alike. Caddy
	// handlers pass their config context's Done channel.
	Config any
	// Site names the holder in errors, e.g. `server listening on :443`.
	Site string
}

// Lease is one holder's reference to a zone. Release it once the holder
// is done; the zone lives as long as one lease does.
type Lease struct {
	z    *Zone
	h    Holder
	cfg  ZoneConfig
	seq  uint64
	once sync.Once
	err  error
}

// Zone returns the leased zone.
func (l *Lease) Zone() *Zone { return l.z }

// Release gives the reference back. It is safe to call more than once.
func (l *Lease) Release() error {
	l.once.Do(func() { l.err = l.z.e.release(l) })
	return l.err
}

// Acquire returns a lease on zone cfg.Name, creating the zone (its
// sessions loaded from the store) if no lease holds it. Loading happens
// without the engine lock, so the other zones flush and sweep meanwhile.
// It fails when another lease of the same config has other settings.
func (e *Engine) Acquire(ctx context.Context, cfg ZoneConfig, h Holder) (*Lease, error) {
	for {
		e.mu.Lock()
		if z, ok := e.zones[cfg.Name]; ok {
			l, old, err := e.addLease(z, cfg, h)
			e.mu.Unlock()
			if err != nil {
				return nil, err
			}
			if targetChanged(old.Webhook, cfg.Webhook) {
				e.hasten(ctx, cfg.Name)
			}
			return l, nil
		}
		if wait, ok := e.loading[cfg.Name]; ok {
			// Another Acquire is loading the zone: use its result.
			e.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		done := make(chan struct{})
		e.loading[cfg.Name] = done
		e.mu.Unlock()

		z, err := e.load(ctx, cfg)

		e.mu.Lock()
		delete(e.loading, cfg.Name)
		close(done)
		if err != nil {
			e.mu.Unlock()
			return nil, fmt.Errorf("loading sessions of zone %q: %w", cfg.Name, err)
		}
		e.zones[cfg.Name] = z
		l, _, err := e.addLease(z, cfg, h)
		e.mu.Unlock()
		if cfg.Webhook != nil && e.o.Queued != nil {
			// Events that waited while no config named the zone have a
			// target again.
			e.o.Queued()
		}
		return l, err
	}
}

// Configure returns zone cfg.Name with cfg applied, for a caller that owns
// the engine for its whole life (tools, benchmarks, tests): its lease is
// never released.
func (e *Engine) Configure(ctx context.Context, cfg ZoneConfig) (*Zone, error) {
	l, err := e.Acquire(ctx, cfg, Holder{})
	if err != nil {
		return nil, err
	}
	return l.Zone(), nil
}

// load builds zone cfg.Name from the store.
func (e *Engine) load(ctx context.Context, cfg ZoneConfig) (*Zone, error) {
	z := &Zone{e: e, tracker: idletrack.NewTracker(cfg.Name, cfg.Policy)}
	z.setConfig(cfg)
	if c, ok := e.store.(sessionCounter); ok {
		if n, err := c.Sessions(ctx, cfg.Name); err == nil {
			z.tracker.Reserve(n)
		}
	}
	now := e.Now()
	err := e.store.Load(ctx, cfg.Name, z.tracker.Load, func(a storage.Alias) {
		if now < a.GraceUntil {
			z.tracker.LoadAlias(a.Old, a.Target, a.GraceUntil, a.ForgetAt)
		}
	})
	if err != nil {
		return nil, err
	}
	z.loadFamily(ctx)
	return z, nil
}

// addLease adds a lease on z and puts its settings in force; it returns the
// settings that were. Called with e.mu held.
func (e *Engine) addLease(z *Zone, cfg ZoneConfig, h Holder) (*Lease, ZoneConfig, error) {
	if h.Config != nil {
		for _, o := range z.leases {
			if o.h.Config != h.Config {
				continue
			}
			if err := Conflict(o.cfg, o.h.Site, cfg, h.Site); err != nil {
				return nil, ZoneConfig{}, err
			}
		}
	}
	e.leaseSeq++
	l := &Lease{z: z, h: h, cfg: cfg, seq: e.leaseSeq}
	z.leases = append(z.leases, l)
	old := z.Config()
	z.setConfig(cfg)
	return l, *old, nil
}

func (e *Engine) release(l *Lease) error {
	z := l.z
	e.mu.Lock()
	newest := true
	for i, o := range z.leases {
		if o == l {
			z.leases = append(z.leases[:i], z.leases[i+1:]...)
		} else if o.seq > l.seq {
			newest = false
		}
	}
	if len(z.leases) == 0 {
		if e.zones[z.Name()] == z {
			delete(e.zones, z.Name())
		}
		e.mu.Unlock()
		return e.retire(z)
	}
	var old, cur ZoneConfig
	if newest {
		top := z.leases[0]
		for _, o := range z.leases[1:] {
			if o.seq > top.seq {
				top = o
			}
		}
		old, cur = *z.Config(), top.cfg
		z.setConfig(cur)
	}
	e.mu.Unlock()
	if newest && targetChanged(old.Webhook, cur.Webhook) {
		e.hasten(e.ctx, z.Name())
	}
	return nil
}

// retire writes the last activity of a zone that left the engine, so
// nothing it saw is lost and a later Acquire loads it from the store.
func (e *Engine) retire(z *Zone) error {
	z.retired.Store(true)
	e.saveFamily(e.ctx, z) // (the loop no longer sees the zone)
	var b storage.Batch
	for _, c := range z.tracker.Collect(nil) {
		b.Sessions = append(b.Sessions, storage.SessionWrite{Zone: z.Name(), Change: c, ActivityOnly: true})
	}
	if b.Len() == 0 {
		return nil
	}
	return e.enqueue(&b, true)
}

// Conflict returns an error naming both sites and their differing
// settings when a (configured by siteA) and b (by siteB) give one zone
// different settings, and nil when they agree.
func Conflict(a ZoneConfig, siteA string, b ZoneConfig, siteB string) error {
	diff := cfgDiff(&a, &b)
	if diff == "" {
		return nil
	}
	return fmt.Errorf("zone %q is configured twice with different settings: %s (%s) and %s (%s); give each its own zone, or the same settings",
		b.Name, siteA, describe(&a, diff), siteB, describe(&b, diff))
}

// cfgDiff names the settings in which a and b differ ("" when alike).
func cfgDiff(a, b *ZoneConfig) string {
	var d []string
	if a.Policy != b.Policy {
		d = append(d, "policy")
	}
	if a.UsersKnown != b.UsersKnown {
		d = append(d, "users")
	}
	if !sameWebhook(a.Webhook, b.Webhook) {
		d = append(d, "webhook")
	}
	return strings.Join(d, ",")
}

func sameWebhook(a, b *Webhook) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.URL == b.URL && string(a.Key) == string(b.Key) && a.Timeout == b.Timeout &&
		a.MaxAttempts == b.MaxAttempts && a.Ended == b.Ended && a.Started == b.Started &&
		a.IncludeAnonymous == b.IncludeAnonymous
}

// describe spells the settings of c named in diff, in Caddyfile words.
func describe(c *ZoneConfig, diff string) string {
	var parts []string
	for _, what := range strings.Split(diff, ",") {
		switch what {
		case "policy":
			p := c.Policy
			parts = append(parts, fmt.Sprintf("idle %s, absolute %s, rotation_grace %s, remember_ended %s, max_sessions %d",
				dur(p.Idle), dur(p.Absolute), dur(p.RotationGrace), dur(p.RememberEnded), p.MaxSessions))
		case "users":
			parts = append(parts, fmt.Sprintf("a user source (user_header, user_cookie, user_form, user_placeholder) set: %t", c.UsersKnown))
		case "webhook":
			w := c.Webhook
			switch {
			case w == nil:
				parts = append(parts, "no webhook")
			default:
				var ev []string
				if w.Ended {
					ev = append(ev, "ended")
				}
				if w.Started {
					ev = append(ev, "started")
				}
				// The secret itself is never printed.
				parts = append(parts, fmt.Sprintf("webhook %s, secret %x…, timeout %s, max_attempts %d, events %s, include_anonymous %t",
					w.URL, keyHint(w.Key), dur(w.Timeout), w.MaxAttempts, strings.Join(ev, " "), w.IncludeAnonymous))
			}
		}
	}
	return strings.Join(parts, "; ")
}

// keyHint is a short fingerprint that tells two secrets apart without
// revealing either.
func keyHint(k []byte) []byte {
	h := sha256.Sum256(k)
	return h[:3]
}

func dur(d time.Duration) string {
	if d == 0 {
		return "0"
	}
	return d.String()
}
