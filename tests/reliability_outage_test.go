package tests

// Receiver outages (issue #7, item 2). The webhook target is down
// (connection refused), slow (answers only after the attempt timeout), and
// answering 500 and 429 with Retry-After; afterwards every event arrives,
// each within max_attempts, and dead letters appear only once the attempts
// run out.
//
// TestReliabilityReceiverOutage runs the real delivery worker on a real
// bbolt outbox with backoff scaled down (50 ms base, 2 s cap) so a long
// outage fits in seconds: 3 s down in the short form, 60 s (and 200
// events) in the long form (IDLEGATE_LONG=1).
// TestReliabilityDeadLetterE2E checks the same contract through the Caddy
// binary with its default backoff.

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idlegate/idlegate/idletrack"
	"github.com/idlegate/idlegate/storage"
	"github.com/idlegate/idlegate/webhook"
)

func TestReliabilityReceiverOutage(t *testing.T) {
	var (
		n           = pick(40, 200)
		down        = pick(3*time.Second, 60*time.Second)
		slow        = pick(2*time.Second, 20*time.Second)
		failing     = pick(2*time.Second, 20*time.Second)
		maxAttempts = pick(40, 200) // covers the outage window at the scaled backoff
		deadMax     = 4             // the dead-letter zone does
		timeout     = 300 * time.Millisecond
	)
	st, err := storage.OpenBolt(filepath.Join(t.TempDir(), "sessions.db"), storage.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	recv := NewReceiver(t)
	key, err := webhook.ParseSecret(TestSecret)
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://127.0.0.1:" + strconv.Itoa(FreePort(t)) + "/hook" // nothing listens: connection refused
	var url atomic.Value
	url.Store(refused)
	targets := func(zone string) (webhook.Target, bool) {
		switch zone {
		case "outage":
			return webhook.Target{URL: url.Load().(string), Key: key, Timeout: timeout, MaxAttempts: maxAttempts}, true
		case "dead":
			return webhook.Target{URL: recv.Hook(), Key: key, Timeout: timeout, MaxAttempts: deadMax}, true
		}
		return webhook.Target{}, false
	}
	w := webhook.NewWorker(st, targets, webhook.Options{
		BaseBackoff:  50 * time.Millisecond,
		MaxBackoff:   2 * time.Second,
		PollInterval: 20 * time.Millisecond,
	})
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { defer close(stopped); w.Run(ctx) }()
	defer func() { cancel(); <-stopped }()

	queue := func(zone string, count int) map[string]bool {
		ids := map[string]bool{}
		var b storage.Batch
		now := time.Now()
		for i := range count {
			var id idletrack.ID
			copy(id[:], fmt.Sprintf("%s-%012d", zone[:3], i))
			ev := webhook.EndedEvent(idletrack.End{
				Session: idletrack.Session{ID: id, User: strconv.Itoa(i), StartedAt: now.Add(-time.Hour).UnixNano(), LastActivity: now.Add(-time.Minute).UnixNano(), Requests: 3},
				Zone:    zone, Reason: idletrack.ReasonIdle, EndedAt: now.UnixNano(),
			}, now)
			ev.Zone = zone
			ids[ev.ID] = true
			b.Events = append(b.Events, ev)
		}
		if _, err := st.Apply(context.Background(), &b); err != nil {
			t.Fatal(err)
		}
		w.Kick()
		return ids
	}

	// 1. Down: connection refused for a long stretch. Attempts pile up in
	// the outbox, never in the dead letters.
	outage := queue("outage", n)
	start := time.Now()
	Consistently(t, down, 100*time.Millisecond, func() error {
		if _, dead, err := st.OutboxStats(context.Background()); err != nil || dead != 0 {
			return fmt.Errorf("dead letters during an outage with attempts left: %d (%v)", dead, err)
		}
		return nil
	})
	// 2. Slow: the receiver answers only after the attempt timeout.
	recv.Hang()
	url.Store(recv.Hook())
	recv.WaitAttempts(t, 1, 10*time.Second)
	Consistently(t, slow, 100*time.Millisecond, func() error {
		if evs := recv.Events(); len(evs) != 0 {
			return fmt.Errorf("an event counted as delivered while the receiver hangs")
		}
		return nil
	})
	// 3. 500, then 4. 429 with Retry-After: 1.
	recv.Fail(http.StatusInternalServerError, "")
	time.Sleep(failing) // the receiver fails on purpose for this long; attempts go on
	mark429 := len(recv.Attempts())
	recv.Fail(http.StatusTooManyRequests, "1")
	time.Sleep(failing)
	// Healthy again: everything arrives.
	recv.Succeed()
	Eventually(t, 30*time.Second, 20*time.Millisecond, func() error {
		if got := len(recv.Events()); got < n {
			evs, err := st.Due(context.Background(), time.Now().Add(time.Hour).UnixNano(), 1000, nil)
			msg := fmt.Sprintf("%d of %d delivered; outbox (%v):", got, n, err)
			for _, e := range evs {
				msg += fmt.Sprintf("\n  %s attempts=%d next_at=%s last=%q", e.ID, e.Attempts, time.Unix(0, e.NextAt).Format("15:04:05.000"), e.LastError)
			}
			return fmt.Errorf("%s\n  now %s", msg, time.Now().Format("15:04:05.000"))
		}
		return nil
	})
	outageTook := time.Since(start)

	attempts := map[string][]Attempt{}
	for _, a := range recv.Attempts() {
		attempts[a.ID] = append(attempts[a.ID], a)
	}
	for _, ev := range recv.Events() {
		if !outage[ev.ID] {
			t.Errorf("unexpected event %s", ev.ID)
		}
		if ev.Deliveries != 1 {
			t.Errorf("%s delivered %d times after a 2xx", ev.ID, ev.Deliveries)
		}
	}
	// Retry-After is a floor: after a 429 with Retry-After: 1 the next
	// attempt of that event comes at least 1 s later (backoff alone would
	// allow 50 ms).
	checked429 := 0
	for id, as := range attempts {
		for i := 1; i < len(as); i++ {
			if as[i-1].Status == http.StatusTooManyRequests {
				checked429++
				if gap := as[i].At.Sub(as[i-1].At); gap < time.Second-20*time.Millisecond {
					t.Errorf("%s: retried %s after a 429 with Retry-After: 1", id, gap)
				}
			}
		}
	}
	if checked429 == 0 {
		t.Errorf("no event was retried after a 429: the Retry-After check saw nothing (attempts since 429 phase: %d)", len(recv.Attempts())-mark429)
	}
	// The worker removes an event from the outbox just after the 2xx.
	Eventually(t, 5*time.Second, 20*time.Millisecond, func() error {
		pending, dead, err := st.OutboxStats(context.Background())
		if err != nil || pending != 0 || dead != 0 {
			return fmt.Errorf("after recovery: pending %d, dead %d (%v), want 0, 0", pending, dead, err)
		}
		return nil
	})

	// 5. Attempts run out: dead letters, and only then.
	recv.Fail(http.StatusInternalServerError, "") // before queueing: none may slip through
	deadIDs := queue("dead", 10)
	Eventually(t, 30*time.Second, 20*time.Millisecond, func() error {
		dl, err := st.DeadLetters(context.Background(), 100)
		if err != nil {
			return err
		}
		per := map[string]int{}
		for _, a := range recv.Attempts() {
			per[a.ID]++
		}
		for _, e := range dl {
			if !deadIDs[e.ID] {
				t.Fatalf("%s is a dead letter but had attempts left", e.ID)
			}
			if e.Attempts != deadMax || per[e.ID] != deadMax {
				t.Fatalf("%s buried after %d attempts (receiver saw %d), want %d", e.ID, e.Attempts, per[e.ID], deadMax)
			}
		}
		if len(dl) != len(deadIDs) {
			return fmt.Errorf("%d of %d dead letters", len(dl), len(deadIDs))
		}
		return nil
	})
	before := len(recv.Attempts())
	recv.Succeed()
	Consistently(t, time.Second, 50*time.Millisecond, func() error {
		if got := len(recv.Attempts()); got != before {
			return fmt.Errorf("a dead letter was attempted again without being revived")
		}
		return nil
	})
	// Revived, they are delivered.
	if k, err := st.Revive(context.Background(), nil, time.Now().UnixNano()); err != nil || k != len(deadIDs) {
		t.Fatalf("revive: %d, %v", k, err)
	}
	w.Kick()
	recv.WaitEvents(t, n+len(deadIDs), 10*time.Second)

	total := len(recv.Attempts())
	summary := fmt.Sprintf("receiver outage: %d events through %s down + %s hanging + %s of 500 + %s of 429 (Retry-After: 1, %d retries checked), "+
		"all delivered %s after the outage began, max attempts per event %d of %d; %d dead letters after exactly %d attempts, revived and delivered; %d attempts in all",
		n, down, slow, failing, failing, checked429, outageTook.Round(100*time.Millisecond), maxPer(attempts), maxAttempts, len(deadIDs), deadMax, total)
	t.Log(summary)
	artifact(t, "reliability.txt", time.Now().UTC().Format(time.RFC3339)+" "+summary)
}

func maxPer(m map[string][]Attempt) int {
	n := 0
	for _, as := range m {
		n = max(n, len(as))
	}
	return n
}

const deadLetterCaddyfile = `{
	admin 127.0.0.1:{ADMIN}
	default_bind 127.0.0.1
	grace_period 3s
}
http://127.0.0.1:{PORT} {
	idle_session {
		cookie sid
		user_header X-Idle-User
		idle 1s
		store bolt {DB}
		webhook {HOOK} {
			secret {SECRET}
			timeout 500ms
			max_attempts 3
		}
	}
	reverse_proxy {UP}
}
`

// TestReliabilityDeadLetterE2E: through the binary, a receiver answering
// 500 gets exactly max_attempts attempts, then the event is a dead letter
// (metric and store), and nothing more is sent.
func TestReliabilityDeadLetterE2E(t *testing.T) {
	needCaddy(t)
	up, recv := NewUpstream(t), NewReceiver(t)
	port := strconv.Itoa(FreePort(t))
	db := filepath.Join(t.TempDir(), "sessions.db")
	caddy := StartCaddy(t, Render(t, deadLetterCaddyfile, map[string]string{
		"PORT": port, "UP": up.Addr, "HOOK": recv.Hook(), "SECRET": TestSecret, "DB": db,
	}))
	c := NewClient("http://127.0.0.1:" + port)
	recv.Fail(http.StatusInternalServerError, "")
	if r := c.Post(t, "/login?user=7"); r.StatusCode != http.StatusOK {
		t.Fatalf("login: %s", r)
	}
	Eventually(t, 30*time.Second, 50*time.Millisecond, func() error {
		if d := sumMetric(caddy.Metrics(t), "caddy_idle_session_webhook_deliveries_total", `outcome="dead"`); d != 1 {
			return fmt.Errorf("dead deliveries %v", d)
		}
		return nil
	})
	as := recv.Attempts()
	if len(as) != 3 {
		t.Fatalf("want exactly max_attempts=3 attempts before the dead letter: %s", recv.Summary())
	}
	recv.Succeed()
	Consistently(t, 3*time.Second, 100*time.Millisecond, func() error {
		if len(recv.Attempts()) != 3 {
			return fmt.Errorf("a dead letter was sent again: %s", recv.Summary())
		}
		return nil
	})
	m := caddy.Metrics(t)
	if f := sumMetric(m, "caddy_idle_session_webhook_deliveries_total", `outcome="failure"`); f != 3 {
		t.Errorf("failure attempts metric = %v, want 3", f)
	}
	if p := sumMetric(m, "caddy_idle_session_webhook_pending"); p != 0 {
		t.Errorf("pending = %v after the dead letter", p)
	}
	caddy.Stop()
	st, err := storage.OpenBolt(db, storage.BoltOptions{LockTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	dl, err := st.DeadLetters(context.Background(), 10)
	if err != nil || len(dl) != 1 || dl[0].ID != as[0].ID || dl[0].Attempts != 3 || dl[0].LastError == "" {
		t.Fatalf("dead letters in the store: %+v (%v), want %s after 3 attempts with its last error", dl, err, as[0].ID)
	}
	t.Logf("dead letter %s after %d attempts, last error %q", dl[0].ID, dl[0].Attempts, dl[0].LastError)
}
