package storage_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("the file holds the HMAC key: mode %v, want 0600", fi.Mode().Perm())
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
