package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/idlegate/idlegate/idletrack"
	"github.com/idlegate/idlegate/storage"
	"github.com/idlegate/idlegate/webhook"
)

// cmdChurn shows that the bbolt file stops growing under churn. Each cycle
// starts -n new sessions, ends the -n sessions of the previous cycle (with
// tombstones and session.ended events, as the sweep does), delivers the
// events (outbox removal) and purges tombstones past remember_ended — here
// one cycle, so the steady state holds about 2n sessions and n tombstones.
// bbolt reuses freed pages, so after a few cycles the file size is flat.
func cmdChurn(args []string) error {
	fs := flag.NewFlagSet("churn", flag.ExitOnError)
	n := fs.Int("n", 100_000, "sessions started and ended per cycle")
	cycles := fs.Int("cycles", 10, "cycles")
	dir := fs.String("dir", "", "directory for the bbolt file (default: a temporary one)")
	out := fs.String("out", "", "write 'cycle bytes' lines here")
	fs.Parse(args)
	st, path, closeStore, err := scratchBolt(*dir, "churn.db")
	if err != nil {
		return err
	}
	defer closeStore()
	ctx := context.Background()
	k := idletrack.NewKeyer(st.Key())
	p := idletrack.DefaultPolicy()
	const zone = "sessionid"
	// Simulated time: one cycle is one hour; tombstones are kept one cycle.
	t := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	hour := int64(time.Hour)
	var prev []idletrack.Session
	var sizes []int64
	var buf []byte
	for c := range *cycles {
		cur := make([]idletrack.Session, *n)
		for i := range cur {
			buf = cookieValue(buf[:0], c**n+i)
			cur[i] = idletrack.Session{ID: k.ID(zone, string(buf)), User: "42", StartedAt: t, LoginAt: t, LastActivity: t, Requests: 3}
		}
		for lo := 0; lo < *n; lo += 25_000 {
			var b storage.Batch
			for _, s := range cur[lo:min(*n, lo+25_000)] {
				b.Sessions = append(b.Sessions, storage.SessionWrite{Zone: zone, Change: idletrack.Change{Session: s, ReqDelta: 3}})
			}
			slices.SortFunc(b.Sessions, func(x, y storage.SessionWrite) int { return bytes.Compare(x.Session.ID[:], y.Session.ID[:]) })
			if _, err := st.Apply(ctx, &b); err != nil {
				return err
			}
			var e storage.Batch
			for _, s := range prev[min(len(prev), lo):min(len(prev), lo+25_000)] {
				end := idletrack.End{Session: s, Zone: zone, Reason: idletrack.ReasonIdle, EndedAt: t}
				e.Ends = append(e.Ends, storage.EndWrite{End: end, Policy: p, TombstoneUntil: t + hour,
					Events: func(end idletrack.End) []storage.Event {
						return []storage.Event{webhook.EndedEvent(end, time.Unix(0, t))}
					}})
			}
			if _, err := st.Apply(ctx, &e); err != nil {
				return err
			}
		}
		// Deliver every queued event.
		for {
			evs, err := st.Due(ctx, t+hour, 1000, nil)
			if err != nil {
				return err
			}
			if len(evs) == 0 {
				break
			}
			// Concurrently, as the worker's attempts finish: the removals
			// share group commits.
			errs := make(chan error, len(evs))
			for _, ev := range evs {
				go func() { errs <- st.Delivered(ctx, ev) }()
			}
			for range evs {
				if err := <-errs; err != nil {
					return err
				}
			}
		}
		for {
			m, err := st.Purge(ctx, t)
			if err != nil {
				return err
			}
			if m < 10_000 {
				break
			}
		}
		fi, err := os.Stat(path)
		if err != nil {
			return err
		}
		sizes = append(sizes, fi.Size())
		fmt.Fprintf(os.Stderr, "churn: cycle %d: file %d MiB\n", c+1, fi.Size()>>20)
		prev = cur
		t += hour
	}
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			return err
		}
		for i, s := range sizes {
			fmt.Fprintf(f, "%d %d\n", i+1, s)
		}
		f.Close()
	}
	emit(map[string]any{"per_cycle": *n, "cycles": *cycles, "file_bytes": sizes,
		"growth_last_half": sizes[len(sizes)-1] - sizes[len(sizes)/2]})
	return nil
}
