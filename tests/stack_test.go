package tests

// The stack most idlegate tests run: Upstream <- Caddy with idle_session <-
// Client, and a Receiver for the webhooks.

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

const statusPath = "/.idlegate/status"

// idleCaddyfile is docs/design.md's contract with the test's own ports. {OPTIONS}
// takes extra idle_session lines (idle, on_expired, ...).
const idleCaddyfile = `{
	admin 127.0.0.1:{ADMIN}
	default_bind 127.0.0.1
	grace_period 3s
}
http://127.0.0.1:{PORT} {
	idle_session {
		cookie sid
		user_header X-Idle-User
		status_path /.idlegate/status
{OPTIONS}
		webhook {HOOK} {
			secret {SECRET}
		}
	}
	reverse_proxy {UP}
}
`

type stack struct {
	t     *testing.T
	Caddy *Caddy
	Up    *Upstream
	Recv  *Receiver
	C     *Client
	Addr  string // 127.0.0.1:port of the site
}

// startStack starts Upstream, Receiver and Caddy with idleCaddyfile and the
// given idle_session option lines.
func startStack(t *testing.T, options ...string) *stack {
	t.Helper()
	needCaddy(t)
	s := &stack{t: t, Up: NewUpstream(t), Recv: NewReceiver(t)}
	port := strconv.Itoa(FreePort(t))
	s.Addr = "127.0.0.1:" + port
	for i, o := range options {
		options[i] = "\t\t" + o
	}
	s.Caddy = StartCaddy(t, Render(t, idleCaddyfile, map[string]string{
		"PORT":    port,
		"UP":      s.Up.Addr,
		"HOOK":    s.Recv.Hook(),
		"SECRET":  TestSecret,
		"OPTIONS": strings.Join(options, "\n"),
	}))
	s.C = NewClient("http://" + s.Addr)
	return s
}

// login signs user in through Caddy and returns the new sid and when the
// response arrived.
func (s *stack) login(user string) (string, time.Time) {
	s.t.Helper()
	r := s.C.Post(s.t, "/login?user="+user)
	c := r.SetCookie(UpstreamCookie)
	if r.StatusCode != http.StatusOK || c == nil || c.Value == "" {
		s.t.Fatalf("login through caddy: %s", r)
	}
	return c.Value, r.At
}

// page GETs / with the sid and requires the Upstream to answer it with the
// cookie intact.
func (s *stack) page(sid string) *Response {
	s.t.Helper()
	opt, probe := Probe()
	r := s.C.Get(s.t, "/", WithCookie(UpstreamCookie, sid), opt)
	if r.StatusCode != http.StatusOK {
		s.t.Fatalf("GET / of a live session: %s", r)
	}
	if seen := s.Up.Probed(probe); len(seen) != 1 || seen[0].SID != sid {
		s.t.Fatalf("upstream did not get the request with its cookie: %+v", seen)
	}
	return r
}

// idleStatus is the status_path document.
type idleStatus struct {
	Active             bool      `json:"active"`
	RemainingSeconds   float64   `json:"remaining_seconds"`
	ExpiresAt          time.Time `json:"expires_at"`
	IdleTimeoutSeconds float64   `json:"idle_timeout_seconds"`
	at                 time.Time
}

// status GETs the status path with sid and checks the document's shape.
func (s *stack) status(sid string) idleStatus {
	s.t.Helper()
	r := s.C.Get(s.t, statusPath, WithCookie(UpstreamCookie, sid), WithHeader("Accept", "application/json"))
	if r.StatusCode != http.StatusOK {
		s.t.Fatalf("GET %s: %s", statusPath, r)
	}
	var keys map[string]json.RawMessage
	r.JSON(s.t, &keys)
	for _, k := range []string{"active", "remaining_seconds", "idle_timeout_seconds"} {
		if _, ok := keys[k]; !ok {
			s.t.Fatalf("status lacks %q: %s", k, r.Body)
		}
	}
	var st idleStatus
	r.JSON(s.t, &st)
	if st.RemainingSeconds != math.Trunc(st.RemainingSeconds) || st.RemainingSeconds < 0 {
		s.t.Fatalf("remaining_seconds is not a whole number >= 0: %s", r.Body)
	}
	if st.Active {
		if _, ok := keys["expires_at"]; !ok {
			s.t.Fatalf("active status lacks expires_at: %s", r.Body)
		}
	} else if st.RemainingSeconds != 0 {
		s.t.Fatalf("inactive status with remaining_seconds %v: %s", st.RemainingSeconds, r.Body)
	}
	st.at = r.At
	return st
}

// checkEnded checks a session.ended event against what the test did.
func checkEnded(t *testing.T, ev Event, sid, user, reason string) {
	t.Helper()
	d := ev.Data
	if ev.Type != "session.ended" || d.Reason != reason || d.User != user || d.Zone != UpstreamCookie {
		t.Errorf("event: type=%q reason=%q user=%q zone=%q, want session.ended/%s/%s/%s: %s",
			ev.Type, d.Reason, d.User, d.Zone, reason, user, UpstreamCookie, ev.Raw)
	}
	if _, err := hex.DecodeString(d.Session); err != nil || d.Session == "" {
		t.Errorf("session %q is not a hex hash", d.Session)
	}
	if strings.Contains(string(ev.Raw), sid) {
		t.Errorf("webhook carries the raw session ID: %s", ev.Raw)
	}
	if ev.Timestamp.IsZero() || d.StartedAt.IsZero() || d.LastActivityAt.IsZero() || d.EndedAt.IsZero() {
		t.Errorf("event lacks a time: %s", ev.Raw)
	}
}

// near fails t unless got is within tol of want.
func near(t *testing.T, what string, got, want time.Time, tol time.Duration) {
	t.Helper()
	if d := got.Sub(want); d > tol || d < -tol {
		t.Errorf("%s = %s, want %s ± %s (off by %s)", what, got.Format(time.RFC3339Nano), want.Format(time.RFC3339Nano), tol, d)
	}
}

// exactlyOne waits a few sweeps long and fails t if any event other than
// the one given arrives, or if that one is delivered again after a 2xx.
func exactlyOne(t *testing.T, r *Receiver, id string, window time.Duration) {
	t.Helper()
	Consistently(t, window, 100*time.Millisecond, func() error {
		evs := r.Events()
		if len(evs) != 1 || evs[0].ID != id || evs[0].Deliveries != 1 {
			return fmt.Errorf("want only %s, delivered once: %s", id, r.Summary())
		}
		for _, a := range r.Attempts() {
			if a.ID != id {
				return fmt.Errorf("attempt with another webhook-id %s: %s", a.ID, r.Summary())
			}
		}
		return nil
	})
}

// artifact appends line to tests/artifacts/name.
func artifact(t *testing.T, name, line string) {
	t.Helper()
	if err := os.MkdirAll("artifacts", 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join("artifacts", name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fmt.Fprintln(f, line)
}
