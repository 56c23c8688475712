package storage

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"

	bolt "go.etcd.io/bbolt"

	"github.com/idlegate/idlegate/idletrack"
)

// The bbolt layout of members and of the cookie family (members.go), in the
// zone's bucket "z/<zone>", beside the buckets bolt.go lists:
//
//	m  members        member ID -> target ID ++ BE(set at) ++ flags ++ name
//	n  member index   target ID ++ member ID -> nil (a session's members)
//	c  family         "family" -> JSON []FamilyMember
//
// A session's end turns each of its members into an ended one: the index
// entry goes, and with a tombstone the member gets a forget-index entry
// (kind 'm') at the tombstone's time, so Purge removes both together;
// without one the member is deleted. A rotation moves the index entries
// and the members' target to the new ID.
var (
	bMembers   = []byte("m")
	bMemberIdx = []byte("n")
	bFamily    = []byte("c")
	kFamily    = []byte("family")
)

const (
	kindMember   = 'm'
	memberShared = 1 // flags: the value was bound to several sessions
)

type memberRec struct {
	target idletrack.ID
	at     int64
	flags  byte
	name   string
}

func encodeMember(m memberRec) []byte {
	b := make([]byte, 25, 25+len(m.name))
	copy(b, m.target[:])
	binary.BigEndian.PutUint64(b[16:], uint64(m.at))
	b[24] = m.flags
	return append(b, m.name...)
}

func decodeMember(v []byte) (memberRec, error) {
	var m memberRec
	if len(v) < 25 {
		return m, errors.New("member record: bad encoding")
	}
	copy(m.target[:], v)
	m.at = int64(binary.BigEndian.Uint64(v[16:]))
	m.flags = v[24]
	m.name = string(v[25:])
	return m, nil
}

// memberBuckets returns the zone's member buckets, creating them.
func memberBuckets(tx *bolt.Tx, zone string) (zb, m, n *bolt.Bucket, err error) {
	// Every sub-bucket of the zone exists once it does (readers rely on it).
	if _, err = ensureZone(tx, zone); err != nil {
		return
	}
	zb = tx.Bucket(zoneName(zone))
	if m, err = zb.CreateBucketIfNotExists(bMembers); err != nil {
		return
	}
	n, err = zb.CreateBucketIfNotExists(bMemberIdx)
	return
}

// membersOf returns the member IDs indexed under target.
func membersOf(n *bolt.Bucket, target idletrack.ID) []idletrack.ID {
	var out []idletrack.ID
	c := n.Cursor()
	for k, _ := c.Seek(target[:]); k != nil && bytes.HasPrefix(k, target[:]); k, _ = c.Next() {
		if len(k) == 32 {
			var id idletrack.ID
			copy(id[:], k[16:])
			out = append(out, id)
		}
	}
	return out
}

func memberIdxKey(target, member idletrack.ID) []byte {
	return append(append(make([]byte, 0, 32), target[:]...), member[:]...)
}

// bindMember carries out a MemberWrite.
func bindMember(tx *bolt.Tx, w MemberWrite) error {
	zb, m, n, err := memberBuckets(tx, w.Zone)
	if err != nil {
		return err
	}
	target := w.Target
	if a := zb.Bucket(bAliases); a != nil {
		for range 8 { // a rotated-away value: bind to the session's current ID
			v := a.Get(target[:])
			if len(v) != 32 {
				break
			}
			copy(target[:], v)
		}
	}
	if v := m.Get(w.Member[:]); v != nil {
		cur, err := decodeMember(v)
		if err != nil {
			return err
		}
		if cur.flags&memberShared != 0 || cur.target == target {
			return nil
		}
		// A second session was given the same value: it is no one's
		// credential. (A forget-index entry of an ended target stays and
		// removes the record in time.)
		if err := n.Delete(memberIdxKey(cur.target, w.Member)); err != nil {
			return err
		}
		cur.flags |= memberShared
		return m.Put(w.Member[:], encodeMember(cur))
	}
	rec := memberRec{target: target, at: w.At, name: w.Name}
	if t := zb.Bucket(bTombs); t != nil {
		if tv := t.Get(target[:]); len(tv) >= 8 {
			// The session has ended already: the member ends with it.
			if err := m.Put(w.Member[:], encodeMember(rec)); err != nil {
				return err
			}
			f, err := zb.CreateBucketIfNotExists(bForgetIdx)
			if err != nil {
				return err
			}
			return f.Put(timeKey(keyTime(tv), []byte{kindMember}, w.Member[:]), nil)
		}
	}
	if ids := membersOf(n, target); len(ids) >= MaxMembers {
		// Full: the oldest value of the same name gives way, else the oldest.
		var victim idletrack.ID
		best, bestSame := int64(0), false
		for i, id := range ids {
			v, err := decodeMember(m.Get(id[:]))
			if err != nil {
				return err
			}
			same := v.name == w.Name
			if i == 0 || same && !bestSame || same == bestSame && v.at < best {
				victim, best, bestSame = id, v.at, same
			}
		}
		if err := m.Delete(victim[:]); err != nil {
			return err
		}
		if err := n.Delete(memberIdxKey(target, victim)); err != nil {
			return err
		}
	}
	if err := m.Put(w.Member[:], encodeMember(rec)); err != nil {
		return err
	}
	return n.Put(memberIdxKey(target, w.Member), nil)
}

// endMembers ends the members of session id: with a tombstone they last
// until it is forgotten, without one they are deleted.
func endMembers(tx *bolt.Tx, zone string, id idletrack.ID, tomb bool, until int64) error {
	zb := tx.Bucket(zoneName(zone))
	if zb == nil || zb.Bucket(bMemberIdx) == nil {
		return nil
	}
	m, n := zb.Bucket(bMembers), zb.Bucket(bMemberIdx)
	for _, mid := range membersOf(n, id) {
		if err := n.Delete(memberIdxKey(id, mid)); err != nil {
			return err
		}
		if !tomb {
			if err := m.Delete(mid[:]); err != nil {
				return err
			}
			continue
		}
		f, err := zb.CreateBucketIfNotExists(bForgetIdx)
		if err != nil {
			return err
		}
		if err := f.Put(timeKey(until, []byte{kindMember}, mid[:]), nil); err != nil {
			return err
		}
	}
	return nil
}

// moveMembers follows a rotation: old's members now belong to id.
func moveMembers(tx *bolt.Tx, zone string, old, id idletrack.ID) error {
	zb := tx.Bucket(zoneName(zone))
	if zb == nil || zb.Bucket(bMemberIdx) == nil {
		return nil
	}
	m, n := zb.Bucket(bMembers), zb.Bucket(bMemberIdx)
	for _, mid := range membersOf(n, old) {
		if err := n.Delete(memberIdxKey(old, mid)); err != nil {
			return err
		}
		v := m.Get(mid[:])
		if v == nil {
			continue
		}
		rec, err := decodeMember(v)
		if err != nil {
			return err
		}
		rec.target = id
		if err := m.Put(mid[:], encodeMember(rec)); err != nil {
			return err
		}
		if err := n.Put(memberIdxKey(id, mid), nil); err != nil {
			return err
		}
	}
	return nil
}

// LookupMember implements Store.
func (s *Bolt) LookupMember(_ context.Context, zone string, id idletrack.ID) (rec MemberRecord, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		zb := tx.Bucket(zoneName(zone))
		if zb == nil || zb.Bucket(bMembers) == nil {
			return nil
		}
		v := zb.Bucket(bMembers).Get(id[:])
		if v == nil {
			return nil
		}
		m, err := decodeMember(v)
		if err != nil {
			return err
		}
		rec = MemberRecord{Found: true, Shared: m.flags&memberShared != 0, Target: m.target}
		return nil
	})
	return rec, err
}

// LoadFamily implements Store.
func (s *Bolt) LoadFamily(_ context.Context, zone string) (f []FamilyMember, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		zb := tx.Bucket(zoneName(zone))
		if zb == nil || zb.Bucket(bFamily) == nil {
			return nil
		}
		v := zb.Bucket(bFamily).Get(kFamily)
		if v == nil {
			return nil
		}
		return json.Unmarshal(v, &f)
	})
	return clampFamily(f), err
}

// SaveFamily implements Store.
func (s *Bolt) SaveFamily(_ context.Context, zone string, f []FamilyMember) error {
	v, err := json.Marshal(clampFamily(f))
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		if _, err := ensureZone(tx, zone); err != nil {
			return err
		}
		c, err := tx.Bucket(zoneName(zone)).CreateBucketIfNotExists(bFamily)
		if err != nil {
			return err
		}
		return c.Put(kFamily, v)
	})
}
