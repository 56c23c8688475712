package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/idlegate/idlegate/idletrack"
	"github.com/idlegate/idlegate/storage"
	"github.com/idlegate/idlegate/webhook"
)

// cmdWebhook measures delivery throughput: n session.ended events are
// queued in a bbolt outbox, and the real delivery worker (default
// concurrency, as Caddy runs it) posts them to a local receiver that
// verifies every signature and answers 204. The figure is events/s from
// the worker's start to the last event removed from the outbox.
func cmdWebhook(args []string) error {
	fs := flag.NewFlagSet("webhook", flag.ExitOnError)
	n := fs.Int("n", 20_000, "events")
	dir := fs.String("dir", "", "directory for the bbolt file (default: a temporary one)")
	fs.Parse(args)
	st, _, closeStore, err := scratchBolt(*dir, "webhook.db")
	if err != nil {
		return err
	}
	defer closeStore()

	key := []byte("0123456789abcdef0123456789abcdef")
	var received, bad atomic.Int64
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if webhook.Verify(key, r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp"), r.Header.Get("webhook-signature"), body) != nil {
			bad.Add(1)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		received.Add(1)
		w.WriteHeader(http.StatusNoContent)
	})}
	go srv.Serve(l)
	defer srv.Close()

	// Queue the events as session ends would.
	now := time.Now()
	k := idletrack.NewKeyer(st.Key())
	var buf []byte
	for lo := 0; lo < *n; lo += 10_000 {
		var b storage.Batch
		for i := lo; i < min(*n, lo+10_000); i++ {
			buf = cookieValue(buf[:0], i)
			e := idletrack.End{Session: idletrack.Session{ID: k.ID("sessionid", string(buf)), User: "42",
				StartedAt: now.Add(-time.Hour).UnixNano(), LastActivity: now.Add(-30 * time.Minute).UnixNano(), Requests: 7},
				Zone: "sessionid", Reason: idletrack.ReasonIdle, EndedAt: now.UnixNano()}
			b.Events = append(b.Events, webhook.EndedEvent(e, now))
		}
		if _, err := st.Apply(context.Background(), &b); err != nil {
			return err
		}
	}

	var delivered atomic.Int64
	done := make(chan struct{})
	target := webhook.Target{URL: "http://" + l.Addr().String() + "/hook", Key: key}
	w := webhook.NewWorker(st, func(string) (webhook.Target, bool) { return target, true }, webhook.Options{
		Observer: countObserver{fn: func() {
			if delivered.Add(1) == int64(*n) {
				close(done)
			}
		}},
	})
	ctx, cancel := context.WithCancel(context.Background())
	start := time.Now()
	go w.Run(ctx)
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		cancel()
		return fmt.Errorf("only %d of %d delivered", delivered.Load(), *n)
	}
	// Delivered is reported after the outbox removal: wait for the count.
	for {
		if p, _, _ := st.OutboxStats(ctx); p == 0 || time.Since(start) > 5*time.Minute {
			break
		}
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	cancel()
	emit(map[string]any{"events": *n, "seconds": elapsed.Seconds(), "events_per_second": float64(*n) / elapsed.Seconds(),
		"received": received.Load(), "bad_signatures": bad.Load(), "concurrency": webhook.DefaultConcurrency})
	return nil
}

type countObserver struct{ fn func() }

func (o countObserver) Delivered(storage.Event, time.Duration) { o.fn() }
func (o countObserver) Failed(storage.Event, error)            {}
func (o countObserver) Dead(storage.Event)                     {}
