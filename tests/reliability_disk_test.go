package tests

// Disk faults (issue #7, item 3), through the Caddy binary:
//
//   - the bbolt file on a 2 MiB tmpfs that fills up;
//   - the bbolt file made read-only while Caddy runs (chattr +i: as root,
//     chmod does not stop writes, the immutable flag does, even through
//     the descriptor bbolt already holds);
//   - a read-only, corrupted or truncated file at start.
//
// While writes fail the site keeps serving and enforcing from memory, the
// failures are logged and counted in caddy_idle_session_store_errors_total,
// and once the disk is writable again nothing is lost: every session's end
// is reported exactly once and stays refused across a crash.
//
// The tests need root (mount, chattr); without it they skip and say so.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/idlegate/idlegate/storage"
)

const diskCaddyfile = `{
	admin 127.0.0.1:{ADMIN}
	default_bind 127.0.0.1
	grace_period 3s
}
http://127.0.0.1:{PORT} {
	idle_session {
		cookie sid
		user_header X-Idle-User
		idle 3s
		status_path /.idlegate/status
		store bolt {DB}
		webhook {HOOK} {
			secret {SECRET}
		}
	}
	reverse_proxy {UP}
}
`

// mountTmpfs mounts a tmpfs of size at a fresh directory and unmounts it
// when t ends.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs (needs root): %v %s", err, out)
	}
	t.Cleanup(func() {
		// Lazy, so a Caddy that still holds the file cannot keep it mounted.
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
	return dir
}

func chattr(t *testing.T, flag, path string) {
	t.Helper()
	if out, err := exec.Command("chattr", flag, path).CombinedOutput(); err != nil {
		t.Skipf("chattr %s %s (needs root and a file system with the flag): %v %s", flag, path, err, out)
	}
}

// fill writes dir/filler until the file system is full.
func fill(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := bytes.Repeat([]byte{0xaa}, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return path
			}
			t.Fatalf("filling %s: %v", dir, err)
		}
	}
}

type diskFault struct {
	name  string
	setup func(t *testing.T) (db string)
	brk   func(t *testing.T, db string)
	fix   func(t *testing.T, db string)
}

func TestReliabilityDiskFaults(t *testing.T) {
	faults := []diskFault{{
		name: "tmpfs_full",
		setup: func(t *testing.T) string {
			return filepath.Join(mountTmpfs(t, "2m"), "sessions.db")
		},
		brk: func(t *testing.T, db string) { fill(t, filepath.Dir(db)) },
		fix: func(t *testing.T, db string) {
			if err := os.Remove(filepath.Join(filepath.Dir(db), "filler")); err != nil {
				t.Fatal(err)
			}
		},
	}, {
		name:  "read_only_file",
		setup: func(t *testing.T) string { return filepath.Join(t.TempDir(), "sessions.db") },
		brk: func(t *testing.T, db string) {
			chattr(t, "+i", db)
			t.Cleanup(func() { exec.Command("chattr", "-i", db).Run() })
		},
		fix: func(t *testing.T, db string) { chattr(t, "-i", db) },
	}}
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) { testDiskFault(t, f) })
	}
}

func testDiskFault(t *testing.T, f diskFault) {
	needCaddy(t)
	const idle = 3 * time.Second
	db := f.setup(t)
	up, recv := NewUpstream(t), NewReceiver(t)
	port := strconv.Itoa(FreePort(t))
	caddy := StartCaddy(t, Render(t, diskCaddyfile, map[string]string{
		"PORT": port, "UP": up.Addr, "HOOK": recv.Hook(), "SECRET": TestSecret, "DB": db,
	}))
	c := NewClient("http://127.0.0.1:" + port)
	s := &stack{t: t, Caddy: caddy, Up: up, Recv: recv, C: c}

	stored, _ := s.login("stored") // durable before the fault
	f.brk(t, db)

	// Enough new sessions and activity that bbolt needs pages it does not
	// have: every write fails from now on.
	var during []string
	for i := range pick(150, 600) {
		sid, _ := s.login("d" + strconv.Itoa(i))
		during = append(during, sid)
	}
	Eventually(t, 15*time.Second, 100*time.Millisecond, func() error {
		if n := sumMetric(caddy.Metrics(t), "caddy_idle_session_store_errors_total", `op="write"`); n == 0 {
			return errors.New("no store write error counted yet")
		}
		return nil
	})
	if !strings.Contains(caddy.Logs(), "store write failed") {
		t.Errorf("the failing store is not logged:\n%s", tail(caddy.Logs(), 20))
	}

	// Still serving: pages of old and new sessions work, the status path
	// knows the new sessions.
	keep := during[0]
	s.page(stored)
	s.page(keep)
	if st := s.status(keep); !st.Active {
		t.Fatalf("a session started while the disk fails is not tracked: %+v", st)
	}
	// Still enforcing: keep one session busy, let the others go idle; they
	// are refused on time from memory.
	quietSince := wallNow() // idlegate times the idle timeout on the wall clock
	Eventually(t, idle+15*time.Second, 300*time.Millisecond, func() error {
		s.page(keep)
		// The status path never counts as activity.
		if st := s.status(stored); st.Active {
			return fmt.Errorf("idle session still active: %+v", st)
		}
		return nil
	})
	if r := c.Get(t, "/", WithCookie(UpstreamCookie, stored)); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("idle session answered %d", r.StatusCode)
	}
	if took := time.Since(quietSince); took < idle-500*time.Millisecond {
		t.Fatalf("refused after %s, before its idle timeout %s", took, idle)
	}
	for _, sid := range during[1:4] {
		if r := c.Get(t, "/", WithCookie(UpstreamCookie, sid)); r.StatusCode != http.StatusUnauthorized {
			t.Errorf("a session started during the fault and idle since answered %d", r.StatusCode)
		}
	}
	errs := sumMetric(caddy.Metrics(t), "caddy_idle_session_store_errors_total")
	if n := len(recv.Events()); n != 0 {
		// Ends are written with their webhook in one transaction: while
		// the write fails, no event can leave.
		t.Logf("%d events delivered during the fault (the outbox was written before the fault)", n)
	}

	// The disk is back: the queued writes go through, every end is
	// reported exactly once.
	f.fix(t, db)
	want := 1 + len(during) // stored, and every session started during the fault, all idle by then
	evs := recv.WaitEvents(t, want, idle+30*time.Second)
	users := map[string]int{}
	for _, ev := range evs {
		users[ev.Data.User]++
		if ev.Data.Reason != "idle" {
			t.Errorf("user %s ended %q, want idle", ev.Data.User, ev.Data.Reason)
		}
	}
	for u, n := range users {
		if n != 1 {
			t.Errorf("user %s reported %d times", u, n)
		}
	}
	if users["stored"] != 1 || users["d0"] != 1 || users["d"+strconv.Itoa(len(during)-1)] != 1 {
		t.Errorf("missing reports: %s", recv.Summary())
	}
	Consistently(t, 2*time.Second, 200*time.Millisecond, func() error {
		if n := len(recv.Events()); n != want {
			return fmt.Errorf("%d events, want %d", n, want)
		}
		return nil
	})

	// And it is on disk: after a crash every ended cookie stays refused
	// and nothing is reported again.
	caddy.Kill()
	caddy.Restart()
	for _, sid := range append([]string{stored}, during...) {
		if r := c.Get(t, "/", WithCookie(UpstreamCookie, sid)); r.StatusCode != http.StatusUnauthorized {
			t.Fatalf("after the fault and a crash, an ended session answered %d", r.StatusCode)
		}
	}
	Consistently(t, 2*time.Second, 200*time.Millisecond, func() error {
		if n := len(recv.Events()); n != want {
			return fmt.Errorf("%d events after the restart, want %d", n, want)
		}
		return nil
	})
	summary := fmt.Sprintf("disk fault %s: %d sessions started while writes failed, %v store errors counted, served and enforced from memory; %d events delivered exactly once after recovery, all refused after a crash",
		f.name, len(during), errs, want)
	t.Log(summary)
	artifact(t, "reliability.txt", time.Now().UTC().Format(time.RFC3339)+" "+summary)
}

// TestReliabilityBadStoreAtStart: a store Caddy cannot use at start stops
// it with an error that names the file and the way out; the file is left
// as it was (never a silent reset).
func TestReliabilityBadStoreAtStart(t *testing.T) {
	needCaddy(t)
	good := filepath.Join(t.TempDir(), "good.db")
	st, err := storage.OpenBolt(good, storage.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	goodBytes, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	// Both meta pages: with one left, bbolt rightly opens the file from it.
	metas := 2 * int(binary.LittleEndian.Uint32(goodBytes[24:])) // page size, from meta page 0
	cases := []struct {
		name    string
		content []byte
		prep    func(t *testing.T, path string)
		want    []string
	}{
		{"truncated", goodBytes[:len(goodBytes)/3], nil, []string{"truncated", "move the file aside"}},
		{"garbage", bytes.Repeat([]byte("not a bbolt file "), 2000), nil, []string{"move the file aside"}},
		{"zeroed_meta", append(make([]byte, metas), goodBytes[metas:]...), nil, []string{"move the file aside"}},
		{"read_only", goodBytes, func(t *testing.T, path string) {
			chattr(t, "+i", path)
			t.Cleanup(func() { exec.Command("chattr", "-i", path).Run() })
		}, []string{"not writable", "chattr -i"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			db := filepath.Join(dir, "sessions.db")
			if err := os.WriteFile(db, tc.content, 0o600); err != nil {
				t.Fatal(err)
			}
			if tc.prep != nil {
				tc.prep(t, db)
			}
			cf := filepath.Join(dir, "Caddyfile")
			os.WriteFile(cf, []byte(Render(t, `{
	admin off
	default_bind 127.0.0.1
}
http://127.0.0.1:{PORT} {
	idle_session {
		cookie sid
		store bolt {DB}
	}
	respond "ok"
}
`, map[string]string{"PORT": strconv.Itoa(FreePort(t)), "DB": db})), 0o644)
			res := CaddyCLI(t, "run", "--config", cf, "--adapter", "caddyfile")
			if res.ExitCode == 0 {
				t.Fatalf("caddy started on a %s store:\n%s", tc.name, res.Output)
			}
			for _, w := range append([]string{db}, tc.want...) {
				if !strings.Contains(res.Output, w) {
					t.Errorf("the error must mention %q:\n%s", w, lastLine(res.Output))
				}
			}
			after, _ := os.ReadFile(db)
			if !bytes.Equal(after, tc.content) {
				t.Errorf("the %s file was changed", tc.name)
			}
			t.Logf("%s: %s", tc.name, lastLine(res.Output))
		})
	}
}
