package engine

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/idlegate/idlegate/idletrack"
	"github.com/idlegate/idlegate/storage"
)

// ZoneConfig is what a zone is configured with. The newest lease's
// configuration is in force (lease.go); a reload applies the new one to
// existing sessions.
type ZoneConfig struct {
	Name   string
	Policy idletrack.Policy
	// Webhook is nil when no webhook is configured; then no events are
	// queued for the zone.
	Webhook *Webhook
	// UsersKnown: the zone has a source for the signed-in user (user_header,
	// user_cookie, user_form, user_placeholder).
	// Then only sessions that had a user earn a durable tombstone; without
	// it, every session the upstream issued does (docs/SECURITY.md, "Floods").
	UsersKnown bool
}

// Webhook is a zone's webhook target and what it is sent.
type Webhook struct {
	URL              string
	Key              []byte // decoded whsec_ secret
	Timeout          time.Duration
	MaxAttempts      int
	Ended            bool // send session.ended
	Started          bool // send session.started
	IncludeAnonymous bool // also report sessions that never had a user
}

// Zone is one zone's tracker plus the engine that persists it.
type Zone struct {
	e       *Engine
	tracker *idletrack.Tracker
	cfg     atomic.Pointer[ZoneConfig]
	leases  []*Lease // guarded by e.mu; see lease.go
	members memberCache
	familyState
	retired atomic.Bool // no lease holds it any more (lease.go)
}

// Retired reports whether the zone has left the engine: the last lease on
// it was released. A config that names the zone again gets a new Zone.
func (z *Zone) Retired() bool { return z.retired.Load() }

func (z *Zone) setConfig(cfg ZoneConfig) {
	z.cfg.Store(&cfg)
	z.tracker.SetPolicy(cfg.Policy)
}

// Name returns the zone's name.
func (z *Zone) Name() string { return z.tracker.Zone() }

// Config returns the configuration in force.
func (z *Zone) Config() *ZoneConfig { return z.cfg.Load() }

// Tracker returns the zone's tracker.
func (z *Zone) Tracker() *idletrack.Tracker { return z.tracker }

// ID derives the session ID of a cookie value in this zone.
func (z *Zone) ID(value string) idletrack.ID { return z.e.keyer.ID(z.Name(), value) }

// Check decides a request of session id at now. With activity, a live
// session's request counts as activity. Unknown IDs are looked up in the
// store; an ID the store does not know either is adopted.
func (z *Zone) Check(ctx context.Context, id idletrack.ID, now int64, activity bool) idletrack.Verdict {
	v := z.tracker.Request(id, now, activity)
	if v.Status == idletrack.StatusUnknown {
		v = z.lookup(ctx, id, now, activity, true)
	}
	if v.Ended != nil {
		v = z.expired(ctx, v, now, activity)
	}
	return v
}

// lookup asks the store about an ID memory does not know. With adopt, an
// ID the store does not know either is adopted; without, it is
// StatusUnknown (a member's session, which must not become live).
func (z *Zone) lookup(ctx context.Context, id idletrack.ID, now int64, activity, adopt bool) idletrack.Verdict {
	adoptOr := func() idletrack.Verdict {
		if !adopt {
			return idletrack.Verdict{Status: idletrack.StatusUnknown, ID: id}
		}
		return z.tracker.Adopt(id, now)
	}
	rec, err := z.e.store.Lookup(ctx, z.Name(), id)
	if err != nil {
		// Fail open for a value memory has never seen: refusing every new
		// visitor because the store is unreadable would take the site down.
		z.e.storeError("lookup", err)
		return adoptOr()
	}
	switch rec.Kind {
	case storage.KindSession:
		z.tracker.Load(rec.Session)
	case storage.KindAlias:
		a := rec.Alias
		if now >= a.ForgetAt {
			return adoptOr()
		}
		z.tracker.LoadAlias(a.Old, a.Target, a.GraceUntil, a.ForgetAt)
		if now < a.GraceUntil {
			if _, live := z.tracker.Get(a.Target); !live {
				z.lookupTarget(ctx, a.Target)
			}
		}
	case storage.KindTombstone:
		if now < rec.Until {
			z.tracker.Remember(id, rec.Until, rec.Reason)
			return idletrack.Verdict{Status: idletrack.StatusEnded, ID: id, Reason: rec.Reason}
		}
		return adoptOr()
	default:
		return adoptOr()
	}
	v := z.tracker.Request(id, now, activity)
	if v.Status == idletrack.StatusUnknown {
		v = adoptOr()
	}
	return v
}

func (z *Zone) lookupTarget(ctx context.Context, id idletrack.ID) {
	if rec, err := z.e.store.Lookup(ctx, z.Name(), id); err == nil && rec.Kind == storage.KindSession {
		z.tracker.Load(rec.Session)
	}
}

// expired handles a request that found its session past the deadline. With
// a store of its own, memory is the truth: the end is queued and the request
// refused. With a shared store, another instance may have seen activity that
// has not reached this one: the end is tried at once, and if the store
// disagrees, the session carries on.
func (z *Zone) expired(ctx context.Context, v idletrack.Verdict, now int64, activity bool) idletrack.Verdict {
	w := z.endWrite(*v.Ended)
	b := storage.Batch{Ends: []storage.EndWrite{w}}
	if !z.e.store.Shared() {
		z.e.enqueue(&b, false)
		return v
	}
	if z.e.failingNow() || z.e.Now() < z.e.holdUntil() {
		// The store is away or just back: what it holds may miss activity
		// other instances kept meanwhile. Refuse on memory's word; the end
		// waits (see commit) and yields if the session was active elsewhere.
		z.e.enqueue(&b, false)
		return v
	}
	results, err := z.e.store.Apply(ctx, &b)
	if err != nil {
		z.e.storeError("end", err)
		z.e.enqueue(&b, false)
		return v
	}
	z.e.applied(&b, results)
	if len(results) == 1 && results[0].Current != nil {
		return z.tracker.Request(v.ID, now, activity)
	}
	v.Ended = nil
	return v
}

// endWrite builds the store write for an end under the zone's settings.
func (z *Zone) endWrite(end idletrack.End) storage.EndWrite {
	cfg := z.Config()
	return storage.EndWrite{
		End:            end,
		Policy:         cfg.Policy,
		TombstoneUntil: end.EndedAt + int64(cfg.Policy.RememberEnded),
		// Invented values, adopted and sent again, never earn one.
		NoAnonymousTombstone: cfg.UsersKnown || end.Adopted,
		Events: func(end idletrack.End) []storage.Event {
			return z.e.enc.Ended(z.Config(), end, z.e.o.Now())
		},
	}
}

// ErrEnded is returned when the upstream issues, or rotates a session onto,
// an identity that has ended: no response may make it live again.
var ErrEnded = errors.New("the session ID has ended and cannot be issued again")

// Ended reports whether id is an ended identity at now (a tombstone, or a
// rotated-away value past its grace). When memory does not know id it asks
// the store, which keeps every end for remember_ended, across restarts and
// instances; a tombstone found there is remembered in memory.
func (z *Zone) Ended(id idletrack.ID, now int64) bool {
	if ended, known := z.tracker.Ended(id, now); known {
		return ended
	}
	rec, err := z.e.store.Lookup(z.e.ctx, z.Name(), id)
	if err != nil {
		// Fail open, as for adoption: an unreadable store must not stop
		// every login; the end stays in the store and refuses requests.
		z.e.storeError("lookup", err)
		return false
	}
	switch rec.Kind {
	case storage.KindTombstone:
		if now < rec.Until {
			z.tracker.Remember(id, rec.Until, rec.Reason)
			return true
		}
	case storage.KindAlias:
		return now >= rec.Alias.GraceUntil && now < rec.Alias.ForgetAt
	}
	return false
}

// Start records a session the upstream has just issued, durably. It returns
// false when the session is not tracked (the zone is full, or the value was
// seen before), and ErrEnded when id is an ended identity.
func (z *Zone) Start(id idletrack.ID, user string, now int64) (bool, error) {
	if z.Ended(id, now) {
		return false, ErrEnded
	}
	s, ok := z.tracker.Start(id, now, user)
	if !ok {
		return false, nil
	}
	b := storage.Batch{Sessions: []storage.SessionWrite{{Zone: z.Name(), Change: idletrack.Change{Session: s, ReqDelta: s.Requests}}}}
	if user != "" {
		b.Events = z.e.enc.Started(z.Config(), s, z.e.o.Now())
	}
	return true, z.e.enqueue(&b, true)
}

// Rotate moves session old to the new ID, durably. It returns ErrEnded,
// and moves nothing, when id is an ended identity.
func (z *Zone) Rotate(old, id idletrack.ID, now int64) (idletrack.Session, bool, error) {
	if z.Ended(id, now) {
		return idletrack.Session{}, false, ErrEnded
	}
	r, ok := z.tracker.Rotate(old, id, now)
	if !ok {
		return idletrack.Session{}, false, nil
	}
	b := storage.Batch{Rotations: []storage.RotationWrite{{Zone: z.Name(), Rotation: r}}}
	return r.Session, true, z.e.enqueue(&b, true)
}

// SetUser records the user the upstream named for session id. A login is
// durable before it returns; a user change ends the old logical session.
func (z *Zone) SetUser(id idletrack.ID, user string, now int64) error {
	uc := z.tracker.SetUser(id, user, now)
	if !uc.Changed {
		return nil
	}
	var b storage.Batch
	b.Sessions = []storage.SessionWrite{{Zone: z.Name(), Change: idletrack.Change{Session: uc.Session}}}
	if uc.Ended != nil {
		// The old user's logical session ends; its ID goes on, so no tombstone.
		b.Events = append(b.Events, z.e.enc.Ended(z.Config(), *uc.Ended, z.e.o.Now())...)
		if o := z.e.o.Observer; o != nil {
			o.SessionEnded(*uc.Ended)
		}
	}
	if uc.Login {
		b.Events = append(b.Events, z.e.enc.Started(z.Config(), uc.Session, z.e.o.Now())...)
	}
	return z.e.enqueue(&b, true)
}

// End ends session id for reason (logout, revoked) durably. It returns false
// if the session was not live.
func (z *Zone) End(id idletrack.ID, reason idletrack.Reason, now int64) (bool, error) {
	end := z.tracker.End(id, reason, now)
	if end == nil {
		return false, nil
	}
	b := storage.Batch{Ends: []storage.EndWrite{z.endWrite(*end)}}
	return true, z.e.enqueue(&b, true)
}

// sweepShared ends sessions that the shared store finds expired, including
// those this instance has never seen (their instance may be gone).
func (z *Zone) sweepShared(now time.Time, b *storage.Batch) {
	p := z.Config().Policy
	n := now.UnixNano()
	absCutoff := int64(0)
	if p.Absolute > 0 {
		absCutoff = n - int64(p.Absolute)
	}
	ids, err := z.e.store.Expiring(z.e.ctx, z.Name(), n-int64(p.Idle), absCutoff, z.e.o.SweepBatch)
	if err != nil {
		z.e.storeError("sweep", err)
		return
	}
	for _, id := range ids {
		s, live := z.tracker.Get(id)
		if !live {
			rec, err := z.e.store.Lookup(z.e.ctx, z.Name(), id)
			if err != nil || rec.Kind != storage.KindSession {
				continue
			}
			s = rec.Session
		}
		at, why := s.Deadline(&p)
		if at > n {
			// Active here: the conditional end keeps it and re-indexes it.
			at = n
		} else if live {
			// Expired here too: end it in memory as well.
			if end := z.tracker.End(id, why, at); end != nil {
				s = end.Session
			}
		}
		b.Ends = append(b.Ends, z.endWrite(idletrack.End{Session: s, Zone: z.Name(), Reason: why, EndedAt: at}))
	}
}

func (e *Engine) storeError(op string, err error) {
	e.o.Logger.Warn("idlegate store "+op+" failed", zap.Error(err))
	if e.o.Observer != nil {
		e.o.Observer.StoreError(op, err)
	}
}
