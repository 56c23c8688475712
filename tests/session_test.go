package tests

// The core issue: sessions that go quiet are ended on time and reported
// once, with the right online time, across restarts and crashes.

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Times in payloads may have whole-second precision (docs/design.md's example),
// so timestamps are compared with this much slack; durations with 1 s.
const tsTol = 1500 * time.Millisecond

func TestSilentSessionReportedOnce(t *testing.T) {
	const idle = 2 * time.Second
	s := startStack(t, "idle 2s")
	sid, loginAt := s.login("42")

	// Activity spread over ~2.8 s, every gap well inside idle, so the
	// duration is long enough to tell "login to last request" from zero.
	// The ticker paces the requests; it waits for nothing.
	tick := time.NewTicker(700 * time.Millisecond)
	defer tick.Stop()
	var last time.Time
	for range 4 {
		<-tick.C
		last = s.page(sid).At
	}
	tick.Stop()
	deadline := last.Add(idle)

	evs := s.Recv.WaitEvents(t, 1, idle+20*time.Second)
	ev := evs[0]
	lag := ev.ReceivedAt.Sub(deadline)
	lagFromEnd := ev.ReceivedAt.Sub(ev.Data.EndedAt)
	t.Logf("expiry lag: %s after the idle deadline seen by the client (%s after the event's ended_at)",
		lag.Round(time.Millisecond), lagFromEnd.Round(time.Millisecond))
	artifact(t, "expiry_lag.txt", fmt.Sprintf("%s %s idle=%s lag_ms=%d lag_from_ended_at_ms=%d",
		time.Now().UTC().Format(time.RFC3339), t.Name(), idle, lag.Milliseconds(), lagFromEnd.Milliseconds()))

	checkEnded(t, ev, sid, "42", "idle")
	d := ev.Data
	wantDur := last.Sub(loginAt).Seconds()
	if diff := d.DurationSeconds - wantDur; diff > 1 || diff < -1 {
		t.Errorf("duration_seconds = %v, want %.2f ± 1 (login to last request)", d.DurationSeconds, wantDur)
	}
	near(t, "started_at", d.StartedAt, loginAt, tsTol)
	near(t, "last_activity_at", d.LastActivityAt, last, tsTol)
	near(t, "ended_at", d.EndedAt, deadline, tsTol)
	if d.Requests < 4 || d.Requests > 5 {
		t.Errorf("requests = %d, want 4 pages (+ the login)", d.Requests)
	}
	if ev.ReceivedAt.Before(deadline.Add(-tsTol)) {
		t.Errorf("ended %s before its idle deadline", deadline.Sub(ev.ReceivedAt))
	}

	exactlyOne(t, s.Recv, ev.ID, 3*time.Second)

	// The browser comes back with the old cookie: refused, told to forget
	// it, and the application never hears of it.
	opt, probe := Probe()
	r := s.C.Get(t, "/", WithCookie(UpstreamCookie, sid), opt)
	if r.StatusCode != http.StatusUnauthorized {
		t.Errorf("replayed cookie: %d, want 401: %s", r.StatusCode, r)
	}
	if !r.ClearsCookie(UpstreamCookie) {
		t.Errorf("refusal does not clear %s: %v", UpstreamCookie, r.Header.Values("Set-Cookie"))
	}
	if seen := s.Up.Probed(probe); len(seen) != 0 {
		t.Errorf("upstream saw the refused request: %+v", seen)
	}
	// Refusing the replay is not a second end.
	exactlyOne(t, s.Recv, ev.ID, time.Second)
}

func TestStatusPathDoesNotExtend(t *testing.T) {
	s := startStack(t, "idle 2s")
	sid, loginAt := s.login("42")

	first := s.status(sid)
	if !first.Active || first.IdleTimeoutSeconds != 2 || first.RemainingSeconds > 2 {
		t.Fatalf("fresh session status: %+v", first)
	}
	near(t, "expires_at", first.ExpiresAt, loginAt.Add(2*time.Second), tsTol)

	// Poll the status far past the idle timeout. Were polling activity,
	// expires_at would move and the session would never end.
	var endedSeen time.Time
	polls := 0
	Eventually(t, 20*time.Second, 200*time.Millisecond, func() error {
		st := s.status(sid)
		polls++
		if st.Active {
			if st.ExpiresAt.After(first.ExpiresAt.Add(900 * time.Millisecond)) {
				t.Fatalf("status poll %d moved expires_at from %s to %s", polls, first.ExpiresAt, st.ExpiresAt)
			}
			if st.RemainingSeconds > first.RemainingSeconds {
				t.Fatalf("status poll %d: remaining_seconds grew from %v to %v", polls, first.RemainingSeconds, st.RemainingSeconds)
			}
			return fmt.Errorf("still active after %d polls, %v s remaining", polls, st.RemainingSeconds)
		}
		endedSeen = st.at
		return nil
	})
	t.Logf("%d status polls; the session ended %s after its first expires_at", polls, endedSeen.Sub(first.ExpiresAt).Round(time.Millisecond))
	if polls < 5 {
		t.Errorf("only %d polls before the end: the test proves nothing", polls)
	}
	for _, r := range s.Up.Requests() {
		if r.Path == statusPath {
			t.Errorf("the status path reached the upstream: %+v", r)
		}
	}

	ev := s.Recv.WaitEvents(t, 1, 20*time.Second)[0]
	checkEnded(t, ev, sid, "42", "idle")
	near(t, "last_activity_at", ev.Data.LastActivityAt, loginAt, tsTol)
	near(t, "ended_at", ev.Data.EndedAt, loginAt.Add(2*time.Second), tsTol)
	if ev.Data.Requests > 1 {
		t.Errorf("requests = %d: status polls were counted", ev.Data.Requests)
	}
	exactlyOne(t, s.Recv, ev.ID, time.Second)
}

func TestUserHeaderStripped(t *testing.T) {
	s := startStack(t, "idle 1m")
	login := s.C.Post(t, "/login?user=42")
	sid := login.SetCookie(UpstreamCookie)
	if login.StatusCode != http.StatusOK || sid == nil {
		t.Fatalf("login: %s", login)
	}
	if v := login.Header.Values(UserHeader); len(v) != 0 {
		t.Errorf("login response carries %s: %q", UserHeader, v)
	}
	page := s.page(sid.Value)
	if !bytes.Contains(page.Body, []byte(`"user":"42"`)) {
		t.Fatalf("upstream did not know the user (so it sent no header): %s", page)
	}
	if v := page.Header.Values(UserHeader); len(v) != 0 {
		t.Errorf("page response carries %s: %q", UserHeader, v)
	}
	html := s.C.Get(t, "/", WithCookie(UpstreamCookie, sid.Value), Navigation())
	if v := html.Header.Values(UserHeader); html.StatusCode != http.StatusOK || len(v) != 0 {
		t.Errorf("HTML page: %d, %s %q", html.StatusCode, UserHeader, v)
	}

	// Stripped, but read: the session belongs to user 42.
	status, body := s.Caddy.Admin(t, http.MethodGet, "/idle-sessions/?user=42", nil)
	var list struct {
		Count    int `json:"count"`
		Sessions []struct {
			Session string `json:"session"`
			User    string `json:"user"`
		} `json:"sessions"`
	}
	if status != http.StatusOK || json.Unmarshal(body, &list) != nil {
		t.Fatalf("admin GET /idle-sessions/?user=42: %d %s", status, body)
	}
	if list.Count != 1 || len(list.Sessions) != 1 || list.Sessions[0].User != "42" {
		t.Errorf("admin API does not show user 42's one session: %s", body)
	}
	if bytes.Contains(body, []byte(sid.Value)) {
		t.Errorf("admin API shows the raw session ID: %s", body)
	}
}

func TestRestartKeepsSession(t *testing.T) {
	const idle = 6 * time.Second // room for a graceful stop and a start
	s := startStack(t, "idle 6s")
	sid, loginAt := s.login("42")
	before := s.page(sid)

	s.Caddy.Stop()
	s.Caddy.Restart()
	if took := time.Since(before.At); took > idle-time.Second {
		t.Fatalf("stop and restart took %s, too close to idle %s to test anything", took, idle)
	}
	db := filepath.Join(s.Caddy.DataDir(), "idlegate", "sessions.db")
	if _, err := os.Stat(db); err != nil {
		t.Errorf("default store: %v", err)
	}

	after := s.page(sid)
	if after.ClearsCookie(UpstreamCookie) {
		t.Fatalf("restarted caddy cleared the live session's cookie: %s", after)
	}
	if st := s.status(sid); !st.Active {
		t.Fatalf("session inactive after restart: %+v", st)
	}
	last := after.At

	ev := s.Recv.WaitEvents(t, 1, idle+20*time.Second)[0]
	checkEnded(t, ev, sid, "42", "idle")
	near(t, "started_at (from before the restart)", ev.Data.StartedAt, loginAt, tsTol)
	near(t, "last_activity_at (after the restart)", ev.Data.LastActivityAt, last, tsTol)
	near(t, "ended_at", ev.Data.EndedAt, last.Add(idle), tsTol)
	if want := last.Sub(loginAt).Seconds(); ev.Data.DurationSeconds-want > 1 || want-ev.Data.DurationSeconds > 1 {
		t.Errorf("duration_seconds = %v, want %.2f ± 1", ev.Data.DurationSeconds, want)
	}
	if ev.Data.Requests < 2 {
		t.Errorf("requests = %d: the count was lost across the restart", ev.Data.Requests)
	}
	exactlyOne(t, s.Recv, ev.ID, 3*time.Second)
}

func TestKillWithPendingWebhookStillDelivers(t *testing.T) {
	s := startStack(t, "idle 1s")
	s.Recv.Fail(http.StatusServiceUnavailable, "1")
	sid, _ := s.login("42")

	// Two failed attempts: the event is in the outbox and being retried.
	attempts := s.Recv.WaitAttempts(t, 2, 30*time.Second)
	id := attempts[0].ID
	for _, a := range attempts {
		if a.ID != id || a.Type != "session.ended" {
			t.Fatalf("retries must keep the webhook-id: %s", s.Recv.Summary())
		}
	}
	if n := len(s.Recv.Events()); n != 0 {
		t.Fatalf("an event counted as delivered while failing: %s", s.Recv.Summary())
	}

	s.Caddy.Kill() // a crash: no Cleanup, no flush
	s.Recv.Succeed()
	failedBefore := len(s.Recv.Attempts())
	s.Caddy.Restart()

	ev := s.Recv.WaitEvents(t, 1, 60*time.Second)[0]
	if ev.ID != id {
		t.Errorf("delivered webhook-id %s, the failed attempts had %s", ev.ID, id)
	}
	checkEnded(t, ev, sid, "42", "idle")
	t.Logf("delivered after %d failed attempts before the crash, %d attempts in all", failedBefore, ev.Attempts)
	exactlyOne(t, s.Recv, id, 3*time.Second)

	// And the crash did not bring the session back.
	r := s.C.Get(t, "/", WithCookie(UpstreamCookie, sid))
	if r.StatusCode != http.StatusUnauthorized {
		t.Errorf("ended session after a crash: %d, want 401", r.StatusCode)
	}
}

// TestKillKeepsJournaledActivity: a flush with nothing but activity goes
// to the activity journal beside the bbolt file, not to the file; a crash
// right after it loses none of it.
func TestKillKeepsJournaledActivity(t *testing.T) {
	const idle = 6 * time.Second
	s := startStack(t, "idle 6s")
	sid, _ := s.login("42")
	var last time.Time
	for range 5 {
		last = s.page(sid).At
	}
	// Wait until the journal holds the pages' activity: one session's
	// request count of at least 5 (the flush may have split the pages).
	journal := filepath.Join(s.Caddy.DataDir(), "idlegate", "sessions.db-activity")
	var journaled uint32
	Eventually(t, 10*time.Second, 50*time.Millisecond, func() error {
		b, err := os.ReadFile(journal)
		if err != nil {
			return err
		}
		if journaled = maxJournaledRequests(b); journaled < 5 {
			return fmt.Errorf("the journal holds %d requests of the session, not yet the 5 pages'", journaled)
		}
		return nil
	})
	s.Caddy.Kill() // a crash: no Cleanup, no flush
	s.Caddy.Restart()

	ev := s.Recv.WaitEvents(t, 1, idle+20*time.Second)[0]
	checkEnded(t, ev, sid, "42", "idle")
	if ev.Data.Requests < int(journaled) {
		t.Errorf("requests = %d: the journal held %d, lost in the crash", ev.Data.Requests, journaled)
	}
	near(t, "last_activity_at", ev.Data.LastActivityAt, last, tsTol)
	near(t, "ended_at", ev.Data.EndedAt, last.Add(idle), tsTol)
	exactlyOne(t, s.Recv, ev.ID, 3*time.Second)
}

// maxJournaledRequests reads a fresh activity journal (docs/operations.md;
// storage/boltjournal.go: frames from offset 4096 of BE(len), CRC, BE(seq),
// BE(zone length), zone, then the log value: a tag byte and 36-byte
// entries of ID, last activity, requests, identity) and returns the
// largest request count of its entries.
func maxJournaledRequests(b []byte) uint32 {
	var most uint32
	for off := 4096; off+8 <= len(b); {
		n := int(binary.BigEndian.Uint32(b[off:]))
		if n == 0 || off+8+n > len(b) {
			break
		}
		p := b[off+8 : off+8+n]
		v := p[10+int(binary.BigEndian.Uint16(p[8:])):]
		for e := v[1:]; len(e) >= 36; e = e[36:] {
			most = max(most, binary.BigEndian.Uint32(e[24:]))
		}
		off += 8 + n
	}
	return most
}
