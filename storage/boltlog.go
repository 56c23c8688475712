package storage

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"maps"
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
// rewritten with them merged in, or deleted).
//
// A fold writes a marker instead of a reset per session it folded: a
// value of two reset entries, of the first and the last ID it folded in one
// transaction (lo and hi), whose requests field holds markMagic (a reset
// has 0 there) and whose identity field holds upto, the key of the last
// value the fold began after. It drops every ID from lo to hi whose entry
// was last set by a value up to upto: the fold wrote that activity into the
// records (a reset per session made a range fold's log as large as the
// activity it folded). An entry set after upto stays: the fold merged it
// too, but it is the activity of a flush the fold did not begin after. An
// idlegate from before markers reads one as the two resets it looks like;
// the entries it does not drop then merge into records that hold them. The
// entries are replayed in key order, so the log's state at any commit is
// what the in-memory index held after that commit.
//
// Files written before the identity have values of 28-byte entries (no
// tag, no identity; a value of n of them is 28n bytes, never 36m+1).
// Such an entry was logged only after its record was read and matched, so
// it applies to the record it meets.

const (
	logEntry   = 16 + 8 + 4 + 8
	logEntryV1 = 16 + 8 + 4
	logTag     = 2
	markSize   = 1 + 2*logEntry
	markMagic  = 0x6d61726b // "mark"
	logReset   = math.MinInt64
	foldChunk  = 8192 // sessions written per fold transaction
	foldParts  = 16   // ranges of the ID space a fold may fold one at a time
)

// partOf is the range of the ID space id is in. IDs are HMACs: the ranges
// hold alike shares of a zone's sessions.
func partOf(id idletrack.ID) int { return int(id[0] >> 4) }

var bLog = []byte("l")

// logEnt is the unfolded logged activity of one session.
type logEnt struct {
	last int64
	req  uint32
	// seq is the key of the log value that last set the entry (the low 32
	// bits: a key a second takes 136 years to wrap). A fold drops only the
	// entries set before it began (see markMagic).
	seq uint32
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
func identity(s idletrack.Session) uint64 { return identityOf(s.StartedAt, s.LoginAt, s.User) }

// identityOf is identity of a session's start, login and user, the user
// as a string or as the bytes of an encoded record.
func identityOf[U string | []byte](start, login int64, user U) uint64 {
	h := mix64(uint64(start) ^ 0x9e3779b97f4a7c15)
	h = mix64(h ^ uint64(login))
	u := user
	for ; len(u) >= 8; u = u[8:] {
		h = mix64(h ^ (uint64(u[0]) | uint64(u[1])<<8 | uint64(u[2])<<16 | uint64(u[3])<<24 |
			uint64(u[4])<<32 | uint64(u[5])<<40 | uint64(u[6])<<48 | uint64(u[7])<<56))
	}
	var t uint64
	for i := len(u) - 1; i >= 0; i-- {
		t = t<<8 | uint64(u[i])
	}
	return mix64(h^t^uint64(len(user))<<56) | 1
}

func mix64(x uint64) uint64 {
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// belongs reports whether e is activity of a record of identity ident.
func (e logEnt) belongs(ident uint64) bool { return e.ident == 0 || e.ident == ident }

// apply raises s to e if e belongs to it.
func (e logEnt) apply(s *idletrack.Session) {
	if e.belongs(identity(*s)) {
		s.LastActivity = max(s.LastActivity, e.last)
		s.Requests = max(s.Requests, e.req)
	}
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
	idx     logIndex // unfolded activity per session
	values  int      // values in the log bucket
	entries int      // entries in them (resets included)
	seq     uint64   // key of the last value
	// clean[p] is a key up to which no value holds activity of range p
	// that idx does not owe to later values: once every range is clean up
	// to c, the values up to c go. It starts at 0 at open.
	clean [foldParts]uint64
}

func newZoneLog() *zoneLog { return &zoneLog{idx: newLogIndex()} }

// logIndex is the unfolded activity of a zone's sessions, a map per range
// of the ID space (partOf): a fold of one range walks only its map, and its
// lookups stay in a 16th of the memory (at 256k sessions the one map was
// 12 MB, and the fold's lookups in it missed the CPU's caches).
type logIndex [foldParts]map[idletrack.ID]logEnt

func newLogIndex() logIndex {
	var x logIndex
	for p := range x {
		x[p] = map[idletrack.ID]logEnt{}
	}
	return x
}

func (x logIndex) get(id idletrack.ID) (logEnt, bool) {
	e, ok := x[partOf(id)][id]
	return e, ok
}

func (x logIndex) put(id idletrack.ID, e logEnt) { x[partOf(id)][id] = e }
func (x logIndex) drop(id idletrack.ID)          { delete(x[partOf(id)], id) }

// len is the number of sessions in the index.
func (x logIndex) len() int {
	n := 0
	for _, m := range x {
		n += len(m)
	}
	return n
}

func (x logIndex) clear() {
	for _, m := range x {
		clear(m)
	}
}

func (x logIndex) clone() logIndex {
	for p, m := range x {
		x[p] = maps.Clone(m)
	}
	return x
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
// sessions, 12-21 MB (47-80 bytes each as the maps grow); it holds only
// sessions active since their range was folded, so a small zone never gets
// near it. The byte bound (16 MiB of entries) bounds the log in the file
// and its replay at open.
//
// A full index folds one range of the ID space, the one holding most
// sessions (see due): a 16th of the pages, for the range that gathered
// sessions longest. Under even activity the index then stays between
// 15/17 of its bound and the bound, and a range fold takes 2/17 of it, so
// a folded session costs 0.53 of the pages it cost when a fold took the
// whole index (1M sessions, 300 dirty a flush, folds in their steady
// state, the two builds in turn within the hour: 8.7 and 9.5 µs → 6.0 and
// 6.6 µs CPU per dirty session). A value stays until every range is
// folded after it, about a round of 16 folds, so the log holds about
// twice the index in entries.
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

// logEntries returns the number of entries in a log value (0 for a
// marker), or -1 if it is not one.
func logEntries(v []byte) int {
	switch {
	case len(v)%logEntryV1 == 0:
		return len(v) / logEntryV1
	case isMark(v):
		return 0
	case len(v)%logEntry == 1 && v[0] == logTag:
		return len(v) / logEntry
	}
	return -1
}

// isMark reports whether v is a marker.
func isMark(v []byte) bool {
	return len(v) == markSize && v[0] == logTag && int64(binary.BigEndian.Uint64(v[17:])) == logReset && binary.BigEndian.Uint32(v[25:]) == markMagic
}

// logMark is a fold's marker (see markMagic).
type logMark struct {
	lo, hi idletrack.ID
	upto   uint64 // it drops entries set by values up to this key
	at     uint64 // its own key
}

func appendMark(b []byte, lo, hi idletrack.ID, upto uint64) []byte {
	b = appendLogEntry(b, lo, logReset, markMagic, upto)
	return appendLogEntry(b, hi, logReset, markMagic, upto)
}

func decodeMark(at uint64, v []byte) logMark {
	m := logMark{upto: binary.BigEndian.Uint64(v[29:]), at: at}
	copy(m.lo[:], v[1:])
	copy(m.hi[:], v[1+logEntry:])
	return m
}

// drops reports whether m drops id's entry e (set before m).
func (m logMark) drops(id idletrack.ID, e logEnt) bool {
	return e.seq <= uint32(m.upto) && bytes.Compare(id[:], m.lo[:]) >= 0 && bytes.Compare(id[:], m.hi[:]) <= 0
}

// replayer rebuilds an index from a log, value by value in key order.
type replayer struct {
	idx   logIndex
	marks [foldParts][]logMark // the markers seen, by range, in key order
}

// value replays the value at key seq.
func (r *replayer) value(seq uint64, v []byte) error {
	if logEntries(v) < 0 {
		return fmt.Errorf("activity log value of %d bytes: bad encoding", len(v))
	}
	if isMark(v) {
		m := decodeMark(seq, v)
		for p := partOf(m.lo); p <= partOf(m.hi); p++ {
			r.marks[p] = append(r.marks[p], m)
		}
		return nil
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
			r.idx.drop(id)
			continue
		}
		n := logEnt{last: last, req: binary.BigEndian.Uint32(v[24:]), seq: uint32(seq)}
		if size == logEntry {
			n.ident = binary.BigEndian.Uint64(v[28:])
		}
		if e, ok := r.idx.get(id); ok && !r.dropped(id, e) {
			n = e.then(n)
		}
		r.idx.put(id, n)
	}
	return nil
}

// dropped reports whether a marker after e was set drops it.
func (r *replayer) dropped(id idletrack.ID, e logEnt) bool {
	ms := r.marks[partOf(id)]
	for i := len(ms) - 1; i >= 0 && uint32(ms[i].at) > e.seq; i-- {
		if ms[i].drops(id, e) {
			return true
		}
	}
	return false
}

// finish applies the markers to the entries set last before them.
func (r *replayer) finish() {
	for _, m := range r.idx {
		for id, e := range m {
			if r.dropped(id, e) {
				delete(m, id)
			}
		}
	}
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
			zl := newZoneLog()
			r := replayer{idx: zl.idx}
			if err := l.ForEach(func(k, v []byte) error {
				if len(k) != 8 {
					return fmt.Errorf("activity log: bad key")
				}
				zl.values++
				zl.entries += max(logEntries(v), 0)
				zl.seq = binary.BigEndian.Uint64(k)
				return r.value(zl.seq, v)
			}); err != nil {
				return err
			}
			r.finish()
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
	over map[idletrack.ID]ovEnt // changed index entries
	val  []byte                 // the log value to append
	seq  uint64                 // the key val was appended under (once update has, if val is not empty)
	idx  logIndex               // the committed index (nil maps: none yet)
	b    zoneBuckets            // the zone's buckets in this transaction, once looked up
	// A fold deleted values of the log: kept is what the log holds now,
	// clean the zoneLog's clean once it commits.
	folded bool
	kept   logCount
	clean  [foldParts]uint64
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

// plus is what n and o hold together.
func (n logCount) plus(o logCount) logCount {
	n.values, n.entries = n.values+o.values, n.entries+o.entries
	n.empty = n.values == 0
	return n
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
	return l.idx.get(id)
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
		l.over[id] = ovEnt{reset: true}
		l.val = appendLogEntry(l.val, id, logReset, 0, 0)
	}
}

// indexFull reports whether zone's index may not grow.
func (w *wtx) indexFull(zone string) bool {
	l := w.zone(zone)
	return len(l.over)+l.idx.len() >= w.s.limits.capIndex
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
	changed, frames := false, 0
	for zone, l := range w.logs {
		changed = changed || l.changesIndex()
		if len(l.val) == 0 {
			continue
		}
		z, err := w.buckets(zone)
		if err != nil {
			return err
		}
		l.seq = z.l.Sequence()
		if zl := s.logs[zone]; zl != nil {
			l.seq = max(l.seq, zl.seq) // the journal's keys are not in the bucket's sequence yet
		}
		l.seq++
		frames += frameSize(zone, len(l.val))
	}
	// A transaction that only logs activity goes to the journal, if it
	// fits.
	j := s.jr
	journaled := j != nil && !j.broken && frames > 0 && frames <= journalMaxFrame && wroteNothing(tx)
	evacuated := false
	if journaled && !j.room(frames) {
		// The journal is full: this transaction moves its values into the
		// log buckets, and the journal starts over once it commits.
		fr, err := j.frames()
		if err != nil {
			s.breakJournal(err)
			return err
		}
		if err := evacuate(tx, fr); err != nil {
			return err
		}
		journaled, evacuated = false, true
	}
	if journaled {
		j.begin()
		for zone, l := range w.logs {
			if len(l.val) > 0 {
				j.add(zone, l.seq, l.val)
			}
		}
		if err := j.commit(); err != nil {
			s.breakJournal(err)
			return err
		}
		committed = true
		tx.Rollback() // it wrote nothing
		// The journal's values change no bbolt snapshot: the index
		// matches every reader's, so applied and inflight stay.
		s.imu.Lock()
		defer s.imu.Unlock()
		defer w.keepSpare()
		s.applyIndex(w)
		return nil
	}
	for _, l := range w.logs {
		if len(l.val) == 0 {
			continue
		}
		z := l.b
		if err := z.l.SetSequence(l.seq); err != nil {
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
	if evacuated && err == nil {
		if rerr := j.restart(); rerr != nil {
			s.breakJournal(rerr)
		}
	}
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
	s.applyIndex(w)
	return nil
}

// wroteNothing reports whether tx has written nothing yet: bbolt
// materialises a node for every write, and none for reads.
func wroteNothing(tx *bolt.Tx) bool {
	st := tx.Stats()
	return st.GetNodeCount() == 0
}

// applyIndex applies a committed transaction's changes to the in-memory
// log state (under imu).
func (s *Bolt) applyIndex(w *wtx) {
	for zone, l := range w.logs {
		if !l.changesIndex() {
			continue
		}
		zl := s.logs[zone]
		if zl == nil {
			zl = newZoneLog()
			s.logs[zone] = zl
		}
		for id, o := range l.over {
			if o.reset {
				zl.idx.drop(id)
			} else {
				o.seq = uint32(l.seq)
				zl.idx.put(id, o.logEnt)
			}
		}
		if l.folded {
			zl.values, zl.entries, zl.clean = l.kept.values, l.kept.entries, l.clean
			if l.kept.empty {
				zl.idx.clear()
			}
		}
		if len(l.val) > 0 {
			zl.values++
			zl.entries += logEntries(l.val)
			zl.seq = l.seq
		}
	}
}

// breakJournal stops writing to the journal after an error writing it:
// flushes commit to bbolt from then on. What it holds stays readable; Close,
// or the next open, moves it into the log buckets.
func (s *Bolt) breakJournal(err error) {
	s.jr.broken = true
	if s.journalErr != nil {
		s.journalErr(fmt.Errorf("activity journal %s: %w; flushes commit to the bbolt file", s.jr.path, err))
	}
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

// due reports whether zl should be folded, and which range: the one
// holding most sessions when the index is full (a range is a 16th of the
// session bucket's pages, so a fold of the fullest rewrites fewest pages per
// session), or the one that keeps the oldest values when the log is (its
// fold lets them go). -1 folds nothing but what the log lets go.
func (l logLimits) due(zl *zoneLog) (part int, ok bool) {
	switch {
	case zl.idx.len() >= l.foldIndex:
		part = 0
		for p, m := range zl.idx {
			if len(m) > len(zl.idx[part]) {
				part = p
			}
		}
		return part, true
	case zl.values >= l.foldValues || zl.entries*logEntry >= l.foldBytes:
		part = -1
		for p, m := range zl.idx {
			if len(m) > 0 && (part < 0 || zl.clean[p] < zl.clean[part]) {
				part = p
			}
		}
		return part, true
	}
	return 0, false
}

// foldDue reports whether a zone's log should be folded.
func (s *Bolt) foldDue() bool {
	_, _, ok := s.nextFold()
	return ok
}

// nextFold returns the zone and range to fold next, if a fold is due.
func (s *Bolt) nextFold() (zone string, part int, ok bool) {
	s.imu.RLock()
	defer s.imu.RUnlock()
	for name, zl := range s.logs {
		if part, ok := s.limits.due(zl); ok {
			return name, part, true
		}
	}
	return "", 0, false
}

// foldSteps bounds the folds one trigger runs: a range at a time, each a
// few transactions, until nothing is due; flushes trigger the rest.
const foldSteps = 2*foldParts + 2

func (s *Bolt) foldLoop() {
	defer close(s.foldDone)
	for {
		select {
		case <-s.stop:
			return
		case <-s.foldc:
			if err := s.foldDueParts(); err != nil {
				// The log stays; the next trigger tries again. Readers
				// are unaffected: they merge the log.
				if s.foldErr != nil {
					s.foldErr(err)
				}
			}
		}
	}
}

// foldDueParts folds a range at a time while a fold is due.
func (s *Bolt) foldDueParts() error {
	for range foldSteps {
		select {
		case <-s.stop:
			return nil
		default:
		}
		if ok, err := s.foldStep(); !ok || err != nil {
			return err
		}
	}
	return nil
}

// foldStep folds the range nextFold names, if a fold is due.
func (s *Bolt) foldStep() (bool, error) {
	zone, part, ok := s.nextFold()
	if !ok {
		return false, nil
	}
	return true, s.foldZone(zone, part)
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
		if err := s.foldZone(zone, foldAll); err != nil {
			return err
		}
	}
	return nil
}

// foldAll is foldZone's part for every range.
const foldAll = -2

// foldZone folds the sessions of one range of the ID space (partOf), or of
// every range (foldAll), or of none (-1), as the index holds them now; upto
// is the log's last key then. It folds in chunks of foldChunk sessions, one
// transaction each, so that writes of new sessions are not held up behind
// one long transaction. Each chunk writes its sessions' merged records in
// ID order (each leaf page is rewritten once), drops from the index those
// whose entry was set up to upto, and logs a marker that does the same at
// replay. The range is then clean up to upto, and so is every range whose
// index is empty; the last chunk deletes the values up to the key every
// range is clean to, and the markers they make moot.
func (s *Bolt) foldZone(zone string, part int) error {
	s.wmu.Lock()
	zl := s.logs[zone]
	upto := zl.seq
	clean := zl.clean
	var ids []idletrack.ID
	for p, m := range zl.idx {
		if part == foldAll || p == part || len(m) == 0 {
			clean[p] = upto
		}
		if part == foldAll || p == part {
			ids = slices.Grow(ids, len(m))
			for id := range m {
				ids = append(ids, id)
			}
		}
	}
	s.wmu.Unlock()
	if s.foldBegun != nil {
		s.foldBegun()
	}
	slices.SortFunc(ids, compareIDs)
	// The chunks' new record values and their writes. bbolt keeps what
	// Put is given until the commit, and no longer: each chunk reuses
	// what the last one held.
	var (
		vals []byte
		puts []foldPut
	)
	for {
		select {
		case <-s.stop:
			return nil
		default:
		}
		chunk := ids[:min(len(ids), foldChunk)]
		ids = ids[len(chunk):]
		last := len(ids) == 0
		if err := s.update(func(w *wtx) error {
			z, err := w.buckets(zone)
			if err != nil {
				return err
			}
			l := w.zone(zone)
			// The chunk's records are read in key order with one cursor,
			// then written: bbolt's cursor may not move across a Put.
			var (
				dropped [foldParts]int
				k, v    []byte
			)
			vals, puts = vals[:0], puts[:0]
			c := z.s.Cursor()
			for _, id := range chunk {
				e, ok := l.idx.get(id) // the fold is the transaction's only writer
				if !ok {
					continue // reset since
				}
				if k, v = near(c, k, v, id[:]); bytes.Equal(k, id[:]) {
					if !validRecord(v) {
						_, err := decodeRecord(k, v)
						return err
					}
					if e.belongs(recordIdentity(v)) {
						if cap(vals)-len(vals) < len(v) {
							// A new block; the one before stays with
							// the values already put from it.
							vals = make([]byte, 0, max(64<<10, len(v), 2*cap(vals)))
						}
						at := len(vals)
						vals = append(vals, v...)
						merged := vals[at:len(vals):len(vals)]
						raiseActivity(merged, e)
						puts = append(puts, foldPut{id, merged})
					}
				}
				if uint64(e.seq) <= upto {
					l.over[id] = ovEnt{reset: true}
					dropped[partOf(id)]++
				}
			}
			for _, p := range puts {
				if err := z.s.Put(w.keyOf(p.id), p.val); err != nil {
					return err
				}
			}
			mark := len(chunk) > 0
			if last {
				// A range this leaves empty is clean up to the last key.
				zl := w.s.logs[zone]
				for p, m := range zl.idx {
					if len(m) == dropped[p] {
						clean[p] = max(clean[p], zl.seq)
					}
				}
				c := slices.Min(clean[:])
				n, err := trimLog(z.l, c)
				if err != nil {
					return err
				}
				if j := w.s.jr; j != nil {
					n = n.plus(j.count(zone, c))
				}
				// The journal's values up to c are moot too (evacuate).
				if zb := w.tx.Bucket(zoneName(zone)); c > zb.Sequence() {
					if err := zb.SetSequence(c); err != nil {
						return err
					}
				}
				// What the fold dropped was set up to upto: if the
				// values up to upto are gone, no marker is needed.
				mark = mark && c < upto
				l.folded, l.kept, l.clean = true, n, clean
			}
			if mark {
				l.val = appendMark(l.val[:0], chunk[0], chunk[len(chunk)-1], upto)
			}
			return nil
		}); err != nil {
			return err
		}
		if last {
			return nil
		}
	}
}

// compareIDs orders IDs as bbolt orders their keys, eight bytes at a time
// (the fold's sort by bytes.Compare was a tenth of its CPU outside its
// syscalls at 1M sessions).
func compareIDs(a, b idletrack.ID) int {
	if c := cmp.Compare(binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(b[:8])); c != 0 {
		return c
	}
	return cmp.Compare(binary.BigEndian.Uint64(a[8:]), binary.BigEndian.Uint64(b[8:]))
}

// foldPut is a record a fold chunk writes.
type foldPut struct {
	id  idletrack.ID
	val []byte
}

// near moves c, at key k (nil before its first move), to the first key at
// or after key, with a few Next calls when it is close (a fold writes many
// records of each page), else with a Seek from the root.
func near(c *bolt.Cursor, k, v, key []byte) ([]byte, []byte) {
	if k != nil {
		for range 8 {
			if bytes.Compare(k, key) >= 0 {
				return k, v
			}
			if k, v = c.Next(); k == nil {
				return nil, nil
			}
		}
		if bytes.Compare(k, key) >= 0 {
			return k, v
		}
	}
	return c.Seek(key)
}

// trimLog deletes the log's values up to key c, which hold nothing any
// range needs, and the markers that drop only what such values set. It
// returns what the log holds then.
func trimLog(l *bolt.Bucket, c uint64) (logCount, error) {
	var (
		moot [][]byte
		n    logCount
	)
	cur := l.Cursor()
	for k, v := cur.First(); k != nil; k, v = cur.Next() {
		if binary.BigEndian.Uint64(k) <= c || isMark(v) && decodeMark(0, v).upto <= c {
			moot = append(moot, append([]byte(nil), k...))
			continue
		}
		n.values++
		n.entries += max(logEntries(v), 0)
	}
	for _, k := range moot {
		if err := l.Delete(k); err != nil {
			return n, err
		}
	}
	n.empty = n.values == 0
	return n, nil
}
