package storage

import (
	"encoding/binary"

	bolt "go.etcd.io/bbolt"

	"github.com/idlegate/idlegate/idletrack"
)

// EndConflicts reports how often s re-read sessions to end because another
// instance had written them since the read.
func EndConflicts(s *Redis) int64 { return s.conflicts.Load() }

// SetLogLimits sets when s folds its activity log and how many sessions its
// index may hold; background false leaves folding to Fold.
func SetLogLimits(s *Bolt, foldIndex, foldValues, capIndex int, background bool) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.limits = logLimits{foldIndex: foldIndex, foldValues: foldValues, foldBytes: 8 << 20, capIndex: capIndex, background: background}
}

// Fold folds every zone's activity log now.
func Fold(s *Bolt) error { return s.fold() }

// FoldDueParts folds as the background fold does once triggered: a range
// at a time while a fold is due.
func FoldDueParts(s *Bolt) error { return s.foldDueParts() }

// FoldStep folds the one range the background fold would fold next, if a
// fold is due, and reports whether one was.
func FoldStep(s *Bolt) (bool, error) { return s.foldStep() }

// LogParts returns how many sessions zone's index holds in each range of
// the ID space a fold folds one at a time.
func LogParts(s *Bolt, zone string) []int {
	s.imu.RLock()
	defer s.imu.RUnlock()
	if zl := s.logs[zone]; zl != nil {
		n := make([]int, foldParts)
		for p, m := range zl.idx {
			n[p] = len(m)
		}
		return n
	}
	return nil
}

// OnFoldBegun sets what runs once a fold has taken its snapshot of the
// index, before it writes anything (nil: nothing).
func OnFoldBegun(s *Bolt, fn func()) { s.foldBegun = fn }

// FoldDue reports whether a fold is due.
func FoldDue(s *Bolt) bool { return s.foldDue() }

// LogState returns how many sessions zone's log index holds and how many
// values its log bucket holds.
func LogState(s *Bolt, zone string) (indexed, values int) {
	s.imu.RLock()
	defer s.imu.RUnlock()
	if zl := s.logs[zone]; zl != nil {
		return zl.idx.len(), zl.values
	}
	return 0, 0
}

// RawSession reads id's record as written, without its logged activity.
func RawSession(s *Bolt, zone string, id idletrack.ID) (idletrack.Session, bool) {
	var out idletrack.Session
	var found bool
	s.db.View(func(tx *bolt.Tx) error {
		if z, ok := getZone(tx, zone); ok {
			r, f, _ := getRecord(z, id)
			out, found = r.Session, f
		}
		return nil
	})
	return out, found
}

// LogValues counts the values of zone's log on disk: in its log bucket,
// and in the journal above the zone's trim mark.
func LogValues(s *Bolt, zone string) int {
	n := 0
	s.db.View(func(tx *bolt.Tx) error {
		if z, ok := getZone(tx, zone); ok && z.l != nil {
			n = z.l.Stats().KeyN
			s.wmu.Lock()
			if s.jr != nil {
				n += s.jr.count(zone, tx.Bucket(zoneName(zone)).Sequence()).values
			}
			s.wmu.Unlock()
		}
		return nil
	})
	return n
}

// JournalValues counts the values in s's activity journal.
func JournalValues(s *Bolt) int {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	n := 0
	for _, vs := range s.jr.live {
		n += len(vs)
	}
	return n
}

// PutRawRecord overwrites id's record with raw bytes, as a damaged page
// would leave it.
func PutRawRecord(s *Bolt, zone string, id idletrack.ID, raw []byte) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		z, err := ensureZone(tx, zone)
		if err != nil {
			return err
		}
		return z.s.Put(id[:], raw)
	})
}

// PutLogValueV1 appends to zone's log a value as files written before the
// log held identities have them: 28-byte entries of ID, last activity and
// requests. The store must be reopened to see it.
func PutLogValueV1(s *Bolt, zone string, id idletrack.ID, last int64, req uint32) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		z, err := ensureZone(tx, zone)
		if err != nil {
			return err
		}
		seq, err := z.l.NextSequence()
		if err != nil {
			return err
		}
		v := append(id[:len(id):len(id)], make([]byte, 12)...)
		binary.BigEndian.PutUint64(v[16:], uint64(last))
		binary.BigEndian.PutUint32(v[24:], req)
		return z.l.Put(binary.BigEndian.AppendUint64(nil, seq), v)
	})
}

// CloseJournalFile closes the journal's file under s, so that its next
// write fails.
func CloseJournalFile(s *Bolt) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.jr.f.Close()
}

// HasJournal reports whether s writes an activity journal.
func HasJournal(s *Bolt) bool {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.jr != nil && !s.jr.broken
}
