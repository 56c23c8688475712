package storage

// The bbolt store's half that is the durable webhook outbox: events are
// queued in the same transaction that ends their session (bolt.go), and
// taken, rescheduled, buried and revived here (docs/design.md).

import (
	"context"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

func putEvent(tx *bolt.Tx, e Event) error {
	v, err := json.Marshal(e)
	if err != nil {
		return err
	}
	k := timeKey(e.NextAt, []byte(e.ID))
	if err := tx.Bucket(bOutbox).Put(k, v); err != nil {
		return err
	}
	return tx.Bucket(bOutboxIDs).Put([]byte(e.ID), k[:8])
}

// removeEvent deletes the queued event id and reports whether it existed.
func removeEvent(tx *bolt.Tx, id string) (bool, error) {
	ids := tx.Bucket(bOutboxIDs)
	at := ids.Get([]byte(id))
	if at == nil {
		return false, nil
	}
	if err := tx.Bucket(bOutbox).Delete(append(append([]byte(nil), at...), id...)); err != nil {
		return false, err
	}
	return true, ids.Delete([]byte(id))
}

// Due implements Outbox.
func (s *Bolt) Due(_ context.Context, now int64, limit int, skip func(string) bool) ([]Event, error) {
	var out []Event
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bOutbox).Cursor()
		for k, v := c.First(); k != nil && len(out) < limit && keyTime(k) <= now; k, v = c.Next() {
			if skip != nil && skip(string(k[8:])) {
				continue
			}
			var e Event
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("outbox entry %q: %w", k[8:], err)
			}
			out = append(out, e)
		}
		return nil
	})
	return out, err
}

// Delivered implements Outbox. Removals are group-committed: those that
// arrive while a commit is in flight go into the next one together, so the
// delivery worker's concurrent attempts share one fsync instead of queueing
// for one each. Delivered still returns only once its removal is durable.
func (s *Bolt) Delivered(_ context.Context, e Event) error {
	s.rmu.Lock()
	if s.rnext == nil {
		s.rnext = &removals{done: make(chan struct{})}
	}
	g := s.rnext
	g.ids = append(g.ids, e.ID)
	if !s.rrunning {
		s.rrunning = true
		go s.commitRemovals()
	}
	s.rmu.Unlock()
	<-g.done
	return g.err
}

// removals is one group commit of Delivered.
type removals struct {
	ids  []string
	done chan struct{}
	err  error
}

// commitRemovals commits groups of removals until none is waiting.
func (s *Bolt) commitRemovals() {
	for {
		s.rmu.Lock()
		g := s.rnext
		s.rnext = nil
		if g == nil {
			s.rrunning = false
			s.rmu.Unlock()
			return
		}
		s.rmu.Unlock()
		n := 0
		g.err = s.db.Update(func(tx *bolt.Tx) error {
			n = 0
			for _, id := range g.ids {
				removed, err := removeEvent(tx, id)
				if err != nil {
					return err
				}
				if removed {
					n++
				}
			}
			return nil
		})
		if g.err == nil {
			s.pending.Add(-int64(n))
		}
		close(g.done)
	}
}

// Reschedule implements Outbox.
func (s *Bolt) Reschedule(_ context.Context, e Event) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if ok, err := removeEvent(tx, e.ID); err != nil || !ok {
			return err
		}
		return putEvent(tx, e)
	})
}

// Bury implements Outbox.
func (s *Bolt) Bury(_ context.Context, e Event) error {
	var removed bool
	err := s.db.Update(func(tx *bolt.Tx) (err error) {
		if removed, err = removeEvent(tx, e.ID); err != nil || !removed {
			return err
		}
		v, err := json.Marshal(e)
		if err != nil {
			return err
		}
		return tx.Bucket(bDead).Put(timeKey(e.At, []byte(e.ID)), v)
	})
	if err == nil && removed {
		s.pending.Add(-1)
		s.dead.Add(1)
	}
	return err
}

// DeadLetters implements Outbox.
func (s *Bolt) DeadLetters(_ context.Context, limit int) ([]Event, error) {
	var out []Event
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bDead).Cursor()
		for k, v := c.First(); k != nil && len(out) < limit; k, v = c.Next() {
			var e Event
			if err := json.Unmarshal(v, &e); err != nil {
				return err
			}
			out = append(out, e)
		}
		return nil
	})
	return out, err
}

// Revive implements Outbox.
func (s *Bolt) Revive(_ context.Context, ids []string, now int64) (int, error) {
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	n := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		n = 0
		c := tx.Bucket(bDead).Cursor()
		for k, v := c.First(); k != nil; {
			if len(want) > 0 && !want[string(k[8:])] {
				k, v = c.Next()
				continue
			}
			var e Event
			if err := json.Unmarshal(v, &e); err != nil {
				return err
			}
			e.Attempts, e.NextAt, e.LastError = 0, now, ""
			k = append([]byte(nil), k...) // k points into the page that Delete changes
			if err := putEvent(tx, e); err != nil {
				return err
			}
			if err := c.Delete(); err != nil {
				return err
			}
			n++
			k, v = c.Seek(k) // Delete moves the cursor; re-seek past the deleted key
		}
		return nil
	})
	if err == nil {
		s.pending.Add(int64(n))
		s.dead.Add(-int64(n))
	}
	return n, err
}

// OutboxStats implements Outbox.
func (s *Bolt) OutboxStats(context.Context) (int, int, error) {
	return int(s.pending.Load()), int(s.dead.Load()), nil
}

var _ Store = (*Bolt)(nil)

// Hasten implements Hastener: every queued event of zone whose next attempt
// lies after now becomes due at now.
func (s *Bolt) Hasten(_ context.Context, zone string, now int64) (int, error) {
	n := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		n = 0
		var later []Event
		c := tx.Bucket(bOutbox).Cursor()
		for k, v := c.Seek(timeKey(now + 1)); k != nil; k, v = c.Next() {
			var e Event
			if err := json.Unmarshal(v, &e); err != nil {
				return err
			}
			if e.Zone == zone {
				later = append(later, e)
			}
		}
		for _, e := range later {
			if _, err := removeEvent(tx, e.ID); err != nil {
				return err
			}
			e.NextAt = now
			if err := putEvent(tx, e); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

var _ Hastener = (*Bolt)(nil)
