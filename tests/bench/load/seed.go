package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/idlegate/idlegate/idletrack"
	"github.com/idlegate/idlegate/storage"
)

// cmdSeed writes n signed-in sessions into a bbolt store, as Caddy would
// have after serving them: the IDs are derived with the store's own key
// from the cookie values the compare subcommand sends, so Caddy loads them
// at start-up and the load finds them established.
func cmdSeed(args []string) error {
	fs := flag.NewFlagSet("seed", flag.ExitOnError)
	db := fs.String("db", "", "bbolt file (created)")
	zone := fs.String("zone", "sessionid", "zone (the cookie name)")
	n := fs.Int("n", 10000, "sessions")
	age := fs.Duration("age", time.Minute, "last activity this long ago")
	fs.Parse(args)
	if *db == "" {
		return fmt.Errorf("-db is required")
	}
	st, err := storage.OpenBolt(*db, storage.BoltOptions{})
	if err != nil {
		return err
	}
	defer st.Close()
	start := time.Now()
	err = seedSessions(st, *zone, *n, time.Now().Add(-*age).UnixNano(), func(int) int64 { return 0 })
	if err != nil {
		return err
	}
	fi, _ := os.Stat(*db)
	emit(map[string]any{"sessions": *n, "seconds": time.Since(start).Seconds(), "file_bytes": fi.Size()})
	return nil
}

// seedSessions writes n sessions of zone active at last (plus offset(i)
// nanoseconds for session i) in batches.
func seedSessions(st storage.Store, zone string, n int, last int64, offset func(int) int64) error {
	k := idletrack.NewKeyer(st.Key())
	const batch = 50_000
	var buf []byte
	for lo := 0; lo < n; lo += batch {
		var b storage.Batch
		for i := lo; i < min(n, lo+batch); i++ {
			buf = cookieValue(buf[:0], i)
			at := last + offset(i)
			s := idletrack.Session{ID: k.ID(zone, string(buf)), User: strconv.Itoa(i%100_000 + 1),
				StartedAt: at - int64(time.Minute), LoginAt: at - int64(time.Minute), LastActivity: at, Requests: 2}
			b.Sessions = append(b.Sessions, storage.SessionWrite{Zone: zone, Change: idletrack.Change{Session: s, ReqDelta: 2}})
		}
		// Ascending keys: bbolt splits nodes only at commit, so random
		// inserts into one large transaction cost O(n²) memmove.
		slices.SortFunc(b.Sessions, func(x, y storage.SessionWrite) int { return bytes.Compare(x.Session.ID[:], y.Session.ID[:]) })
		if _, err := st.Apply(context.Background(), &b); err != nil {
			return err
		}
		if n >= 200_000 {
			fmt.Fprintf(os.Stderr, "\rseeded %d/%d", min(n, lo+batch), n)
		}
	}
	if n >= 200_000 {
		fmt.Fprintln(os.Stderr)
	}
	return nil
}

// scratchBolt opens a new bbolt file name in dir, or in a temporary
// directory when dir is "". closeStore closes the store and removes a temporary
// directory.
func scratchBolt(dir, name string) (st *storage.Bolt, path string, closeStore func(), err error) {
	tmp := ""
	if dir == "" {
		if dir, err = os.MkdirTemp("", "idlegate-"+strings.TrimSuffix(name, ".db")); err != nil {
			return nil, "", nil, err
		}
		tmp = dir
	}
	cleanup := func() {
		if tmp != "" {
			os.RemoveAll(tmp)
		}
	}
	path = filepath.Join(dir, name)
	os.Remove(path)
	if st, err = storage.OpenBolt(path, storage.BoltOptions{}); err != nil {
		cleanup()
		return nil, "", nil, err
	}
	return st, path, func() { st.Close(); cleanup() }, nil
}
