package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"

	bolt "go.etcd.io/bbolt"
)

// The activity journal. A flush that only logs activity (its transaction
// writes nothing else to bbolt) appends its log values to a small file
// beside the bbolt file, <file>-activity, with one fdatasync, instead of
// committing a bbolt transaction, which writes the value's pages, the
// branch pages above them and a meta page, with two fdatasyncs. On this
// kind of machine a fdatasync costs about 0.3 ms, and a flush of 300 dirty
// sessions at 1M cost ~7.5 µs per session, half of it those writes
// (BenchmarkBoltFlushDirty; see BENCHMARKS.md).
//
// The journal holds log values exactly as the log bucket would, under the
// keys (seq) they would have had; the index in memory is the same either
// way. It is a write buffer in front of the log bucket: when it is full,
// the flush that finds it so moves its values into the log bucket in its
// own transaction ("evacuation"), then starts the journal over. At open the
// same happens first, so the log is read from bbolt alone, and Close does
// it too: a file closed cleanly holds everything, for backups and for an
// idlegate from before the journal, and the journal stays, started over.
//
// Layout: two 512-byte header slots (magic, generation, CRC; the header of
// generation g is in slot g%2, so a torn header write leaves the other),
// then from offset journalData frames:
//
//	BE(len)(4) ++ BE(crc32c(BE(gen) ++ payload))(4) ++ payload
//	payload = BE(seq)(8) ++ BE(len(zone))(2) ++ zone ++ log value
//
// The file is written full of zeros once, when it is made, so appending a
// frame changes no file metadata and fdatasync writes only the data. A
// frame is read only if its CRC, which covers the generation, matches:
// reading stops at the first that does not (zeros, a torn write, or a frame
// of the generation before a restart). Starting over writes the next
// generation's header, so the old frames stop counting without a write of
// their own.
//
// Evacuation skips what the log bucket already holds: a value whose key it
// has (an evacuation that committed before a crash let it start over), and
// a value at or below the zone's trim mark, the zone bucket's sequence,
// which the fold sets to the key up to which it deleted the log's values
// (trimLog): such a value held nothing the records lack.
type journal struct {
	f      *os.File
	broken bool // a write failed: Bolt writes no more
	path   string
	gen    uint64
	off    int64 // where the next frame goes
	// live is, per zone, the keys and entry counts of the values in the
	// journal, for the fold's count of what the log holds (trimLog).
	live map[string][]journalValue
	// The write add builds: its frames, and their values for live once
	// commit has them on disk.
	buf     []byte
	pending []journalValue
}

type journalValue struct {
	zone    string
	seq     uint64
	entries int
}

const (
	journalSize  = 4 << 20
	journalData  = 4096
	journalSlot  = 512
	journalMagic = "idlegate activity journal\x00"
	headerSize   = len(journalMagic) + 8 + 4
	frameHead    = 8
	// A flush logs at most this much in the journal; a larger one commits
	// to bbolt as before (its fixed costs are small beside it).
	journalMaxFrame = 1 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// journalFrame is one value read back from the journal.
type journalFrame struct {
	zone string
	seq  uint64
	val  []byte
}

// errNoJournal is a journal that could not be made (a full or read-only
// disk): the store runs without one, as before the journal.
var errNoJournal = errors.New("no activity journal")

func journalPath(dbPath string) string { return dbPath + "-activity" }

// openJournal opens the journal of the bbolt file at dbPath, making it if
// there is none, and returns the values it holds, in the order they were
// written.
func openJournal(dbPath string) (*journal, []journalFrame, error) {
	path := journalPath(dbPath)
	f, err := os.OpenFile(path, os.O_RDWR, 0o600)
	if errors.Is(err, os.ErrNotExist) {
		if err := makeJournal(path); err != nil {
			return nil, nil, fmt.Errorf("%w: making %s: %v", errNoJournal, path, err)
		}
		f, err = os.OpenFile(path, os.O_RDWR, 0o600)
	}
	if err != nil {
		return nil, nil, err
	}
	j := &journal{f: f, path: path, live: map[string][]journalValue{}}
	frames, err := j.read()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("activity journal %s: %w", path, err)
	}
	return j, frames, nil
}

// makeJournal writes a new journal of zeros with the header of generation
// 1 under a temporary name, then renames it into place, so a crash leaves
// either no journal or a whole one.
func makeJournal(path string) error {
	tmp := path + ".new"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	b := make([]byte, journalSize)
	copy(b[journalSlot:], header(1)) // slot 1%2
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func header(gen uint64) []byte {
	b := append([]byte(journalMagic), make([]byte, 12)...)
	binary.BigEndian.PutUint64(b[len(journalMagic):], gen)
	binary.BigEndian.PutUint32(b[len(journalMagic)+8:], crc32.Checksum(b[:len(journalMagic)+8], castagnoli))
	return b
}

// readHeader returns the generation of the header in b, if b holds one.
func readHeader(b []byte) (uint64, bool) {
	if len(b) < headerSize || string(b[:len(journalMagic)]) != journalMagic {
		return 0, false
	}
	n := len(journalMagic)
	if crc32.Checksum(b[:n+8], castagnoli) != binary.BigEndian.Uint32(b[n+8:]) {
		return 0, false
	}
	return binary.BigEndian.Uint64(b[n:]), true
}

// read reads the journal's header and frames, and sets gen and off.
func (j *journal) read() ([]journalFrame, error) {
	b, err := os.ReadFile(j.path)
	if err != nil {
		return nil, err
	}
	if len(b) != journalSize {
		return nil, fmt.Errorf("%d bytes, not %d: damaged; move it aside to start without the activity it holds", len(b), journalSize)
	}
	g0, ok0 := readHeader(b[:journalSlot])
	g1, ok1 := readHeader(b[journalSlot : 2*journalSlot])
	switch {
	case ok0 && (!ok1 || g0 > g1):
		j.gen = g0
	case ok1:
		j.gen = g1
	default:
		return nil, errors.New("no valid header: damaged; move it aside to start without the activity it holds")
	}
	frames, n := parseFrames(b[journalData:], j.gen)
	for _, fr := range frames {
		if logEntries(fr.val) < 0 {
			return nil, fmt.Errorf("a value of %d bytes: bad encoding", len(fr.val))
		}
	}
	j.off = int64(journalData + n)
	return frames, nil
}

// parseFrames reads the frames of generation gen at the start of b, up to
// the first that is not one, and returns them and their size.
func parseFrames(b []byte, gen uint64) (frames []journalFrame, size int) {
	for {
		fr, n, ok := parseFrame(b[size:], gen)
		if !ok {
			return frames, size
		}
		frames = append(frames, fr)
		size += n
	}
}

// parseFrame reads the frame at the start of b, of generation gen, and
// returns it and its size.
func parseFrame(b []byte, gen uint64) (journalFrame, int, bool) {
	if len(b) < frameHead {
		return journalFrame{}, 0, false
	}
	n := int(binary.BigEndian.Uint32(b))
	if n < 10 || n > journalMaxFrame+10+1<<16 || n > len(b)-frameHead {
		return journalFrame{}, 0, false
	}
	p := b[frameHead : frameHead+n]
	if frameSum(gen, p) != binary.BigEndian.Uint32(b[4:]) {
		return journalFrame{}, 0, false
	}
	zl := int(binary.BigEndian.Uint16(p[8:]))
	if 10+zl > n {
		return journalFrame{}, 0, false
	}
	return journalFrame{zone: string(p[10 : 10+zl]), seq: binary.BigEndian.Uint64(p), val: p[10+zl:]}, frameHead + n, true
}

func frameSum(gen uint64, payload []byte) uint32 {
	var g [8]byte
	binary.BigEndian.PutUint64(g[:], gen)
	return crc32.Update(crc32.Checksum(g[:], castagnoli), castagnoli, payload)
}

// frameSize is the size of the frame of a value of n bytes in zone; a zone
// name too long for a frame makes it too large for the journal.
func frameSize(zone string, n int) int {
	if len(zone) > math.MaxUint16 {
		return math.MaxInt32
	}
	return frameHead + 10 + len(zone) + n
}

// room reports whether n more bytes of frames fit.
func (j *journal) room(n int) bool { return j.off+int64(n) <= journalSize }

// begin starts a write of frames.
func (j *journal) begin() { j.buf, j.pending = j.buf[:0], j.pending[:0] }

// add adds a frame to the write begin started.
func (j *journal) add(zone string, seq uint64, val []byte) {
	j.pending = append(j.pending, journalValue{zone, seq, logEntries(val)})
	at := len(j.buf)
	j.buf = append(j.buf, make([]byte, frameHead)...)
	j.buf = binary.BigEndian.AppendUint64(j.buf, seq)
	j.buf = binary.BigEndian.AppendUint16(j.buf, uint16(len(zone)))
	j.buf = append(j.buf, zone...)
	j.buf = append(j.buf, val...)
	p := j.buf[at+frameHead:]
	binary.BigEndian.PutUint32(j.buf[at:], uint32(len(p)))
	binary.BigEndian.PutUint32(j.buf[at+4:], frameSum(j.gen, p))
}

// commit writes the frames add added and waits for them to be on disk.
func (j *journal) commit() error {
	if _, err := j.f.WriteAt(j.buf, j.off); err != nil {
		return err
	}
	if err := fdatasync(j.f); err != nil {
		return err
	}
	j.off += int64(len(j.buf))
	for _, v := range j.pending {
		j.live[v.zone] = append(j.live[v.zone], v)
	}
	if cap(j.buf) > journalMaxFrame {
		j.buf = nil
	}
	return nil
}

// count returns what zone's values in the journal above key c hold.
func (j *journal) count(zone string, c uint64) (n logCount) {
	for _, v := range j.live[zone] {
		if v.seq > c {
			n.values++
			n.entries += v.entries
		}
	}
	return n
}

// empty reports whether the journal holds no values.
func (j *journal) empty() bool { return j.off == journalData }

// restart starts the journal over: the next generation's header, on disk
// before any frame of it.
func (j *journal) restart() error {
	g := j.gen + 1
	if _, err := j.f.WriteAt(header(g), int64(g%2)*journalSlot); err != nil {
		return err
	}
	if err := fdatasync(j.f); err != nil {
		return err
	}
	j.gen, j.off = g, journalData
	clear(j.live)
	return nil
}

// frames reads back the values the journal holds.
func (j *journal) frames() ([]journalFrame, error) {
	b := make([]byte, j.off-journalData)
	if _, err := j.f.ReadAt(b, journalData); err != nil {
		return nil, err
	}
	frames, n := parseFrames(b, j.gen)
	if n != len(b) {
		return nil, errors.New("activity journal: a frame written reads back damaged")
	}
	return frames, nil
}

// evacuate puts into the log buckets of tx the journal's values that they
// lack (see the comment on journal).
func evacuate(tx *bolt.Tx, frames []journalFrame) error {
	for _, fr := range frames {
		zb := tx.Bucket(zoneName(fr.zone))
		if zb == nil {
			continue // the zone's buckets came with its first value
		}
		l := zb.Bucket(bLog)
		if l == nil || fr.seq <= zb.Sequence() {
			continue
		}
		key := binary.BigEndian.AppendUint64(nil, fr.seq)
		if l.Get(key) != nil {
			continue
		}
		if err := l.Put(key, fr.val); err != nil {
			return err
		}
		if fr.seq > l.Sequence() {
			if err := l.SetSequence(fr.seq); err != nil {
				return err
			}
		}
	}
	return nil
}

// openJournal opens the journal of the bbolt file at path, and moves what
// it holds into the log buckets, so the log is read from bbolt alone.
func (s *Bolt) openJournal(path string) error {
	j, frames, err := openJournal(path)
	if errors.Is(err, errNoJournal) {
		if s.journalErr != nil {
			s.journalErr(fmt.Errorf("%w; flushes commit to the bbolt file", err))
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("idlegate store: %w", err)
	}
	if len(frames) > 0 {
		err = s.db.Update(func(tx *bolt.Tx) error { return evacuate(tx, frames) })
		if err == nil {
			err = j.restart()
		}
		if err != nil {
			j.f.Close()
			return fmt.Errorf("idlegate store: moving activity journal %s into %s: %w", j.path, path, err)
		}
	}
	s.jr = j
	return nil
}

// closeJournal moves what the journal holds into the log buckets and
// starts it over (under wmu), so the bbolt file closed holds everything.
// The journal stays for the next open: making it writes 4 MiB.
func (s *Bolt) closeJournal() error {
	j := s.jr
	if j == nil {
		return nil
	}
	s.jr = nil
	err := func() error {
		if j.empty() {
			return nil
		}
		frames, err := j.frames()
		if err == nil {
			err = s.db.Update(func(tx *bolt.Tx) error { return evacuate(tx, frames) })
		}
		if err == nil {
			err = j.restart()
		}
		return err
	}()
	if cerr := j.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("idlegate store: activity journal %s: %w; the next open reads it", j.path, err)
	}
	return nil
}
