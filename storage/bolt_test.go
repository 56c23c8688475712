package storage_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/idlegate/idlegate/idletrack"
	"github.com/idlegate/idlegate/storage"
	"github.com/idlegate/idlegate/storage/storetest"
)

func TestBoltBehaviour(t *testing.T) {
	storetest.Run(t, func(t *testing.T) func() storage.Store {
		path := filepath.Join(t.TempDir(), "sessions.db")
		return func() storage.Store {
			st, err := storage.OpenBolt(path, storage.BoltOptions{})
			if err != nil {
				t.Fatal(err)
			}
			return st
		}
	})
}

func TestBoltFileIsPrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "idlegate", "sessions.db")
	st, err := storage.OpenBolt(path, storage.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// The journal holds no key, but it holds what the file does of the
	// sessions' activity.
	for _, p := range []string{path, path + "-activity"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: mode %v, want 0600", p, fi.Mode().Perm())
		}
	}
}

func TestBoltLockedFileGivesClearError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sessions.db")
	st, err := storage.OpenBolt(path, storage.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// bbolt's flock is per open file description, so a second open in the
	// same process contends like a second process would.
	_, err = storage.OpenBolt(path, storage.BoltOptions{LockTimeout: 100 * time.Millisecond})
	if err == nil {
		t.Fatal("a second open must fail while the first holds the lock")
	}
	for _, want := range []string{path, "locked", "store bolt"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("error %q must mention %q", err, want)
		}
	}
}

func TestBoltDamagedFileIsNotSilentlyReset(t *testing.T) {
	for name, content := range map[string][]byte{
		"garbage":   []byte(strings.Repeat("not a bbolt file ", 1000)),
		"truncated": nil,
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "sessions.db")
			if content == nil {
				st, err := storage.OpenBolt(path, storage.BoltOptions{})
				if err != nil {
					t.Fatal(err)
				}
				st.Close()
				data, _ := os.ReadFile(path)
				content = data[:len(data)/3]
			}
			if err := os.WriteFile(path, content, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := storage.OpenBolt(path, storage.BoltOptions{LockTimeout: time.Second})
			if err == nil {
				t.Fatal("a damaged file must not open as if empty")
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "move the file aside") {
				t.Fatalf("error must name the file and the recovery step: %v", err)
			}
			after, _ := os.ReadFile(path)
			if string(after) != string(content) {
				t.Fatal("the damaged file must be left as it was")
			}
		})
	}
}

// A file idlegate may not write is not damage: the error says to make it
// writable, not to move it aside (which would forget every session).
func TestBoltReadOnlyFileGivesClearError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sessions.db")
	st, err := storage.OpenBolt(path, storage.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	// As root, chmod does not stop writes; the immutable flag does.
	if os.Geteuid() == 0 {
		if out, err := exec.Command("chattr", "+i", path).CombinedOutput(); err != nil {
			t.Skipf("chattr +i: %v %s", err, out)
		}
		defer exec.Command("chattr", "-i", path).Run()
	} else if err := os.Chmod(path, 0o400); err != nil {
		t.Fatal(err)
	}
	_, err = storage.OpenBolt(path, storage.BoltOptions{LockTimeout: time.Second})
	if err == nil {
		t.Fatal("a read-only file must not open")
	}
	for _, want := range []string{path, "not writable", "chattr -i"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q must mention %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "move the file aside") {
		t.Errorf("a read-only file is not damaged; moving it aside would lose every session: %v", err)
	}
}

// cleanStoreFile returns the bytes of a closed store of 2000 sessions in
// zone "z" (a few branch pages, many leaves) and its page size.
func cleanStoreFile(t *testing.T) ([]byte, int) {
	src := filepath.Join(t.TempDir(), "sessions.db")
	st, err := storage.OpenBolt(src, storage.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var b storage.Batch
	for i := range 2000 {
		var id idletrack.ID
		copy(id[:], fmt.Sprintf("%016d", i))
		b.Sessions = append(b.Sessions, storage.SessionWrite{Zone: "z", Change: idletrack.Change{
			Session: idletrack.Session{ID: id, User: "u", StartedAt: 1, LastActivity: 2, Requests: 1}}})
	}
	if _, err := st.Apply(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	st.Close()
	clean, _ := os.ReadFile(src)
	page := int(binary.LittleEndian.Uint32(clean[24:])) // the page size, from meta page 0
	if page < 4096 || page > 1<<16 {
		t.Fatalf("page size %d in the meta page", page)
	}
	return clean, page
}

// openDamaged writes data as a store file and opens it. It reports whether
// the open refused the file; a refusal must name the file and the recovery
// step, and a file that opens must read without a panic.
func openDamaged(t *testing.T, data []byte, what string) (refused bool) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sessions.db")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if p := recover(); p != nil {
			t.Errorf("%s: a read panicked after a clean open: %v", what, p)
		}
	}()
	st, err := storage.OpenBolt(path, storage.BoltOptions{LockTimeout: time.Second})
	if err != nil {
		if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "move the file aside") {
			t.Errorf("%s: error must name the file and the recovery step: %v", what, err)
		}
		return true
	}
	defer st.Close()
	st.Load(context.Background(), "z", func(idletrack.Session) {}, func(storage.Alias) {})
	st.Due(context.Background(), 1<<62, 100, nil)
	return false
}

// TestBoltDamagedPageHeaderNeverCrashes damages, on every page of a store
// in turn, each header field and pointer bbolt trusts: the page's own ID,
// its type, element count and overflow, a branch's first child (pointed
// at the page itself: a cycle) and a leaf's first element. bbolt rebuilds
// the freelist at open by a walk in a goroutine without recover, so any of
// these reaching it would crash the test binary; each must be refused at
// open with the clear error, or open and read without a panic.
func TestBoltDamagedPageHeaderNeverCrashes(t *testing.T) {
	clean, page := cleanStoreFile(t)
	le := binary.LittleEndian
	damage := map[string]func(p []byte, id uint64){
		"id":       func(p []byte, id uint64) { le.PutUint64(p, id+1) },
		"type":     func(p []byte, _ uint64) { le.PutUint16(p[8:], 0x10) },
		"count":    func(p []byte, _ uint64) { le.PutUint16(p[10:], 0xFFFF) },
		"overflow": func(p []byte, _ uint64) { le.PutUint32(p[12:], 1<<30) },
		"child": func(p []byte, id uint64) { // a branch's first child, or a leaf's first key offset
			if le.Uint16(p[8:]) == 0x01 {
				le.PutUint64(p[16+8:], id)
			} else {
				le.PutUint32(p[16+4:], 1<<30)
			}
		},
		"value": func(p []byte, _ uint64) { le.PutUint32(p[16+12:], 1<<30) },
	}
	refused := 0
	pages := len(clean) / page
	for pg := 2; pg < pages; pg++ {
		if f := le.Uint16(clean[pg*page+8:]); f != 0x01 && f != 0x02 {
			continue // free or freelist pages: bbolt does not walk them
		}
		for name, d := range damage {
			data := append([]byte(nil), clean...)
			d(data[pg*page:], uint64(pg))
			if openDamaged(t, data, fmt.Sprintf("page %d, %s", pg, name)) {
				refused++
			}
		}
	}
	if refused == 0 {
		t.Fatal("no damaged header was refused at open")
	}
	t.Logf("%d damaged headers refused at open", refused)
}

// A file whose meta pages are fine but one of its other pages is damaged
// (a bad disk block, a torn copy) must not open and then panic when a read
// reaches the page: every damaged page is found at open, with the same
// clear error, or is a free page that nothing reads.
func TestBoltDamagedPageIsFoundAtOpen(t *testing.T) {
	clean, page := cleanStoreFile(t)
	refused := 0
	for seed := range uint64(40) {
		data := append([]byte(nil), clean...)
		r := rand.New(rand.NewPCG(seed, 7))
		pg := 2 + r.IntN(len(data)/page-2) // past the two meta pages
		for i := range page {
			data[pg*page+i] = byte(r.IntN(256))
		}
		if openDamaged(t, data, fmt.Sprintf("seed %d, page %d", seed, pg)) {
			refused++
		}
	}
	if refused == 0 {
		t.Fatal("no damaged page was found at open")
	}
	t.Logf("%d of 40 damaged files refused at open; the others opened and were read without a panic (damage on a free page or in values, which decode to errors)", refused)
}

// Keys out of order on a page made bbolt's rebuild of the freelist panic
// at open: the recover caught it, but bbolt's deferred rollback then
// pulled the transaction from under its walk, still running in another
// goroutine, which crashed the process now and then; and bbolt's lock on
// the file stayed held, so a second open (a config reload) blamed another
// process. idlegate's page walk now checks key order first: every open
// says the file is damaged, at once; a file put in its place opens.
func TestBoltKeysOutOfOrderRefusedOnEveryOpen(t *testing.T) {
	clean, page := cleanStoreFile(t)
	le := binary.LittleEndian
	data := append([]byte(nil), clean...)
	swapped := false
	for pg := 2; pg < len(data)/page && !swapped; pg++ {
		p := data[pg*page : (pg+1)*page]
		if le.Uint16(p[8:]) != 0x02 || le.Uint16(p[10:]) < 2 {
			continue // not a leaf of two elements or more
		}
		e0, e1 := p[16:32], p[32:48]
		if le.Uint32(e0) != 0 || le.Uint32(e0[8:]) != 16 || le.Uint32(e1[8:]) != 16 {
			continue // a bucket, or keys that are not IDs
		}
		k0 := p[16+le.Uint32(e0[4:]):][:16]
		k1 := p[32+le.Uint32(e1[4:]):][:16]
		var tmp [16]byte
		copy(tmp[:], k0)
		copy(k0, k1)
		copy(k1, tmp[:])
		swapped = true
	}
	if !swapped {
		t.Fatal("no leaf page with two ID keys")
	}
	path := filepath.Join(t.TempDir(), "sessions.db")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	for try := range 2 {
		start := time.Now()
		st, err := storage.OpenBolt(path, storage.BoltOptions{LockTimeout: 3 * time.Second})
		if err == nil {
			st.Close()
			t.Fatalf("open %d: a file with keys out of order opened", try)
		}
		if !strings.Contains(err.Error(), "move the file aside") || !strings.Contains(err.Error(), "out of order") || time.Since(start) >= 3*time.Second {
			t.Fatalf("open %d after %v: want the damaged-file error at once, got %v", try, time.Since(start), err)
		}
	}
	fresh := path + ".new"
	if err := os.WriteFile(fresh, clean, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(fresh, path); err != nil {
		t.Fatal(err)
	}
	st, err := storage.OpenBolt(path, storage.BoltOptions{LockTimeout: 3 * time.Second})
	if err != nil {
		t.Fatalf("a clean file in its place: %v", err)
	}
	st.Close()
}
