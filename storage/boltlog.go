package storage

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/idlegate/idlegate/idletrack"
)

// The activity log. A flush of activity appends one value per zone to the
// zone's "l" bucket instead of rewriting a scattered session record per
// session; the fold later writes each logged session's record once, in ID
// order. See the comment on Bolt for the layout.
//
// A log value is the byte logTag and a run of 36-byte entries: ID(16) ++
// BE(last activity)(8) ++ BE(requests)(4) ++ BE(identity)(8). An entry
// raises the last activity and request count of the ID's record to at least
// its own (max), if the record has the entry's identity (see identity): a
// flush logs the activity of a session the store was given before without
// reading its record (idletrack.Change.Stored), so an entry can meet a
// record it does not belong to (not written yet, or rewritten since), and
// then it does nothing. An entry whose last activity is math.MinInt64 is a
// reset: entries for the ID before it no longer apply (the record was
// rewritten with them merged in, or deleted). Entries are replayed in key
// order, so the log's state at any commit is exactly what the in-memory
// index held after that commit.
//
// Files written before the identity have values of 28-byte entries (no
// tag, no identity; a value of n of them is 28n bytes, never 36m+1). Such
// an entry was logged only after its record was read and matched, so it
// applies to the record it meets.

const (
	logEntry   = 16 + 8 + 4 + 8
	logEntryV1 = 16 + 8 + 4
	logTag     = 2
	logReset   = math.MinInt64
	foldChunk  = 8192 // sessions written per fold transaction
)

var bLog = []byte("l")

// logEnt is the unfolded logged activity of one session.
type logEnt struct {
	last int64
	req  uint32
	// ident is the identity (see identity) of the record this activity
	// belongs to, or 0 for an entry of an older file, which belongs to the
	// record it meets. Every rewrite or delete of the record resets the
	// entry, so a flush whose session has the entry's identity can log its
	// activity without reading the record.
	ident uint64
}

// identity fingerprints what a record's activity may not change: its start,
// login and user, 64 bits (splitmix64's finalizer over them, eight bytes
// at a time: a byte-at-a-time FNV-1a was 15% of the flush's CPU at 1M
// sessions). It is stored in the log, so it may depend neither on the
// process nor on the version (TestIdentityIsStable): an entry whose
// identity no longer matches its record is activity lost. It is never 0.
func identity(s idletrack.Session) uint64 {
	h := mix64(uint64(s.StartedAt) ^ 0x9e3779b97f4a7c15)
	h = mix64(h ^ uint64(s.LoginAt))
	u := s.User
	for ; len(u) >= 8; u = u[8:] {
		h = mix64(h ^ (uint64(u[0]) | uint64(u[1])<<8 | uint64(u[2])<<16 | uint64(u[3])<<24 |
			uint64(u[4])<<32 | uint64(u[5])<<40 | uint64(u[6])<<48 | uint64(u[7])<<56))
	}
	var t uint64
	for i := len(u) - 1; i >= 0; i-- {
		t = t<<8 | uint64(u[i])
	}
	return mix64(h^t^uint64(len(s.User))<<56) | 1
}

func mix64(x uint64) uint64 {
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// belongs reports whether e is activity of the record s.
func (e logEnt) belongs(s idletrack.Session) bool { return e.ident == 0 || e.ident == identity(s) }

// apply merges e into s if it belongs to it.
func (e logEnt) apply(s *idletrack.Session) {
	if e.belongs(*s) {
		e.merge(s)
	}
}

// merge raises s to e.
func (e logEnt) merge(s *idletrack.Session) {
	s.LastActivity = max(s.LastActivity, e.last)
	s.Requests = max(s.Requests, e.req)
}

// then returns the entry that stands once n is logged after e: n raised
// to e where both are of the same record, else n.
func (e logEnt) then(n logEnt) logEnt {
	if e.ident == 0 || e.ident == n.ident {
		n.last, n.req = max(e.last, n.last), max(e.req, n.req)
	}
	return n
}

// zoneLog is the in-memory state of one zone's log.
type zoneLog struct {
	idx     map[idletrack.ID]logEnt // unfolded activity per session
	values  int                     // values in the log bucket
	entries int                     // entries in them (resets included)
	seq     uint64                  // key of the last value
}

// logLimits bound the log and its index.
type logLimits struct {
	foldIndex  int // fold when a zone's index holds this many sessions
	foldValues int // or its log this many values
	foldBytes  int // or this many bytes of entries
	capIndex   int // beyond this, activity takes the rewrite path
	background bool
}

// A fold by values is a fold by time (one value per flush): 1800 values is
// 30 minutes at the default 1 s interval. A fold rewrites each folded
// record's page, and it empties the index, so a session's next flush reads
// its record again unless the engine says it is stored: folding every
// minute (60) tripled the flush's instructions per dirty session with 300
// dirty sessions per flush at 10k sessions, before stored sessions skipped
// the read (BenchmarkBoltFlushDirty under callgrind: 11.9k vs 4.6k).
//
// At a million sessions the fold's cost is the pages, not the sessions: a
// fold of 64k sessions spread over the session bucket's ~26k leaf pages
// rewrote ~24k of them, 0.37 page per folded session; one of 256k rewrites
// all of them, 0.1 page per session (BenchmarkBoltFlushDirty at 1M, 300
// dirty, CPU per dirty session, freelist not written: 15.1 µs → 8.8 µs).
// It takes the time bound as well: at 300 dirty sessions a second, 600
// values folded at 180k sessions. The index then holds up to 256k
// sessions, about 13 MB; it holds only sessions active since the last
// fold, so a small zone never gets near it. The byte bound (16 MiB of
// entries) bounds the log in the file and its replay at open.
func defaultLogLimits() logLimits {
	return logLimits{foldIndex: 256 << 10, foldValues: 1800, foldBytes: 16 << 20, capIndex: 512 << 10, background: true}
}

// appendLogEntry appends an entry to the log value b (starting it with
// its tag if it is empty).
func appendLogEntry(b []byte, id idletrack.ID, last int64, req uint32, ident uint64) []byte {
	if len(b) == 0 {
		b = append(b, logTag)
	}
	b = append(b, id[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(last))
	b = binary.BigEndian.AppendUint32(b, req)
	return binary.BigEndian.AppendUint64(b, ident)
}

// logEntries returns the number of entries in a log value, or -1 if it is
// not one.
func logEntries(v []byte) int {
	switch {
	case len(v)%logEntryV1 == 0:
		return len(v) / logEntryV1
	case len(v)%logEntry == 1 && v[0] == logTag:
		return len(v) / logEntry
	}
	return -1
}

// replay applies one log value to idx.
func replay(idx map[idletrack.ID]logEnt, v []byte) error {
	if logEntries(v) < 0 {
		return fmt.Errorf("activity log value of %d bytes: bad encoding", len(v))
	}
	size := logEntryV1
	if len(v)%logEntryV1 != 0 {
		size, v = logEntry, v[1:]
	}
	for ; len(v) > 0; v = v[size:] {
		var id idletrack.ID
		copy(id[:], v)
		last := int64(binary.BigEndian.Uint64(v[16:]))
		if last == logReset {
			delete(idx, id)
			continue
		}
		n := logEnt{last: last, req: binary.BigEndian.Uint32(v[24:])}
		if size == logEntry {
			n.ident = binary.BigEndian.Uint64(v[28:])
		}
		if e, ok := idx[id]; ok {
			n = e.then(n)
		}
		idx[id] = n
	}
	return nil
}

// loadLogs rebuilds every zone's index from its log, at open.
func (s *Bolt) loadLogs() error {
	s.logs = map[string]*zoneLog{}
	return s.db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, zb *bolt.Bucket) error {
			if !bytes.HasPrefix(name, []byte("z/")) {
				return nil
			}
			l := zb.Bucket(bLog)
			if l == nil {
				return nil
			}
			zl := &zoneLog{idx: map[idletrack.ID]logEnt{}}
			if err := l.ForEach(func(k, v []byte) error {
				if len(k) != 8 {
					return fmt.Errorf("activity log: bad key")
				}
				zl.values++
				zl.entries += max(logEntries(v), 0)
				zl.seq = binary.BigEndian.Uint64(k)
				return replay(zl.idx, v)
			}); err != nil {
				return err
			}
			s.logs[string(name[2:])] = zl
			return nil
		})
	})
}

// wtx is a write transaction on sessions: the bbolt transaction plus the
// changes it makes to the in-memory index, applied once it commits.
type wtx struct {
	s    *Bolt
	tx   *bolt.Tx
	logs map[string]*wlog // per zone: what this transaction logs
	hint int              // sessions the transaction is likely to log

	// The zone looked up last: a flush writes one zone's sessions in a row.
	curName string
	cur     *wlog

	key idletrack.ID // scratch key (keyOf)
}

// wlog is what a write transaction logs in one zone.
type wlog struct {
	over map[idletrack.ID]ovEnt  // changed index entries
	val  []byte                  // the log value to append
	seq  uint64                  // the key val was appended under (once update has, if val is not empty)
	idx  map[idletrack.ID]logEnt // the committed index (nil: none yet)
	b    zoneBuckets             // the zone's buckets in this transaction, once looked up
	// A fold deleted values of the log: kept is what the log holds now.
	folded bool
	kept   logCount
}

// changesIndex reports whether committing l changes the zone's in-memory
// log state. A value to append always comes with its index entries.
func (l *wlog) changesIndex() bool { return len(l.over) > 0 || l.folded }

// buckets returns zone's buckets, creating them on first use; a transaction
// looks them up once per zone.
func (w *wtx) buckets(zone string) (zoneBuckets, error) {
	l := w.zone(zone)
	if l.b.s == nil {
		b, err := ensureZone(w.tx, zone)
		if err != nil {
			return zoneBuckets{}, err
		}
		l.b = b
	}
	return l.b, nil
}

type logCount struct {
	values, entries int
	empty           bool // the log is empty: so is the index
}

type ovEnt struct {
	logEnt
	reset bool
}

// zone returns what the transaction logs in zone.
func (w *wtx) zone(zone string) *wlog {
	if w.cur != nil && zone == w.curName {
		return w.cur
	}
	l := w.logs[zone]
	if l == nil {
		if w.logs == nil {
			w.logs = map[string]*wlog{}
		}
		l = &wlog{over: w.s.spare.over, val: w.s.spare.val}
		w.s.spare = spareLog{}
		if l.over == nil {
			l.over = make(map[idletrack.ID]ovEnt, w.hint)
		}
		if zl := w.s.logs[zone]; zl != nil {
			l.idx = zl.idx
		}
		w.logs[zone] = l
	}
	w.curName, w.cur = zone, l
	return l
}

// logged returns the unfolded activity of id as this transaction sees it.
func (w *wtx) logged(zone string, id idletrack.ID) (logEnt, bool) {
	return w.zone(zone).logged(id)
}

func (l *wlog) logged(id idletrack.ID) (logEnt, bool) {
	if o, ok := l.over[id]; ok {
		return o.logEnt, !o.reset
	}
	e, ok := l.idx[id]
	return e, ok
}

// logActivity appends activity of id to the zone's log value. e is id's
// logged activity as logged just returned it (the zero logEnt when there
// is none); ident is the identity of the record it belongs to.
func (w *wtx) logActivity(zone string, id idletrack.ID, e logEnt, last int64, req uint32, ident uint64) {
	l := w.zone(zone)
	l.over[id] = ovEnt{logEnt: e.then(logEnt{last: last, req: req, ident: ident})}
	if l.val == nil || cap(l.val) < 1+w.hint*logEntry && len(l.val) == 0 {
		l.val = make([]byte, 0, 1+max(w.hint, 1)*logEntry)
	}
	l.val = appendLogEntry(l.val, id, last, req, ident)
}

// reset drops id's logged activity: its record was just rewritten with the
// activity merged in, or deleted.
func (w *wtx) reset(zone string, id idletrack.ID) {
	l := w.zone(zone)
	if _, ok := l.logged(id); ok {
		l.reset(id)
	}
}

// reset drops id's logged activity, which the caller knows is there.
func (l *wlog) reset(id idletrack.ID) {
	l.over[id] = ovEnt{reset: true}
	l.val = appendLogEntry(l.val, id, logReset, 0, 0)
}

// indexFull reports whether zone's index may not grow.
func (w *wtx) indexFull(zone string) bool {
	l := w.zone(zone)
	return len(l.over)+len(l.idx) >= w.s.limits.capIndex
}

// keyOf returns id as a key in the transaction's scratch buffer, valid
// until the next call (bbolt's Put copies keys; Get does not keep them).
func (w *wtx) keyOf(id idletrack.ID) []byte {
	w.key = id
	return w.key[:]
}

// record reads id's record with its logged activity merged in.
func (w *wtx) record(z zoneBuckets, zone string, id idletrack.ID) (record, bool, error) {
	r, found, err := getRecordKey(z, w.keyOf(id))
	if found {
		if e, ok := w.logged(zone, id); ok {
			e.apply(&r.Session)
		}
	}
	return r, found, err
}

// update runs fn in a write transaction on sessions. Such transactions are
// serialised with their index changes, so each sees the index as the
// previous one left it; readers see the index that matches their snapshot.
func (s *Bolt) update(fn func(w *wtx) error) (err error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	tx, err := s.db.Begin(true)
	if err != nil {
		return err
	}
	committed := false
	defer func() {
		if !committed {
			tx.Rollback()
		}
	}()
	w := &wtx{s: s, tx: tx}
	if err := fn(w); err != nil {
		return err
	}
	changed := false
	for zone, l := range w.logs {
		changed = changed || l.changesIndex()
		if len(l.val) == 0 {
			continue
		}
		z, err := w.buckets(zone)
		if err != nil {
			return err
		}
		if l.seq, err = z.l.NextSequence(); err != nil {
			return err
		}
		if err := z.l.Put(binary.BigEndian.AppendUint64(nil, l.seq), l.val); err != nil {
			return err
		}
	}
	txid := tx.ID()
	if changed {
		s.imu.Lock()
		s.inflight = txid
		s.imu.Unlock()
	}
	committed = true
	err = tx.Commit()
	if !changed {
		return err
	}
	s.imu.Lock()
	defer s.imu.Unlock()
	s.inflight = 0
	if err != nil {
		return err
	}
	s.applied = txid
	defer w.keepSpare()
	for zone, l := range w.logs {
		if !l.changesIndex() {
			continue
		}
		zl := s.logs[zone]
		if zl == nil {
			zl = &zoneLog{idx: map[idletrack.ID]logEnt{}}
			s.logs[zone] = zl
		}
		for id, o := range l.over {
			if o.reset {
				delete(zl.idx, id)
			} else {
				zl.idx[id] = o.logEnt
			}
		}
		if l.folded {
			zl.values, zl.entries = l.kept.values, l.kept.entries
			if l.kept.empty {
				clear(zl.idx)
			}
		}
		if len(l.val) > 0 {
			zl.values++
			zl.entries += logEntries(l.val)
			zl.seq = l.seq
		}
	}
	return nil
}

// spareLog is the overlay map and log buffer of a committed transaction,
// kept (under wmu) for the next one: the flush allocated both anew every
// second, and in Caddy the garbage, not the work, was most of what a dirty
// session cost (the collector scanning Caddy's heap more often).
type spareLog struct {
	over map[idletrack.ID]ovEnt
	val  []byte
}

// spareMax bounds what is kept: maps do not shrink.
const spareMax = 16 << 10

// keepSpare keeps one zone's overlay and log buffer for the next write
// transaction. It runs once the commit's index changes are applied: bbolt
// no longer holds the value, and nothing reads the overlay.
func (w *wtx) keepSpare() {
	for _, l := range w.logs {
		if len(l.over) <= spareMax && cap(l.val) <= spareMax*logEntry {
			clear(l.over)
			w.s.spare = spareLog{over: l.over, val: l.val[:0]}
			l.over, l.val = nil, l.val[:len(l.val):len(l.val)]
			return
		}
	}
}

// view begins a read transaction whose snapshot matches the index, and
// calls pick with the index under its read lock. A reader never waits for
// a commit's fsync: it retries only when it began between a commit and the
// index update that goes with it.
func (s *Bolt) view(pick func(logs map[string]*zoneLog)) (*bolt.Tx, error) {
	for {
		tx, err := s.db.Begin(false)
		if err != nil {
			return nil, err
		}
		r := tx.ID()
		s.imu.RLock()
		ok := s.applied <= r && (s.inflight == 0 || s.inflight > r)
		if ok {
			pick(s.logs)
		}
		s.imu.RUnlock()
		if ok {
			return tx, nil
		}
		tx.Rollback()
		time.Sleep(10 * time.Microsecond)
	}
}

// foldDue reports whether a zone's log should be folded.
func (s *Bolt) foldDue() bool {
	s.imu.RLock()
	defer s.imu.RUnlock()
	for _, zl := range s.logs {
		if len(zl.idx) >= s.limits.foldIndex || zl.values >= s.limits.foldValues || zl.entries*logEntry >= s.limits.foldBytes {
			return true
		}
	}
	return false
}

func (s *Bolt) foldLoop() {
	defer close(s.foldDone)
	for {
		select {
		case <-s.stop:
			return
		case <-s.foldc:
			if err := s.fold(); err != nil {
				// The log stays; the next trigger tries again. Readers
				// are unaffected: they merge the log.
				if s.foldErr != nil {
					s.foldErr(err)
				}
			}
		}
	}
}

// fold writes the logged activity of every zone into the session records
// and empties the logs.
func (s *Bolt) fold() error {
	s.imu.RLock()
	var zones []string
	for zone, zl := range s.logs {
		if zl.values > 0 {
			zones = append(zones, zone)
		}
	}
	s.imu.RUnlock()
	for _, zone := range zones {
		if err := s.foldZone(zone); err != nil {
			return err
		}
	}
	return nil
}

// foldZone folds in chunks of foldChunk sessions, one transaction each, so
// that writes of new sessions are not held up behind one long transaction.
// Each chunk writes its sessions' merged records in ID order (each leaf page
// is rewritten once) and resets them in the log. The last chunk deletes the
// values that were in the log when the fold began: every entry in them is
// then folded or reset.
func (s *Bolt) foldZone(zone string) error {
	s.wmu.Lock()
	zl := s.logs[zone]
	upto := zl.seq
	ids := make([]idletrack.ID, 0, len(zl.idx))
	for id := range zl.idx {
		ids = append(ids, id)
	}
	s.wmu.Unlock()
	slices.SortFunc(ids, func(a, b idletrack.ID) int { return bytes.Compare(a[:], b[:]) })
	own := map[uint64]bool{} // the values of resets this fold wrote
	for {
		select {
		case <-s.stop:
			return nil
		default:
		}
		chunk := ids[:min(len(ids), foldChunk)]
		ids = ids[len(chunk):]
		last := len(ids) == 0
		var wt *wtx
		if err := s.update(func(w *wtx) error {
			wt = w
			z, err := w.buckets(zone)
			if err != nil {
				return err
			}
			l := w.zone(zone)
			// The records' new values, one allocation for many: bbolt
			// keeps what Put is given until the commit.
			var vals []byte
			for _, id := range chunk {
				e, ok := l.logged(id)
				if !ok {
					continue // reset since
				}
				key := w.keyOf(id)
				r, found, err := getRecordKey(z, key)
				if err != nil {
					return err
				}
				if found && e.belongs(r.Session) {
					e.merge(&r.Session)
					if cap(vals)-len(vals) < recordSize+len(r.User) {
						vals = make([]byte, 0, max(64<<10, recordSize+len(r.User)))
					}
					at := len(vals)
					vals = appendRecord(vals, r)
					if err := z.s.Put(key, vals[at:len(vals):len(vals)]); err != nil {
						return err
					}
				}
				l.reset(id)
			}
			if !last {
				return nil
			}
			c := z.l.Cursor()
			for k, _ := c.First(); k != nil && binary.BigEndian.Uint64(k) <= upto; k, _ = c.First() {
				if err := c.Delete(); err != nil {
					return err
				}
			}
			// If nothing but this fold wrote to the log since it began,
			// its own resets have nothing left to reset: the log empties.
			var n logCount
			clean := true
			for k, v := c.First(); k != nil; k, v = c.Next() {
				n.values++
				n.entries += max(logEntries(v), 0)
				clean = clean && own[binary.BigEndian.Uint64(k)]
			}
			if clean {
				for k, _ := c.First(); k != nil; k, _ = c.First() {
					if err := c.Delete(); err != nil {
						return err
					}
				}
				n = logCount{empty: true}
				l.val = nil
			}
			l.folded, l.kept = true, n
			return nil
		}); err != nil {
			return err
		}
		if l := wt.logs[zone]; l != nil && len(l.val) > 0 {
			own[l.seq] = true
		}
		if last {
			return nil
		}
	}
}
