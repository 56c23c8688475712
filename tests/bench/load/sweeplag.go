package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/idlegate/idlegate/engine"
	"github.com/idlegate/idlegate/idletrack"
	"github.com/idlegate/idlegate/storage"
	"github.com/idlegate/idlegate/webhook"
)

// cmdSweepLag measures how late the engine ends sessions that expire
// silently. A bbolt store gets n sessions; rate*secs of them have deadlines
// spread evenly over secs seconds, the rest stay active. The real engine
// (sweep every 250 ms, group commit) runs on the real store with
// session.ended events queued in the outbox, and the lag of each end is the
// time from its deadline to the moment its end and event are durable (the
// engine's SessionEnded callback, called after the commit).
//
// The engine's clock runs at real speed but is shifted once the store is
// loaded, so the first deadline falls -lead after the start whatever the
// seeding and loading took.
func cmdSweepLag(args []string) error {
	fs := flag.NewFlagSet("sweeplag", flag.ExitOnError)
	dir := fs.String("dir", "", "directory for the bbolt file (default: a temporary one)")
	n := fs.Int("n", 1_000_000, "sessions tracked")
	rate := fs.Int("rate", 10_000, "deadlines per second")
	secs := fs.Int("secs", 10, "seconds of expiries")
	lead := fs.Duration("lead", 2*time.Second, "time before the first deadline")
	hist := fs.String("hist", "", "write the lag of every end (ms, one a line) here")
	fs.Parse(args)
	due := *rate * *secs
	if due > *n {
		return fmt.Errorf("rate*secs = %d exceeds n = %d", due, *n)
	}
	const zone = "sessionid"
	const idle = time.Hour
	st, path, closeStore, err := scratchBolt(*dir, "sweeplag.db")
	if err != nil {
		return err
	}
	defer closeStore()

	// Sessions 0..due-1 expire at base + i/rate seconds; the others an hour
	// later. base is a fixed point; the clock is shifted onto it below.
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	step := int64(time.Second) / int64(*rate)
	t0 := time.Now()
	err = seedSessions(st, zone, *n, base-int64(idle), func(i int) int64 {
		if i < due {
			return int64(i) * step
		}
		return int64(idle)
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "sweeplag: seeded %d sessions in %.1fs\n", *n, time.Since(t0).Seconds())

	var shift atomic.Int64                                       // clock = time.Now() + shift
	shift.Store(base - time.Now().UnixNano() - int64(time.Hour)) // far before the deadlines while loading
	now := func() time.Time { return time.Now().Add(time.Duration(shift.Load())) }

	var (
		mu    sync.Mutex
		lags  []float64 // ms
		ended atomic.Int64
		done  = make(chan struct{})
	)
	obs := &lagObserver{fn: func(e idletrack.End) {
		lag := float64(now().UnixNano()-e.EndedAt) / 1e6
		mu.Lock()
		lags = append(lags, lag)
		mu.Unlock()
		if ended.Add(1) == int64(due) {
			close(done)
		}
	}}
	eng := engine.New(st, lagEncoder{}, engine.Options{Now: now, Observer: obs})
	defer eng.Close()
	t0 = time.Now()
	p := idletrack.DefaultPolicy()
	p.Idle, p.MaxSessions = idle, 2**n
	if _, err := eng.Configure(context.Background(), engine.ZoneConfig{Name: zone, Policy: p,
		Webhook: &engine.Webhook{URL: "http://127.0.0.1:1/", Key: make([]byte, 32), Ended: true}}); err != nil {
		return err
	}
	load := time.Since(t0)
	fmt.Fprintf(os.Stderr, "sweeplag: engine loaded %d sessions in %.2fs\n", *n, load.Seconds())

	shift.Store(base - time.Now().UnixNano() - int64(*lead))
	var ru0 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	w0 := time.Now()
	select {
	case <-done:
	case <-time.After(*lead + time.Duration(*secs)*time.Second + 30*time.Second):
		return fmt.Errorf("only %d of %d sessions ended in time", ended.Load(), due)
	}
	wall := time.Since(w0)
	var ru1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := tv(ru1.Utime) + tv(ru1.Stime) - tv(ru0.Utime) - tv(ru0.Stime)

	mu.Lock()
	defer mu.Unlock()
	slices.Sort(lags)
	pct := func(p float64) float64 { return lags[min(len(lags)-1, int(p*float64(len(lags))))] }
	if *hist != "" {
		f, err := os.Create(*hist)
		if err != nil {
			return err
		}
		for _, l := range lags {
			fmt.Fprintf(f, "%.3f\n", l)
		}
		f.Close()
	}
	pending, _, _ := st.OutboxStats(context.Background())
	fi, _ := os.Stat(path)
	emit(map[string]any{
		"sessions": *n, "rate": *rate, "ended": len(lags), "events_queued": pending,
		"load_seconds": load.Seconds(),
		"lag_ms":       map[string]float64{"p50": pct(0.5), "p90": pct(0.9), "p99": pct(0.99), "max": lags[len(lags)-1]},
		"cpu_seconds":  cpu, "wall_seconds": wall.Seconds(),
		"cpu_us_per_end": cpu * 1e6 / float64(len(lags)),
		"file_bytes":     fi.Size(),
	})
	return nil
}

func tv(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }

type lagObserver struct{ fn func(idletrack.End) }

func (o *lagObserver) SessionEnded(e idletrack.End) { o.fn(e) }
func (o *lagObserver) StoreError(op string, err error) {
	fmt.Fprintf(os.Stderr, "sweeplag: store %s: %v\n", op, err)
}
func (o *lagObserver) StoreRecovered() {}

// lagEncoder queues the real session.ended payload, as Caddy does.
type lagEncoder struct{}

func (lagEncoder) Ended(_ *engine.ZoneConfig, e idletrack.End, now time.Time) []storage.Event {
	return []storage.Event{webhook.EndedEvent(e, now)}
}
func (lagEncoder) Started(*engine.ZoneConfig, idletrack.Session, time.Time) []storage.Event {
	return nil
}
