package storage_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/idlegate/idlegate/idletrack"
	"github.com/idlegate/idlegate/storage"
)

// Tests of the activity journal: a flush that only logs activity appends
// it to <file>-activity; open and Close move it into the bbolt file.

// crashCopy copies the store's files at path, as a crash would leave them
// with the store open, to a directory of their own, and returns the copy's
// path.
func crashCopy(t *testing.T, path string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "sessions.db")
	for _, suffix := range []string{"", "-activity"} {
		b, err := os.ReadFile(path + suffix)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst+suffix, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// journaled stores n sessions, then logs their activity in flushes, every
// session once a flush with the flush's time; it returns them as active
// after the last flush.
func journaled(t *testing.T, st *storage.Bolt, n, flushes int) []idletrack.Session {
	t.Helper()
	var b storage.Batch
	ss := make([]idletrack.Session, n)
	for i := range ss {
		ss[i] = lsession(i)
		b.Sessions = append(b.Sessions, storage.SessionWrite{Zone: "z", Change: idletrack.Change{Session: ss[i]}})
	}
	lapply(t, st, &b)
	for f := 1; f <= flushes; f++ {
		journaledAgain(t, st, ss, f)
	}
	return ss
}

func checkSessions(t *testing.T, what string, st *storage.Bolt, want []idletrack.Session) {
	t.Helper()
	for _, s := range want {
		if got := lookupSession(t, st, s.ID); got != s {
			t.Fatalf("%s: %+v, want %+v", what, got, s)
		}
	}
}

func TestBoltJournalTakesActivityAndSurvivesACrash(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sessions.db")
	st := logStore(t, path)
	ss := journaled(t, st, 50, 3)
	if n := storage.JournalValues(st); n != 3 {
		t.Fatalf("journal holds %d values after 3 flushes of activity, want 3", n)
	}
	checkSessions(t, "open", st, ss)
	// A flush that writes a record as well commits to bbolt, and the
	// journal's values stay where they are.
	s := lsession(1000)
	lapply(t, st, lactivity(s))
	if n := storage.JournalValues(st); n != 3 {
		t.Fatalf("journal holds %d values after a new session, want 3", n)
	}

	crashedPath := crashCopy(t, path)
	crashed := logStore(t, crashedPath)
	checkSessions(t, "after a crash", crashed, append(ss, s))
	if n := storage.JournalValues(crashed); n != 0 {
		t.Fatalf("journal holds %d values after open, want 0: open moves them into the file", n)
	}
	if n := storage.LogValues(crashed, "z"); n != 3 {
		t.Fatalf("log holds %d values after open, want 3", n)
	}
	// A crash of the crashed copy right after its open loses nothing either.
	checkSessions(t, "after two crashes", logStore(t, crashCopy(t, crashedPath)), ss)

	// Close moves the journal into the file: the bbolt file alone holds
	// the activity.
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+"-activity", path+"-activity.moved"); err != nil {
		t.Fatalf("journal after Close: %v, want it there, started over", err)
	}
	alone := logStore(t, path)
	checkSessions(t, "reopened without the journal", alone, ss)
	alone.Close()
	// The journal Close left holds nothing the file lacks.
	if err := os.Rename(path+"-activity.moved", path+"-activity"); err != nil {
		t.Fatal(err)
	}
	again := logStore(t, path)
	if idx, vals := storage.LogState(again, "z"); idx != 50 || vals != 3 {
		t.Fatalf("reopened with the journal Close left: index %d, values %d, want 50 and 3", idx, vals)
	}
	checkSessions(t, "reopened", again, ss)
}

// TestBoltJournalFullMovesIntoTheFile fills the journal: the flush that
// finds it full commits its values and the journal's to bbolt, and the
// journal starts over; what the old generation left in the file is not
// read again.
func TestBoltJournalFullMovesIntoTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sessions.db")
	st := logStore(t, path)
	const n = 2000 // 72 KB a flush: 4 MiB in 58 flushes
	ss := journaled(t, st, n, 70)
	got := storage.JournalValues(st)
	if got == 0 || got >= 60 {
		t.Fatalf("journal holds %d values after 70 flushes of %d sessions, want it started over", got, n)
	}
	if vals := storage.LogValues(st, "z"); vals != 70 {
		t.Fatalf("log holds %d values, want 70", vals)
	}
	checkSessions(t, "open", st, ss)
	checkSessions(t, "after a crash", logStore(t, crashCopy(t, path)), ss)
	if err := storage.Fold(st); err != nil {
		t.Fatal(err)
	}
	if idx, vals := storage.LogState(st, "z"); idx != 0 || vals != 0 {
		t.Fatalf("after a fold: index %d, values %d, want an empty log", idx, vals)
	}
	checkSessions(t, "folded", st, ss)
	checkSessions(t, "folded, after a crash", logStore(t, crashCopy(t, path)), ss)
}

// TestBoltJournalReadTwiceAddsNothing is a crash after the journal's
// values moved into the file, before the journal started over: the next
// open finds them in both. The values the file holds already, and those
// a fold has trimmed since, are not logged again.
func TestBoltJournalReadTwiceAddsNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sessions.db")
	st := logStore(t, path)
	ss := journaled(t, st, 50, 3)
	stale, err := os.ReadFile(path + "-activity")
	if err != nil {
		t.Fatal(err)
	}
	st = reopen(t, st, path) // moves the journal into the file
	if err := os.WriteFile(path+"-activity", stale, 0o600); err != nil {
		t.Fatal(err)
	}
	st = reopen(t, st, path)
	if idx, vals := storage.LogState(st, "z"); idx != 50 || vals != 3 {
		t.Fatalf("journal read twice: index %d, values %d, want 50 and 3", idx, vals)
	}
	checkSessions(t, "journal read twice", st, ss)

	// Folded and trimmed, then the stale journal back: its values are
	// below the zone's trim mark.
	if err := storage.Fold(st); err != nil {
		t.Fatal(err)
	}
	st.Close()
	if err := os.WriteFile(path+"-activity", stale, 0o600); err != nil {
		t.Fatal(err)
	}
	st = logStore(t, path)
	if idx, vals := storage.LogState(st, "z"); idx != 0 || vals != 0 {
		t.Fatalf("a journal folded before: index %d, values %d, want an empty log", idx, vals)
	}
	checkSessions(t, "folded, journal read again", st, ss)
}

// TestBoltJournalTornFrameIsLeftOut damages the journal's last value, as
// a crash during its write does: the values before it count, and so do
// the flushes after the next open.
func TestBoltJournalTornFrameIsLeftOut(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sessions.db")
	st := logStore(t, path)
	ss := journaled(t, st, 50, 2)
	before := append([]idletrack.Session(nil), ss...)
	journaledAgain(t, st, ss, 3)
	copyPath := crashCopy(t, path)
	j, err := os.ReadFile(copyPath + "-activity")
	if err != nil {
		t.Fatal(err)
	}
	// The third value starts after two of 50 entries; flip a byte in it.
	frame := 8 + 10 + 1 + 1 + 50*36
	j[4096+2*frame+100] ^= 0xff
	if err := os.WriteFile(copyPath+"-activity", j, 0o600); err != nil {
		t.Fatal(err)
	}
	crashed := logStore(t, copyPath)
	checkSessions(t, "torn third value", crashed, before)
	journaledAgain(t, crashed, ss, 4)
	checkSessions(t, "a flush after", logStore(t, crashCopy(t, copyPath)), ss)
}

// journaledAgain logs the activity of ss at flush f.
func journaledAgain(t *testing.T, st *storage.Bolt, ss []idletrack.Session, f int) {
	t.Helper()
	for i := range ss {
		ss[i].LastActivity, ss[i].Requests = lat(time.Duration(f)*time.Second), uint32(1+f)
	}
	lapply(t, st, storedActivity(ss...))
}

// storedActivity is lactivity of sessions the store was given before, as
// the engine's flush writes them (their activity is logged unread).
func storedActivity(ss ...idletrack.Session) *storage.Batch {
	b := lactivity(ss...)
	for i := range b.Sessions {
		b.Sessions[i].Stored = true
	}
	return b
}

func TestBoltJournalDamagedIsRefused(t *testing.T) {
	for name, damage := range map[string]func([]byte) []byte{
		"headers": func(b []byte) []byte { clear(b[:1024]); return b },
		"short":   func(b []byte) []byte { return b[:1000] },
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "sessions.db")
			st := logStore(t, path)
			journaled(t, st, 5, 1)
			copyPath := crashCopy(t, path)
			j, _ := os.ReadFile(copyPath + "-activity")
			if err := os.WriteFile(copyPath+"-activity", damage(j), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := storage.OpenBolt(copyPath, storage.BoltOptions{})
			if err == nil || !strings.Contains(err.Error(), copyPath+"-activity") || !strings.Contains(err.Error(), "move it aside") {
				t.Fatalf("open with a damaged journal: %v, want an error naming it", err)
			}
			// Moved aside, the file opens, without the journal's activity.
			os.Rename(copyPath+"-activity", copyPath+"-activity.bad")
			st2 := logStore(t, copyPath)
			if got := lookupSession(t, st2, lid(0)); got.LastActivity != lat(0) {
				t.Fatalf("without the journal: %+v", got)
			}
		})
	}
}

// TestBoltFoldKeepsWhatOnlyTheJournalHolds folds while a flush logs to the
// journal: the fold deletes every value of the log bucket, and the index
// must still hold the flush's activity, which only the journal has.
func TestBoltFoldKeepsWhatOnlyTheJournalHolds(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sessions.db")
	st := logStore(t, path)
	ss := journaled(t, st, 50, 2)
	storage.OnFoldBegun(st, func() { journaledAgain(t, st, ss, 3) })
	if err := storage.Fold(st); err != nil {
		t.Fatal(err)
	}
	storage.OnFoldBegun(st, nil)
	if idx, vals := storage.LogState(st, "z"); idx != 50 || vals != 1 {
		t.Fatalf("after the fold: index %d, values %d, want the flush during it: 50 and 1", idx, vals)
	}
	checkSessions(t, "folded", st, ss)
	checkSessions(t, "folded, after a crash", logStore(t, crashCopy(t, path)), ss)
}

// TestBoltRunsWithoutAJournalItCannotMake: a journal that cannot be made
// (here a directory where its temporary file goes; a full disk in
// practice) is reported, and flushes commit to the bbolt file.
func TestBoltRunsWithoutAJournalItCannotMake(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sessions.db")
	if err := os.Mkdir(path+"-activity.new", 0o700); err != nil {
		t.Fatal(err)
	}
	var reported []error
	st := openBolt(t, path, storage.BoltOptions{JournalError: func(err error) { reported = append(reported, err) }})
	t.Cleanup(func() { st.Close() })
	if len(reported) != 1 || !strings.Contains(reported[0].Error(), path+"-activity") || storage.HasJournal(st) {
		t.Fatalf("reported %v, journal %v; want one error naming it and no journal", reported, storage.HasJournal(st))
	}
	ss := journaled(t, st, 50, 3)
	if vals := storage.LogValues(st, "z"); vals != 3 {
		t.Fatalf("log holds %d values, want 3 in the bbolt file", vals)
	}
	checkSessions(t, "after a crash", logStore(t, crashCopy(t, path)), ss)
}

// TestBoltJournalWriteErrorFallsBackToTheFile: the flush whose journal
// write fails fails, and is reported; the next flush commits to the bbolt
// file, and a crash then loses nothing that was written.
func TestBoltJournalWriteErrorFallsBackToTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sessions.db")
	var reported []error
	st := openBolt(t, path, storage.BoltOptions{JournalError: func(err error) { reported = append(reported, err) }})
	t.Cleanup(func() { st.Close() })
	ss := journaled(t, st, 50, 2)
	copyPath := crashCopy(t, path) // the journal as written so far
	storage.CloseJournalFile(st)
	failed := append([]idletrack.Session(nil), ss...)
	for i := range failed {
		failed[i].LastActivity = lat(time.Hour)
	}
	if _, err := st.Apply(t.Context(), storedActivity(failed...)); err == nil || len(reported) != 1 || storage.HasJournal(st) {
		t.Fatalf("flush with the journal closed: %v, reported %v; want an error, reported", err, reported)
	}
	checkSessions(t, "after the failed flush", st, ss)
	journaledAgain(t, st, ss, 3)
	checkSessions(t, "a flush after", st, ss)
	// The journal of the copy has the first two flushes; the bbolt file of
	// the running store the third.
	if err := copyFile(path, copyPath); err != nil {
		t.Fatal(err)
	}
	checkSessions(t, "after a crash", logStore(t, copyPath), ss)
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o600)
}
