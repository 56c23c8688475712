package tests

// Several Caddy instances behind one Redis behave like one instance:
// activity is shared, each end is claimed once and reported once, an end or
// rotation on one instance reaches the others at once, a crashed instance's
// webhook is delivered by another, and a Redis restart loses nothing.

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/idlegate/idlegate/internal/redistest"
)

// sharedActivity runs the core scenario on a fleet of three: sessions whose
// requests rotate over the instances, so each instance sees a session less
// often than its idle timeout, are never refused; once silent, each ends
// exactly once across the fleet. It returns the end-to-webhook lags.
func sharedActivity(t *testing.T, f *fleet, idle time.Duration, sessions int) []time.Duration {
	t.Helper()
	n := len(f.Nodes)
	sids := make([]string, sessions)
	users := make([]string, sessions)
	for k := range sessions {
		users[k] = strconv.Itoa(100 + k)
		sids[k], _ = f.login(k%n, users[k])
	}
	// Every round each session visits the next instance; an instance sees
	// the session again after n rounds, longer than idle.
	round := idle * 4 / 10
	last := make([]time.Time, sessions)
	tick := time.NewTicker(round)
	for r := range 2 * n {
		<-tick.C
		var wg sync.WaitGroup
		var mu sync.Mutex
		var refused []string
		for k := range sessions {
			wg.Go(func() {
				i := (k + r + 1) % n
				at := time.Now()
				if st := f.get(i, sids[k]); st != http.StatusOK {
					mu.Lock()
					refused = append(refused, fmt.Sprintf("session %d on instance %d: %d", k, i, st))
					mu.Unlock()
				}
				last[k] = at
			})
		}
		wg.Wait()
		if len(refused) > 0 {
			t.Fatalf("round %d: active sessions refused: %v", r, refused)
		}
	}
	tick.Stop()

	evs := f.Recv.WaitEvents(t, sessions, idle+30*time.Second)
	// Nothing more arrives: one event per session across all instances.
	Consistently(t, 2*time.Second, 100*time.Millisecond, func() error {
		if got := f.Recv.Events(); len(got) != sessions {
			return fmt.Errorf("%d events for %d sessions: %s", len(got), sessions, f.Recv.Summary())
		}
		for _, e := range f.Recv.Events() {
			if e.Deliveries != 1 {
				return fmt.Errorf("event %s delivered %d times", e.ID, e.Deliveries)
			}
		}
		return nil
	})
	byUser := map[string]Event{}
	for _, e := range evs {
		if _, dup := byUser[e.Data.User]; dup {
			t.Errorf("two events for user %s", e.Data.User)
		}
		byUser[e.Data.User] = e
	}
	var lags []time.Duration
	for k := range sessions {
		e, ok := byUser[users[k]]
		if !ok {
			t.Errorf("no event for session %d (user %s)", k, users[k])
			continue
		}
		checkEnded(t, e, sids[k], users[k], "idle")
		if e.Data.Requests < 2*n {
			t.Errorf("session %d: requests = %d, want at least %d: activity of other instances is missing", k, e.Data.Requests, 2*n)
		}
		near(t, "last_activity_at", e.Data.LastActivityAt, last[k], tsTol)
		lags = append(lags, e.ReceivedAt.Sub(last[k].Add(idle)))
	}
	// Replays are refused by every instance.
	for i := range n {
		if st := f.get(i, sids[0]); st != http.StatusUnauthorized {
			t.Errorf("instance %d: replay of an ended session: %d, want 401", i, st)
		}
	}
	return lags
}

func lagSummary(lags []time.Duration) string {
	if len(lags) == 0 {
		return "no lags"
	}
	s := slices.Clone(lags)
	slices.Sort(s)
	return fmt.Sprintf("n=%d median=%s max=%s min=%s", len(s), s[len(s)/2].Round(time.Millisecond),
		s[len(s)-1].Round(time.Millisecond), s[0].Round(time.Millisecond))
}

func TestMultiSharedActivityOneEnd(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	const idle = 2 * time.Second
	f := startFleet(t, 3, idle, redisStore{URL: r.URL()})
	lags := sharedActivity(t, f, idle, 12)
	t.Logf("end-to-webhook lag with 3 instances (idle deadline to receipt): %s", lagSummary(lags))
	artifact(t, "multi_lag.txt", fmt.Sprintf("%s %s idle=%s %s", time.Now().UTC().Format(time.RFC3339), t.Name(), idle, lagSummary(lags)))
	// Who delivered: the instances share the outbox.
	from := map[string]int{}
	for _, i := range f.Tap.From() {
		from[i]++
	}
	t.Logf("webhook attempts by instance: %v", from)
}

func TestMultiCluster(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("Redis Cluster scenario: skipped under -short")
	}
	addrs := redistest.Cluster(t)
	const idle = 2 * time.Second
	f := startFleet(t, 3, idle, redisStore{URL: "redis://" + addrs[0], Lines: []string{"addrs " + addrs[1] + " " + addrs[2]}})
	lags := sharedActivity(t, f, idle, 6)
	t.Logf("Cluster: end-to-webhook lag with 3 instances: %s", lagSummary(lags))
	logoutReachesOthers(t, f)
}

func TestMultiEndsReachEveryInstance(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	f := startFleet(t, 3, time.Minute, redisStore{URL: r.URL()})
	logoutReachesOthers(t, f)

	// Revoke on instance 2 through its admin API: 0 and 1 refuse at once.
	sid, _ := f.login(1, "43")
	for i := range 3 {
		if st := f.get(i, sid); st != http.StatusOK {
			t.Fatalf("instance %d: %d", i, st)
		}
	}
	if st, body := f.Nodes[2].Caddy.Admin(t, http.MethodDelete, "/idle-sessions/?user=43", nil); st/100 != 2 {
		t.Fatalf("revoke: %d %s", st, body)
	}
	refusedEverywhere(t, f, sid, "revoke on instance 2")

	// Rotation on instance 0: the old value stops working everywhere after
	// rotation_grace (1s); the new one works everywhere.
	old, _ := f.login(0, "44")
	for i := range 3 {
		if st := f.get(i, old); st != http.StatusOK {
			t.Fatalf("instance %d: %d", i, st)
		}
	}
	rotated, at := f.login(0, "44", WithCookie(UpstreamCookie, old))
	if rotated == old {
		t.Fatal("login did not rotate the cookie")
	}
	for i := range 3 {
		if st := f.get(i, rotated); st != http.StatusOK {
			t.Errorf("instance %d: rotated value: %d, want 200", i, st)
		}
	}
	time.Sleep(time.Until(at.Add(1200 * time.Millisecond))) // past rotation_grace: a fixed rule, not a wait for a result
	for i := range 3 {
		if st := f.get(i, old); st != http.StatusUnauthorized {
			t.Errorf("instance %d: rotated-away value after its grace: %d, want 401", i, st)
		}
		if st := f.get(i, rotated); st != http.StatusOK {
			t.Errorf("instance %d: rotated value: %d, want 200", i, st)
		}
	}
	evs := f.Recv.WaitEvents(t, 2, 10*time.Second)
	reasons := map[string]string{}
	for _, e := range evs {
		reasons[e.Data.User] = e.Data.Reason
	}
	if reasons["42"] != "logout" || reasons["43"] != "revoked" {
		t.Errorf("events: %s", f.Recv.Summary())
	}
	Consistently(t, 1500*time.Millisecond, 100*time.Millisecond, func() error {
		if n := len(f.Recv.Events()); n != 2 {
			return fmt.Errorf("%d events, want 2 (logout, revoke; a rotation ends nothing): %s", n, f.Recv.Summary())
		}
		return nil
	})
}

// logoutReachesOthers: a session known to every instance is logged out on
// instance 0; 1 and 2 refuse it within a second.
func logoutReachesOthers(t *testing.T, f *fleet) {
	t.Helper()
	sid, _ := f.login(0, "42")
	for i := range f.Nodes {
		if st := f.get(i, sid); st != http.StatusOK {
			t.Fatalf("instance %d: %d", i, st)
		}
	}
	r := f.Nodes[0].C.Post(t, "/logout", WithCookie(UpstreamCookie, sid))
	if r.StatusCode/100 != 2 {
		t.Fatalf("logout: %s", r)
	}
	refusedEverywhere(t, f, sid, "logout on instance 0")
}

func refusedEverywhere(t *testing.T, f *fleet, sid, what string) {
	t.Helper()
	start := time.Now()
	for i := range f.Nodes {
		Eventually(t, time.Second, 20*time.Millisecond, func() error {
			if st := f.get(i, sid); st != http.StatusUnauthorized {
				return fmt.Errorf("instance %d still answers %d after %s", i, st, what)
			}
			return nil
		})
	}
	t.Logf("%s: refused by every instance after %s", what, time.Since(start).Round(time.Millisecond))
}

func TestMultiCrashBeforeDelivery(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	const idle = 2 * time.Second
	f := startFleet(t, 3, idle, redisStore{URL: r.URL()})
	f.Recv.Hang()
	sid, _ := f.login(1, "45")
	if st := f.get(2, sid); st != http.StatusOK {
		t.Fatalf("instance 2: %d", st)
	}
	// The end is claimed and its delivery starts on one instance; it hangs.
	f.Recv.WaitAttempts(t, 1, idle+20*time.Second)
	from := f.Tap.From()
	k, err := strconv.Atoi(from[0])
	if err != nil {
		t.Fatalf("tap: %v", from)
	}
	t.Logf("instance %d claimed the end and is delivering; killing it", k)
	f.Nodes[k].Caddy.Kill()
	f.Recv.Succeed()
	// Another instance takes the event once the dead one's lease (60 s)
	// has run out.
	killed := time.Now()
	evs := f.Recv.WaitEvents(t, 1, 90*time.Second)
	t.Logf("delivered %s after the kill", evs[0].ReceivedAt.Sub(killed).Round(time.Millisecond))
	checkEnded(t, evs[0], sid, "45", "idle")
	from = f.Tap.From()
	if by := from[len(from)-1]; by == strconv.Itoa(k) {
		t.Errorf("delivered by the killed instance %d?", k)
	}
	exactlyOne(t, f.Recv, evs[0].ID, 2*time.Second)
}

func TestMultiRedisRestart(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	const idle = 3 * time.Second
	f := startFleet(t, 3, idle, redisStore{URL: r.URL()})
	active, _ := f.login(0, "50")
	quiet, _ := f.login(1, "51")
	if st := f.get(2, quiet); st != http.StatusOK {
		t.Fatalf("instance 2: %d", st)
	}

	r.Kill()
	down := time.Now()
	// Redis is away for longer than idle: the active session, sticky to
	// instance 0, keeps working; the quiet one's deadline passes.
	tick := time.NewTicker(500 * time.Millisecond)
	for time.Since(down) < idle+time.Second {
		<-tick.C
		if st := f.get(0, active); st != http.StatusOK {
			t.Errorf("Redis down %s: active session refused on its instance: %d", time.Since(down).Round(time.Millisecond), st)
		}
	}
	tick.Stop()
	// A new visitor can still sign in (the durable write waits, then goes on).
	fresh, _ := f.login(2, "52")
	if st := f.get(2, fresh); st != http.StatusOK {
		t.Errorf("session started while Redis is down: %d", st)
	}
	errs := 0.0
	for i := range f.Nodes {
		errs += f.metric(i, "caddy_idle_session_store_errors_total")
	}
	if errs == 0 {
		t.Errorf("no store errors counted while Redis was down")
	}
	if got := f.Recv.Events(); len(got) != 0 {
		t.Errorf("events while Redis was down: %s", f.Recv.Summary())
	}

	r.Start()
	t.Logf("Redis back after %s", time.Since(down).Round(time.Millisecond))
	// The quiet session's end, decided during the outage, is delivered once.
	// Meanwhile the active session stays active on its instance: the wait
	// may well be longer than idle.
	var evs []Event
	Eventually(t, 20*time.Second, 500*time.Millisecond, func() error {
		if st := f.get(0, active); st != http.StatusOK {
			t.Errorf("active session refused on its instance after Redis returned: %d", st)
		}
		if st := f.get(2, fresh); st != http.StatusOK {
			t.Errorf("session started during the outage refused on its instance after Redis returned: %d", st)
		}
		if evs = f.Recv.Events(); len(evs) == 0 {
			return fmt.Errorf("no webhook yet")
		}
		return nil
	})
	checkEnded(t, evs[0], quiet, "51", "idle")
	// The active session is active for every instance once they have
	// caught up (its activity was only in instance 0's memory).
	Eventually(t, 5*time.Second, 100*time.Millisecond, func() error {
		if st := f.get(0, active); st != http.StatusOK {
			return fmt.Errorf("instance 0: %d", st)
		}
		for i := 1; i < 3; i++ {
			if st := f.get(i, active); st != http.StatusOK {
				return fmt.Errorf("instance %d: %d", i, st)
			}
		}
		return nil
	})
	if st := f.get(1, fresh); st != http.StatusOK {
		t.Errorf("session started during the outage, on another instance: %d", st)
	}
	// Silence: the other two end as well; three events in all, each once.
	f.Recv.WaitEvents(t, 3, idle+20*time.Second)
	Consistently(t, 2*time.Second, 100*time.Millisecond, func() error {
		got := f.Recv.Events()
		users := map[string]int{}
		for _, e := range got {
			users[e.Data.User]++
			if e.Deliveries != 1 {
				return fmt.Errorf("event %s delivered %d times", e.ID, e.Deliveries)
			}
		}
		if len(got) != 3 || users["50"] != 1 || users["51"] != 1 || users["52"] != 1 {
			return fmt.Errorf("want one event each for users 50, 51, 52: %s", f.Recv.Summary())
		}
		return nil
	})
}

// TestMultiRedisCost drives requests through three instances and counts
// the Redis commands they cause (INFO commandstats before and after),
// against a baseline of the same length without requests.
func TestMultiRedisCost(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	f := startFleet(t, 3, time.Minute, redisStore{URL: r.URL()})
	const sessions = 200
	sids := make([]string, sessions)
	for k := range sessions {
		sids[k], _ = f.login(k%3, strconv.Itoa(1000+k))
	}
	const window = 5 * time.Second
	sum := func(m map[string]int) (n int) {
		for _, v := range m {
			n += v
		}
		return n
	}
	time.Sleep(1500 * time.Millisecond) // let the logins' flushes settle: measuring a steady state, not waiting for a result
	b0 := r.CommandStats()
	time.Sleep(window)
	b1 := r.CommandStats()
	baseline := sum(b1) - sum(b0)

	const rate = 500 // requests per second, over all instances
	s0 := r.CommandStats()
	start := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	sent, failed := 0, 0
	tick := time.NewTicker(time.Second / rate)
	for k := 0; time.Since(start) < window; k++ {
		<-tick.C
		wg.Go(func() {
			st := f.get(k%3, sids[(k*7)%sessions])
			mu.Lock()
			sent++
			if st != http.StatusOK {
				failed++
			}
			mu.Unlock()
		})
	}
	tick.Stop()
	wg.Wait()
	elapsed := time.Since(start)
	time.Sleep(1500 * time.Millisecond) // the last activity flush
	s1 := r.CommandStats()
	loaded := sum(s1) - sum(s0)
	if failed > 0 {
		t.Errorf("%d of %d requests refused or failed", failed, sent)
	}
	perCmd := map[string]int{}
	for k, v := range s1 {
		if d := v - s0[k]; d > 0 {
			perCmd[k] = d
		}
	}
	rps := float64(sent) / elapsed.Seconds()
	extra := float64(loaded) - float64(baseline)*float64(elapsed+1500*time.Millisecond)/float64(window)
	line := fmt.Sprintf("3 instances, %d sessions, %.0f req/s for %s: %d commands (baseline without requests %d per %s); %.3f commands per request above baseline; per command: %v",
		sessions, rps, elapsed.Round(time.Millisecond), loaded, baseline, window, extra/float64(sent), perCmd)
	t.Log(line)
	artifact(t, "multi_redis_cost.txt", time.Now().UTC().Format(time.RFC3339)+" "+line)
}
