package engine

import (
	"go.uber.org/zap"

	"github.com/idlegate/idlegate/idletrack"
	"github.com/idlegate/idlegate/storage"
)

// invalidations applies to memory what other instances ended or rotated
// (storage.Invalidator), until the engine stops. Without it, an instance
// that holds a session in memory would keep accepting its cookie until its
// own deadline after another instance logged it out.
func (e *Engine) invalidations(ch <-chan storage.Invalidation) {
	defer close(e.invalDone)
	for inv := range ch {
		if inv.Resync {
			e.o.Logger.Info("idlegate: invalidation notices may have been lost while the store was away; re-reading live sessions")
			for _, z := range e.Zones() {
				z.resync()
			}
			continue
		}
		if z, ok := e.Zone(inv.Zone); ok {
			z.invalidate(inv)
		}
	}
}

// invalidate drops from memory a session that another instance ended, or
// moves it to the value another instance rotated it to. The end or the
// rotation is already durable and its events are queued: nothing is
// written and no event is made here.
func (z *Zone) invalidate(inv storage.Invalidation) {
	now := z.e.Now()
	if inv.Ended {
		z.tracker.End(inv.ID, inv.Reason, now) // discarded: ended elsewhere
		z.tracker.Remember(inv.ID, inv.Until, inv.Reason)
		return
	}
	a := inv.Alias
	// The old value becomes an alias with the rotating instance's times.
	// Activity seen here on the old value moves with the session; the
	// user and login stay the store's (activity-only writes).
	if _, ok := z.tracker.Get(a.Target); ok {
		// Already loaded under its new value: the old entry is a stale copy.
		z.tracker.End(a.Old, idletrack.ReasonLogout, now)
	} else {
		z.tracker.Rotate(a.Old, a.Target, now)
	}
	z.tracker.LoadAlias(a.Old, a.Target, a.GraceUntil, a.ForgetAt)
}

// resync re-reads every session memory holds live and applies what other
// instances did to it while their notices could not arrive.
func (z *Zone) resync() {
	var ids []idletrack.ID
	z.tracker.Each(func(s idletrack.Session) bool {
		ids = append(ids, s.ID)
		return true
	})
	for _, id := range ids {
		rec, err := z.e.store.Lookup(z.e.ctx, z.Name(), id)
		if err != nil {
			z.e.o.Logger.Warn("idlegate: re-reading sessions after a store outage failed; memory stays as it is", zap.Error(err))
			return
		}
		switch rec.Kind {
		case storage.KindTombstone:
			z.invalidate(storage.Invalidation{Zone: z.Name(), ID: id, Ended: true, Reason: rec.Reason, Until: rec.Until})
		case storage.KindAlias:
			z.invalidate(storage.Invalidation{Zone: z.Name(), ID: id, Alias: rec.Alias})
		}
	}
}
