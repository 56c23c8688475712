package storage

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/idlegate/idlegate/idletrack"
)

// Bolt is the embedded store: one bbolt file, opened once per process.
//
// Layout. Bucket "meta" holds the HMAC key. Each zone has a bucket "z/<zone>"
// with sub-buckets:
//
//	s  sessions      ID -> record
//	a  aliases       old ID -> target ID, grace-until, forget-at
//	t  tombstones    ID -> until, reason
//	d  idle index    BE(last activity when indexed) ++ ID -> nil
//	b  abs index     BE(start) ++ ID -> nil
//	f  forget index  BE(forget-at) ++ kind ++ ID -> nil
//	l  activity log  BE(sequence) -> entries of ID, last activity, requests, identity (boltlog.go)
//
// Index keys start with big-endian Unix nanoseconds, so a cursor walks them
// in time order and a sweep or purge reads only what is due. The idle index
// is lazy: an entry is written when a session is created and moved only when
// a conditional end finds the session active since, so a flush of activity
// writes one key per session and never reorders the index.
//
// Activity log. A write that only advances the activity of a stored session
// (same start, login and user; last activity and requests no lower) does not
// rewrite its record: each Apply appends one value per zone to "l", holding
// all such sessions as 36-byte entries, so the 1 s flush writes a few
// sequential pages instead of one scattered leaf page per session. An entry
// whose last activity is math.MinInt64 resets the ID: earlier entries no
// longer apply, because its record was rewritten with them merged in or was
// deleted. Every other write (new session, login, user change, restart under
// the same ID, rotation, end) rewrites or deletes the record as before and
// resets the ID in the log. A session as stored is its record with the
// log's entries for it replayed on top (max of last activity, max of
// requests). The Bolt keeps that replay in memory per zone (an index of the
// unfolded sessions, rebuilt from the log at open), so reads cost one map
// lookup more. When a zone's index or log grows past its bounds (see
// logLimits) a background fold writes the records of the logged sessions of
// one 16th of the ID space once each, in ID order, in transactions of
// foldChunk sessions, and logs a marker that drops them from the log; a
// value goes once every 16th is folded after it. A file without "l"
// (written before the log) opens as is; the bucket is created on the first
// write to the zone.
//
// Activity journal. A flush whose transaction would write nothing but its
// log values appends them to <file>-activity instead, with one fdatasync
// and no bbolt commit (boltjournal.go); open, Close and a full journal
// move them into "l" under the keys they were given. The zone bucket's
// sequence is the key up to which the fold deleted the log's values: the
// journal's values up to it are moot.
//
// The outbox is bucket "outbox" (BE(next attempt) ++ event ID -> event),
// with "outbox_ids" (event ID -> BE(next attempt)) to find an event by ID,
// and "dead" (BE(event time) ++ event ID -> event) for dead letters.
type Bolt struct {
	db      *bolt.DB
	key     []byte
	pending atomic.Int64
	dead    atomic.Int64

	rmu      sync.Mutex // guards rnext and rrunning
	rnext    *removals  // Delivered calls waiting for the next commit
	rrunning bool       // commitRemovals is running

	// The activity log's in-memory state (boltlog.go). wmu serialises
	// writes of sessions with their index changes; imu guards logs against
	// those changes for readers, and the txids say which transaction
	// the index matches (applied, inflight).
	wmu      sync.Mutex
	imu      sync.RWMutex
	logs     map[string]*zoneLog
	applied  int // txid of the last commit whose index changes are applied
	inflight int // txid of a commit in flight that changes the index, or 0
	limits   logLimits
	spare    spareLog // for the next write transaction (wmu)
	foldc    chan struct{}
	stop     chan struct{}
	foldDone chan struct{}
	foldErr  func(error)
	// foldBegun, if set, runs once a fold has taken its snapshot of the
	// index, before its first chunk (tests: a flush in between).
	foldBegun func()
	// jr is the activity journal (boltjournal.go): wmu guards it.
	jr         *journal
	journalErr func(error)
}

// BoltOptions tune OpenBolt.
type BoltOptions struct {
	// LockTimeout is how long to wait for another process holding the file
	// (default DefaultLockTimeout).
	LockTimeout time.Duration
	// FoldError, if set, is called when a background fold of the activity
	// log into the session records fails. Nothing is lost: the log stays
	// and readers merge it; the next flush triggers another fold, and past
	// a bound activity is written to the records directly again.
	FoldError func(error)
	// JournalError, if set, is called when the activity journal beside the
	// file (see boltjournal.go) cannot be made or written. Nothing is lost:
	// flushes then commit to the bbolt file, as without a journal.
	JournalError func(error)
}

var (
	bMeta      = []byte("meta")
	bOutbox    = []byte("outbox")
	bOutboxIDs = []byte("outbox_ids")
	bDead      = []byte("dead")
	kKey       = []byte("key")
	kVersion   = []byte("version")
	bSessions  = []byte("s")
	bAliases   = []byte("a")
	bTombs     = []byte("t")
	bIdleIdx   = []byte("d")
	bAbsIdx    = []byte("b")
	bForgetIdx = []byte("f")
)

// pageSize is the bbolt page size of a new file; see OpenBolt.
const pageSize = 8 << 10

const (
	boltVersion = 1
	recVersion  = 1
	kindAlias   = 'a'
	kindTomb    = 't'
)

// OpenBolt opens (creating if needed) the bbolt file at path.
func OpenBolt(path string, o BoltOptions) (s *Bolt, err error) {
	if o.LockTimeout <= 0 {
		o.LockTimeout = DefaultLockTimeout
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("idlegate store: creating directory for %s: %w", path, err)
	}
	// bbolt may panic on a damaged file; turn that into an error that says
	// what to do instead of taking Caddy down or silently starting afresh.
	// A fault reading the mapped file becomes a panic too while opening.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	var db *bolt.DB
	defer func() {
		if r := recover(); r != nil {
			s, err = nil, damaged(path, fmt.Errorf("%v", r))
			if db != nil { // a panic past bbolt's open: its lock goes too
				func() {
					defer func() { recover() }()
					db.Close()
				}()
			}
		}
	}()
	rebuilds, err := checkBoltFile(path)
	if err != nil {
		return nil, damaged(path, err)
	}
	// Pages of 8 KiB (bbolt keeps the page size a file was created with):
	// at 1M sessions a fold of the activity log rewrites most leaf pages of
	// the session bucket, and bbolt's cost per page (one pwrite each, a
	// freelist entry, a node to build) outweighed the bytes; half as many
	// pages cut the flush's CPU per dirty session by a quarter. Larger
	// pages cut it further but make the sweep's scattered deletes write
	// more bytes per ended session (16 KiB: +10% CPU per end at 1M).
	//
	// The freelist is not written (NoFreelistSync, as etcd runs bbolt):
	// after a fold at 1M sessions it lists the ~24k pages the fold freed,
	// and every flush's commit sorted and wrote all of them, a fifth of the
	// flush's CPU per dirty session (BenchmarkBoltFlushDirty at 1M, 300
	// dirty: 18.8 µs → 15.1 µs). bbolt rebuilds it at open by walking the
	// file instead: the walk of the consistency check below, which it then
	// replaces (bbolt panics at the first damage it finds, and the recover
	// above reports it); checkBoltFile above makes sure that walk cannot
	// crash the process.
	db, err = bolt.Open(path, 0o600, &bolt.Options{
		Timeout:        o.LockTimeout,
		FreelistType:   bolt.FreelistMapType,
		NoFreelistSync: true,
		PageSize:       pageSize,
	})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("idlegate store: %s is locked by another process after waiting %s: "+
			"another Caddy is probably running with the same data directory; stop it, or give this one its own file with `store bolt <path>`",
			path, o.LockTimeout)
	}
	if errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS) {
		return nil, notWritable(path, err)
	}
	if err != nil {
		return nil, damaged(path, err)
	}
	s = &Bolt{db: db, foldErr: o.FoldError, journalErr: o.JournalError, limits: defaultLogLimits(), foldc: make(chan struct{}, 1), stop: make(chan struct{}), foldDone: make(chan struct{})}
	if err := s.init(); err != nil {
		db.Close()
		return nil, damaged(path, err)
	}
	if !rebuilds { // else bbolt's rebuild of the freelist was the check
		if err := s.check(); err != nil {
			db.Close()
			return nil, damaged(path, err)
		}
	}
	if err := s.openJournal(path); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.loadLogs(); err != nil {
		if s.jr != nil {
			s.jr.f.Close()
		}
		db.Close()
		return nil, damaged(path, err)
	}
	go s.foldLoop()
	return s, nil
}

// check walks every page once (bbolt's consistency check). bbolt trusts
// its pages: a damaged branch or leaf page is otherwise found only when a
// read reaches it, as a panic — in Provision, or later on the engine's
// goroutine, where it takes Caddy down in a crash loop. The walk costs
// about as much as loading the sessions, once per process.
func (s *Bolt) check() error {
	var first error
	err := s.db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() { // drain: Check's goroutine sends every error
			if first == nil {
				first = err
			}
		}
		return nil
	})
	if first != nil {
		return fmt.Errorf("consistency check: %w", first)
	}
	return err
}

// notWritable is the error for a file idlegate may not write. It is not
// damage: moving the file aside would forget every session for nothing.
func notWritable(path string, err error) error {
	return fmt.Errorf("idlegate store: %s is not writable: %w; idlegate keeps sessions, tombstones, queued webhooks and "+
		"its HMAC key there: make the file and its directory writable by the user Caddy runs as "+
		"(check owner and mode, `chattr -i`, a read-only mount), or choose another file with `store bolt <path>`", path, err)
}

func damaged(path string, err error) error {
	return fmt.Errorf("idlegate store: cannot open %s: %w; if the file is damaged, stop Caddy, move the file aside "+
		"(sessions and queued webhooks in it are then forgotten) or restore it from a backup, and start again", path, err)
}

func (s *Bolt) init() error {
	return s.db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bMeta)
		if err != nil {
			return err
		}
		if v := meta.Get(kVersion); v != nil && (len(v) != 1 || v[0] != boltVersion) {
			return fmt.Errorf("unknown layout version %v (this idlegate understands %d)", v, boltVersion)
		}
		if err := meta.Put(kVersion, []byte{boltVersion}); err != nil {
			return err
		}
		if k := meta.Get(kKey); len(k) == 32 {
			s.key = append([]byte(nil), k...)
		} else {
			s.key = make([]byte, 32)
			if _, err := rand.Read(s.key); err != nil {
				return err
			}
			if err := meta.Put(kKey, s.key); err != nil {
				return err
			}
		}
		for _, name := range [][]byte{bOutbox, bOutboxIDs, bDead} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		s.pending.Store(int64(tx.Bucket(bOutboxIDs).Stats().KeyN))
		s.dead.Store(int64(tx.Bucket(bDead).Stats().KeyN))
		return nil
	})
}

// Key implements Store.
func (s *Bolt) Key() []byte { return s.key }

// Shared implements Store: a bbolt file belongs to one process.
func (s *Bolt) Shared() bool { return false }

// Close implements Store. A fold in progress stops between two chunks; the
// log keeps what it did not fold.
func (s *Bolt) Close() error {
	select {
	case <-s.stop:
	default:
		close(s.stop)
		<-s.foldDone
	}
	s.wmu.Lock()
	jerr := s.closeJournal()
	s.wmu.Unlock()
	return errors.Join(s.db.Close(), jerr)
}

// zone returns the sub-buckets of zone, creating them in a write tx. l is
// nil in a read transaction on a file written before the activity log.
type zoneBuckets struct{ s, a, t, d, b, f, l *bolt.Bucket }

func zoneName(zone string) []byte { return append([]byte("z/"), zone...) }

func getZone(tx *bolt.Tx, zone string) (zoneBuckets, bool) {
	zb := tx.Bucket(zoneName(zone))
	if zb == nil {
		return zoneBuckets{}, false
	}
	return zoneBuckets{zb.Bucket(bSessions), zb.Bucket(bAliases), zb.Bucket(bTombs), zb.Bucket(bIdleIdx), zb.Bucket(bAbsIdx), zb.Bucket(bForgetIdx), zb.Bucket(bLog)}, true
}

func ensureZone(tx *bolt.Tx, zone string) (zoneBuckets, error) {
	if z, ok := getZone(tx, zone); ok && z.l != nil {
		return z, nil
	}
	zb, err := tx.CreateBucketIfNotExists(zoneName(zone))
	if err != nil {
		return zoneBuckets{}, err
	}
	var out [7]*bolt.Bucket
	for i, n := range [][]byte{bSessions, bAliases, bTombs, bIdleIdx, bAbsIdx, bForgetIdx, bLog} {
		if out[i], err = zb.CreateBucketIfNotExists(n); err != nil {
			return zoneBuckets{}, err
		}
	}
	return zoneBuckets{out[0], out[1], out[2], out[3], out[4], out[5], out[6]}, nil
}

// record is a stored session plus the time under which the idle index holds it.
type record struct {
	idletrack.Session
	idx int64
}

// A record's encoding: recVersion, then big-endian start, login, last
// activity, idle-index time (8 bytes each) and requests (4), then the user.
const (
	recStart    = 1
	recLogin    = 9
	recLast     = 17
	recIdx      = 25
	recRequests = 33
	recordSize  = 37 // without the user
)

func encodeRecord(r record) []byte {
	b := make([]byte, recordSize, recordSize+len(r.User))
	b[0] = recVersion
	binary.BigEndian.PutUint64(b[recStart:], uint64(r.StartedAt))
	binary.BigEndian.PutUint64(b[recLogin:], uint64(r.LoginAt))
	binary.BigEndian.PutUint64(b[recLast:], uint64(r.LastActivity))
	binary.BigEndian.PutUint64(b[recIdx:], uint64(r.idx))
	binary.BigEndian.PutUint32(b[recRequests:], r.Requests)
	return append(b, r.User...)
}

func decodeRecord(id []byte, b []byte) (record, error) {
	var r record
	if !validRecord(b) {
		return r, fmt.Errorf("session record %x: bad encoding", id[:8])
	}
	copy(r.ID[:], id)
	r.StartedAt = int64(binary.BigEndian.Uint64(b[recStart:]))
	r.LoginAt = int64(binary.BigEndian.Uint64(b[recLogin:]))
	r.LastActivity = int64(binary.BigEndian.Uint64(b[recLast:]))
	r.idx = int64(binary.BigEndian.Uint64(b[recIdx:]))
	r.Requests = binary.BigEndian.Uint32(b[recRequests:])
	r.User = string(b[recordSize:])
	return r, nil
}

func validRecord(b []byte) bool { return len(b) >= recordSize && b[0] == recVersion }

// recordIdentity is the identity of an encoded (valid) record, read in
// place.
func recordIdentity(b []byte) uint64 {
	return identityOf(int64(binary.BigEndian.Uint64(b[recStart:])), int64(binary.BigEndian.Uint64(b[recLogin:])), b[recordSize:])
}

// raiseActivity raises the last activity and requests of an encoded
// (valid) record to at least e's, in place.
func raiseActivity(b []byte, e logEnt) {
	binary.BigEndian.PutUint64(b[recLast:], uint64(max(e.last, int64(binary.BigEndian.Uint64(b[recLast:])))))
	binary.BigEndian.PutUint32(b[recRequests:], max(e.req, binary.BigEndian.Uint32(b[recRequests:])))
}

func timeKey(t int64, rest ...[]byte) []byte {
	n := 8
	for _, r := range rest {
		n += len(r)
	}
	k := make([]byte, 8, n)
	binary.BigEndian.PutUint64(k, uint64(t))
	for _, r := range rest {
		k = append(k, r...)
	}
	return k
}

func keyTime(k []byte) int64 { return int64(binary.BigEndian.Uint64(k)) }

func getRecord(z zoneBuckets, id idletrack.ID) (record, bool, error) { return getRecordKey(z, id[:]) }

// getRecordKey is getRecord with the ID as a key slice: bbolt's Get takes
// a slice, so an ID passed by value moves to the heap on every call; a
// write transaction passes its scratch key instead (wtx.keyOf).
func getRecordKey(z zoneBuckets, key []byte) (record, bool, error) {
	v := z.s.Get(key)
	if v == nil {
		return record{}, false, nil
	}
	r, err := decodeRecord(key, v)
	return r, err == nil, err
}

// putSession writes s. If it only advances the activity of the stored
// session, it goes to the activity log; otherwise the record is rewritten
// (with the logged activity merged in) and the ID reset in the log.
//
// The flush's common cases are decided without reading the record: a
// session whose activity was logged before under the same identity, and a
// session the store was given before (stored, see idletrack.Change.Stored),
// whose activity is logged under its identity and applies only if the
// record turns out to have it. At a million sessions the read was a sixth
// of the flush's CPU per dirty session (a search of a 420 MB B+tree).
func putSession(w *wtx, z zoneBuckets, zone string, s idletrack.Session, stored bool) error {
	ident := identity(s)
	e, logged := w.logged(zone, s.ID)
	if logged && e.ident == ident && s.Requests >= e.req {
		// Nothing to log unless s is past the entry; the entry applied
		// to the record leaves it at or past s otherwise.
		if s.LastActivity > e.last || s.Requests > e.req {
			w.logActivity(zone, s.ID, e, s.LastActivity, s.Requests, ident)
		}
		return nil
	}
	if stored && !logged && !w.indexFull(zone) {
		w.logActivity(zone, s.ID, e, s.LastActivity, s.Requests, ident)
		return nil
	}
	old, found, err := w.record(z, zone, s.ID)
	if err != nil {
		return err
	}
	if found && old.StartedAt == s.StartedAt && old.LoginAt == s.LoginAt && old.User == s.User && s.Requests >= old.Requests {
		if s.LastActivity <= old.LastActivity && s.Requests == old.Requests {
			return nil // nothing new
		}
		if logged || !w.indexFull(zone) {
			w.logActivity(zone, s.ID, e, s.LastActivity, s.Requests, ident)
			return nil
		}
	}
	defer w.reset(zone, s.ID)
	r := record{Session: s, idx: s.LastActivity}
	switch {
	case !found:
		if err := z.d.Put(timeKey(r.idx, s.ID[:]), nil); err != nil {
			return err
		}
		if err := z.b.Put(timeKey(s.StartedAt, s.ID[:]), nil); err != nil {
			return err
		}
	default:
		r.LastActivity = max(r.LastActivity, old.LastActivity)
		r.idx = old.idx                   // the lazy idle index keeps its entry
		if old.StartedAt != s.StartedAt { // a new logical session under the same ID
			if err := z.b.Delete(timeKey(old.StartedAt, s.ID[:])); err != nil {
				return err
			}
			if err := z.b.Put(timeKey(s.StartedAt, s.ID[:]), nil); err != nil {
				return err
			}
		}
	}
	// A copy of the ID for the key: were s's own bytes passed to bbolt,
	// s would move to the heap on every call, the flush's common case above
	// included.
	id := s.ID
	return z.s.Put(id[:], encodeRecord(r))
}

func deleteSession(z zoneBuckets, r record) error {
	if err := z.d.Delete(timeKey(r.idx, r.ID[:])); err != nil {
		return err
	}
	if err := z.b.Delete(timeKey(r.StartedAt, r.ID[:])); err != nil {
		return err
	}
	return z.s.Delete(r.ID[:])
}

// Sessions returns how many sessions zone holds, cheaply: bbolt keeps a
// count in every page header, so only the headers are read. The engine
// sizes a new zone's tracker with it before Load.
func (s *Bolt) Sessions(_ context.Context, zone string) (n int, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		if z, ok := getZone(tx, zone); ok {
			n = z.s.Stats().KeyN
		}
		return nil
	})
	return n, err
}

// Load implements Store. Sessions come with their logged activity merged.
func (s *Bolt) Load(_ context.Context, zone string, fn func(idletrack.Session), alias func(Alias)) error {
	var logged logIndex
	tx, err := s.view(func(logs map[string]*zoneLog) {
		if zl := logs[zone]; zl != nil && zl.idx.len() > 0 {
			logged = zl.idx.clone()
		}
	})
	if err != nil {
		return err
	}
	defer tx.Rollback()
	return func() error {
		z, ok := getZone(tx, zone)
		if !ok {
			return nil
		}
		if err := z.s.ForEach(func(k, v []byte) error {
			r, err := decodeRecord(k, v)
			if err != nil {
				return err
			}
			if e, ok := logged.get(r.ID); ok {
				e.apply(&r.Session)
			}
			fn(r.Session)
			return nil
		}); err != nil {
			return err
		}
		return z.a.ForEach(func(k, v []byte) error {
			a, err := decodeAlias(k, v)
			if err != nil {
				return err
			}
			alias(a)
			return nil
		})
	}()
}

func encodeAlias(a Alias) []byte {
	b := make([]byte, 32)
	copy(b, a.Target[:])
	binary.BigEndian.PutUint64(b[16:], uint64(a.GraceUntil))
	binary.BigEndian.PutUint64(b[24:], uint64(a.ForgetAt))
	return b
}

func decodeAlias(k, v []byte) (Alias, error) {
	var a Alias
	if len(v) != 32 || len(k) != 16 {
		return a, errors.New("alias record: bad encoding")
	}
	copy(a.Old[:], k)
	copy(a.Target[:], v)
	a.GraceUntil = int64(binary.BigEndian.Uint64(v[16:]))
	a.ForgetAt = int64(binary.BigEndian.Uint64(v[24:]))
	return a, nil
}

// Lookup implements Store.
func (s *Bolt) Lookup(_ context.Context, zone string, id idletrack.ID) (rec Record, err error) {
	var e logEnt
	var logged bool
	tx, err := s.view(func(logs map[string]*zoneLog) {
		if zl := logs[zone]; zl != nil {
			e, logged = zl.idx.get(id)
		}
	})
	if err != nil {
		return rec, err
	}
	defer tx.Rollback()
	err = func() error {
		// Only the sub-buckets the answer needs are opened: opening one
		// is a seek in the zone's bucket, and this runs on the request
		// path for every cookie value memory does not know.
		zb := tx.Bucket(zoneName(zone))
		if zb == nil {
			return nil
		}
		if r, found, err := getRecord(zoneBuckets{s: zb.Bucket(bSessions)}, id); err != nil || found {
			if logged {
				e.apply(&r.Session)
			}
			rec = Record{Kind: KindSession, Session: r.Session}
			return err
		}
		if v := zb.Bucket(bAliases).Get(id[:]); v != nil {
			a, err := decodeAlias(id[:], v)
			rec = Record{Kind: KindAlias, Alias: a}
			return err
		}
		if v := zb.Bucket(bTombs).Get(id[:]); len(v) >= 8 {
			rec = Record{Kind: KindTombstone, Until: keyTime(v), Reason: idletrack.Reason(v[8:])}
		}
		return nil
	}()
	return rec, err
}

// Apply implements Store.
func (s *Bolt) Apply(_ context.Context, b *Batch) ([]EndResult, error) {
	var results []EndResult
	var queued, err = 0, error(nil)
	err = s.update(func(wt *wtx) error {
		tx := wt.tx
		results, queued = results[:0], 0
		wt.hint = len(b.Sessions)
		for _, w := range b.Sessions {
			z, err := wt.buckets(w.Zone)
			if err != nil {
				return err
			}
			if err := putSession(wt, z, w.Zone, w.Session, w.Stored); err != nil {
				return err
			}
		}
		for _, w := range b.Rotations {
			z, err := wt.buckets(w.Zone)
			if err != nil {
				return err
			}
			moved := w.Session
			if old, found, err := wt.record(z, w.Zone, w.Old); err != nil {
				return err
			} else if found {
				if err := deleteSession(z, old); err != nil {
					return err
				}
				wt.reset(w.Zone, w.Old)
				if old.StartedAt == moved.StartedAt { // the stored activity carries
					moved.LastActivity = max(moved.LastActivity, old.LastActivity)
					moved.Requests = max(moved.Requests, old.Requests)
				}
			}
			if err := putSession(wt, z, w.Zone, moved, false); err != nil {
				return err
			}
			a := Alias{Old: w.Old, Target: w.Session.ID, GraceUntil: w.GraceUntil, ForgetAt: w.ForgetAt}
			if err := z.a.Put(w.Old[:], encodeAlias(a)); err != nil {
				return err
			}
			if err := z.f.Put(timeKey(w.ForgetAt, []byte{kindAlias}, w.Old[:]), nil); err != nil {
				return err
			}
			if err := moveMembers(tx, w.Zone, w.Old, w.Session.ID); err != nil {
				return err
			}
		}
		for _, w := range b.Members {
			if err := bindMember(tx, w); err != nil {
				return err
			}
		}
		for _, w := range b.Ends {
			res, evs, err := endSession(wt, w)
			if err != nil {
				return err
			}
			results = append(results, res)
			for _, e := range evs {
				if err := putEvent(tx, e); err != nil {
					return err
				}
				queued++
			}
		}
		for _, e := range b.Events {
			if err := putEvent(tx, e); err != nil {
				return err
			}
			queued++
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.pending.Add(int64(queued))
	if s.limits.background && s.foldDue() {
		select {
		case s.foldc <- struct{}{}:
		default:
		}
	}
	return results, nil
}

func endSession(wt *wtx, w EndWrite) (EndResult, []Event, error) {
	e := w.End
	z, err := wt.buckets(e.Zone)
	if err != nil {
		return EndResult{}, nil, err
	}
	id := e.Session.ID
	if v := z.t.Get(id[:]); v != nil {
		return EndResult{}, nil, nil // it ended before: exactly once
	}
	stored, found, err := wt.record(z, e.Zone, id)
	if err != nil {
		return EndResult{}, nil, err
	}
	if found {
		e.Session.LastActivity = max(e.Session.LastActivity, stored.LastActivity)
		e.Session.Requests = max(e.Session.Requests, stored.Requests)
		if e.Reason == idletrack.ReasonIdle || e.Reason == idletrack.ReasonAbsolute {
			if at, _ := e.Session.Deadline(&w.Policy); at > e.EndedAt {
				// Active since, as far as the store knows: move the index
				// entry and keep the session.
				cur := e.Session
				if err := z.d.Delete(timeKey(stored.idx, id[:])); err != nil {
					return EndResult{}, nil, err
				}
				if err := z.d.Put(timeKey(cur.LastActivity, id[:]), nil); err != nil {
					return EndResult{}, nil, err
				}
				if err := z.s.Put(id[:], encodeRecord(record{Session: cur, idx: cur.LastActivity})); err != nil {
					return EndResult{}, nil, err
				}
				wt.reset(e.Zone, id)
				return EndResult{Current: &cur}, nil, nil
			}
		}
		if err := deleteSession(z, stored); err != nil {
			return EndResult{}, nil, err
		}
		wt.reset(e.Zone, id)
	}
	if err := endMembers(wt.tx, e.Zone, id, w.tombstone(&e), w.TombstoneUntil); err != nil {
		return EndResult{}, nil, err
	}
	if w.tombstone(&e) {
		tv := make([]byte, 8, 8+len(e.Reason))
		binary.BigEndian.PutUint64(tv, uint64(w.TombstoneUntil))
		if err := z.t.Put(id[:], append(tv, e.Reason...)); err != nil {
			return EndResult{}, nil, err
		}
		if err := z.f.Put(timeKey(w.TombstoneUntil, []byte{kindTomb}, id[:]), nil); err != nil {
			return EndResult{}, nil, err
		}
	}
	var evs []Event
	if w.Events != nil {
		evs = w.Events(e)
	}
	return EndResult{Ended: true, End: e}, evs, nil
}

// Expiring implements Store.
func (s *Bolt) Expiring(_ context.Context, zone string, idleCutoff, absCutoff int64, limit int) ([]idletrack.ID, error) {
	var out []idletrack.ID
	err := s.db.View(func(tx *bolt.Tx) error {
		z, ok := getZone(tx, zone)
		if !ok {
			return nil
		}
		walk := func(b *bolt.Bucket, cutoff int64) {
			c := b.Cursor()
			for k, _ := c.First(); k != nil && len(out) < limit && keyTime(k) <= cutoff; k, _ = c.Next() {
				var id idletrack.ID
				copy(id[:], k[8:])
				out = append(out, id)
			}
		}
		walk(z.d, idleCutoff)
		if absCutoff > 0 {
			walk(z.b, absCutoff)
		}
		return nil
	})
	return out, err
}

// Purge implements Store. It removes at most 10000 entries per call so a
// write transaction stays short; call it again while it returns that many.
func (s *Bolt) Purge(_ context.Context, now int64) (int, error) {
	const limit = 10000
	n := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		n = 0
		return tx.ForEach(func(name []byte, zb *bolt.Bucket) error {
			if !bytes.HasPrefix(name, []byte("z/")) {
				return nil
			}
			z, _ := getZone(tx, string(name[2:]))
			c := z.f.Cursor()
			for k, _ := c.First(); k != nil && n < limit && keyTime(k) <= now; k, _ = c.First() {
				if len(k) != 8+1+16 {
					return fmt.Errorf("forget index: bad key")
				}
				target := z.t
				switch k[8] {
				case kindAlias:
					target = z.a
				case kindMember:
					target = zb.Bucket(bMembers)
				}
				if target != nil {
					if err := target.Delete(k[9:]); err != nil {
						return err
					}
				}
				if err := c.Delete(); err != nil {
					return err
				}
				n++
			}
			return nil
		})
	})
	return n, err
}

// --- outbox ---
