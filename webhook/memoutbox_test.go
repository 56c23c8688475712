package webhook

import (
	"cmp"
	"context"
	"slices"
	"sync"

	"github.com/idlegate/idlegate/storage"
)

// memOutbox is an in-memory storage.Outbox with the semantics of the real
// stores: Due is ordered by NextAt (then ID) and respects skip; Reschedule
// and Bury act on the event with the same ID. Errors can be injected.
type memOutbox struct {
	mu      sync.Mutex
	pending []storage.Event
	dead    []storage.Event
	dues    int // Due calls so far

	// failDue, failWrite: the next that many Due calls / writes fail.
	failDue, failWrite int
}

var errDisk = errorString("disk full")

type errorString string

func (e errorString) Error() string { return string(e) }

func (m *memOutbox) add(es ...storage.Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pending = append(m.pending, es...)
}

func (m *memOutbox) Due(ctx context.Context, now int64, limit int, skip func(id string) bool) ([]storage.Event, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.dues++
	if m.failDue > 0 {
		m.failDue--
		return nil, errDisk
	}
	sorted := slices.Clone(m.pending)
	slices.SortStableFunc(sorted, func(a, b storage.Event) int {
		return cmp.Or(cmp.Compare(a.NextAt, b.NextAt), cmp.Compare(a.ID, b.ID))
	})
	var out []storage.Event
	for _, e := range sorted {
		if len(out) == limit || e.NextAt > now {
			break
		}
		if skip != nil && skip(e.ID) {
			continue
		}
		e.Body = slices.Clone(e.Body)
		out = append(out, e)
	}
	return out, nil
}

func (m *memOutbox) write() error {
	if m.failWrite > 0 {
		m.failWrite--
		return errDisk
	}
	return nil
}

func (m *memOutbox) index(id string) int {
	return slices.IndexFunc(m.pending, func(e storage.Event) bool { return e.ID == id })
}

func (m *memOutbox) Delivered(ctx context.Context, e storage.Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.write(); err != nil {
		return err
	}
	if i := m.index(e.ID); i >= 0 {
		m.pending = slices.Delete(m.pending, i, i+1)
	}
	return nil
}

func (m *memOutbox) Reschedule(ctx context.Context, e storage.Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.write(); err != nil {
		return err
	}
	if i := m.index(e.ID); i >= 0 {
		p := &m.pending[i]
		p.Attempts, p.NextAt, p.LastError = e.Attempts, e.NextAt, e.LastError
	}
	return nil
}

func (m *memOutbox) Bury(ctx context.Context, e storage.Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.write(); err != nil {
		return err
	}
	if i := m.index(e.ID); i >= 0 {
		m.pending = slices.Delete(m.pending, i, i+1)
		m.dead = append(m.dead, e)
	}
	return nil
}

func (m *memOutbox) DeadLetters(ctx context.Context, limit int) ([]storage.Event, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.dead[:min(limit, len(m.dead))]), nil
}

func (m *memOutbox) Revive(ctx context.Context, ids []string, now int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	m.dead = slices.DeleteFunc(m.dead, func(e storage.Event) bool {
		if len(ids) > 0 && !slices.Contains(ids, e.ID) {
			return false
		}
		e.Attempts, e.NextAt, e.LastError = 0, now, ""
		m.pending = append(m.pending, e)
		n++
		return true
	})
	return n, nil
}

func (m *memOutbox) OutboxStats(ctx context.Context) (pending, dead int, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.pending), len(m.dead), nil
}

// get returns the pending event with the given ID.
func (m *memOutbox) get(id string) (storage.Event, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if i := m.index(id); i >= 0 {
		return m.pending[i], true
	}
	return storage.Event{}, false
}

func (m *memOutbox) counts() (pending, dead, dues int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.pending), len(m.dead), m.dues
}

var _ storage.Outbox = (*memOutbox)(nil)
