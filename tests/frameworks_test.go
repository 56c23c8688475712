package tests

// Issue #3: idlegate in front of real applications — Django, Laravel (with
// and without laravel_key), plain PHP and Express — each with its own session
// machinery and its own webhook receiver, which checks the signature itself.
// Every framework runs the same scenario list against one app and one Caddy.

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idlegate/idlegate/sessioncookie"
)

const (
	fwIdle  = 3 * time.Second // idle timeout of every framework test
	fwGrace = 2 * time.Second // rotation_grace
	// remember-me cookie the tests send, cleared by `clear_cookies remember_web_*`
	rememberCookie = "remember_web_59ba36addc2b2f9401580f014c7f58ea4e30989d"
)

var frameworks = []Framework{
	{Name: "django", Dir: "django", Cookie: "sessionid"},
	{Name: "laravel", Dir: "laravel", Cookie: "laravel_session", LaravelKey: true},
	{Name: "laravel_nokey", Dir: "laravel", Cookie: "laravel_session"},
	{Name: "php", Dir: "php", Cookie: "PHPSESSID"},
	{Name: "express", Dir: "express", Cookie: "connect.sid"},
}

// frameworkCaddyfile is the configuration docs/frameworks.md recommends,
// with test timings.
const frameworkCaddyfile = `{
	admin 127.0.0.1:{ADMIN}
	default_bind 127.0.0.1
	grace_period 3s
}
http://127.0.0.1:{PORT} {
	idle_session {
		cookie {COOKIE}
{LARAVEL}
		idle {IDLE}
		rotation_grace {GRACE}
		user_header X-Idle-User
		logout {
			method POST
			path /logout
		}
		passive {
			path /poll
		}
		on_expired redirect /login
		clear_cookies remember_web_*
		webhook http://{APP}/idlegate/webhook {
			secret {SECRET}
			events ended started
		}
	}
	reverse_proxy {APP}
}
`

// fwStack is one framework's app with Caddy in front of it.
type fwStack struct {
	Framework
	App   *App
	Caddy *Caddy
	Base  string
}

func startFramework(t *testing.T, fw Framework) *fwStack {
	t.Helper()
	app := StartApp(t, fw)
	laravel := ""
	if fw.LaravelKey {
		laravel = "\t\tlaravel_key " + app.AppKey
	}
	port := strconv.Itoa(FreePort(t))
	c := StartCaddy(t, Render(t, frameworkCaddyfile, map[string]string{
		"PORT":    port,
		"COOKIE":  fw.Cookie,
		"LARAVEL": laravel,
		"IDLE":    fwIdle.String(),
		"GRACE":   fwGrace.String(),
		"APP":     app.Addr,
		"SECRET":  TestSecret,
	}))
	return &fwStack{Framework: fw, App: app, Caddy: c, Base: "http://127.0.0.1:" + port}
}

func TestFrameworks(t *testing.T) {
	needCaddy(t)
	began := time.Now()
	for _, fw := range frameworks {
		t.Run(fw.Name, func(t *testing.T) {
			s := startFramework(t, fw)
			scenarios := []struct {
				name string
				fn   func(*testing.T, *fwStack)
			}{
				{"idle", scenarioIdle},
				{"logout", scenarioLogout},
				{"passive", scenarioPassive},
				{"rotation", scenarioRotation},
				{"switch_user", scenarioSwitchUser},
				{"forged_webhook", scenarioForgedWebhook},
			}
			for _, sc := range scenarios {
				if !t.Run(sc.name, func(t *testing.T) { sc.fn(t, s) }) {
					// Later scenarios count events from here; a failed one
					// may still deliver. Let it settle before going on.
					s.settle(t)
				}
			}
		})
	}
	t.Logf("all frameworks: %s", time.Since(began).Round(100*time.Millisecond))
}

var userIDs = map[string]string{"alice": "42", "bob": "43"}

// login signs user in through Caddy like a browser: the login page, then
// the form. It returns the agent and when the login request was sent.
func (s *fwStack) login(t *testing.T, user string) (*Agent, time.Time) {
	t.Helper()
	a := NewAgent(s.Base)
	r := a.Do(t, http.MethodGet, "/login", nil, Navigation())
	if r.StatusCode != http.StatusOK || !strings.Contains(string(r.Body), "Sign in") {
		t.Fatalf("GET /login: %s", describe(r))
	}
	return a, s.loginAs(t, a, user)
}

// loginAs posts the login form with the agent's cookies.
func (s *fwStack) loginAs(t *testing.T, a *Agent, user string) time.Time {
	t.Helper()
	r := a.Do(t, http.MethodPost, "/login", url.Values{"username": {user}, "password": {user + "-pw"}})
	if r.StatusCode != http.StatusFound || locationPath(r) != "/" {
		t.Fatalf("POST /login as %s: %s", user, describe(r))
	}
	if a.Cookie(s.Cookie) == "" {
		t.Fatalf("POST /login as %s set no %s: %s", user, s.Cookie, describe(r))
	}
	return a.Sent(r)
}

// page GETs / as a navigation and requires the signed-in page of user.
func (s *fwStack) page(t *testing.T, a *Agent, user string) *Response {
	t.Helper()
	r := a.Do(t, http.MethodGet, "/", nil, Navigation())
	if r.StatusCode != http.StatusOK || !strings.Contains(string(r.Body), "Hello "+user) {
		t.Fatalf("GET / as %s: %s", user, describe(r))
	}
	return r
}

// me GETs /api/me as a script and requires user's answer.
func (s *fwStack) me(t *testing.T, a *Agent, user string) *Response {
	t.Helper()
	r := a.Do(t, http.MethodGet, "/api/me", nil, XHR())
	if r.StatusCode != http.StatusOK || !strings.Contains(string(r.Body), `"`+userIDs[user]+`"`) {
		t.Fatalf("GET /api/me as %s: %s", user, describe(r))
	}
	return r
}

// newEvents waits until the app has recorded at least want session.ended
// events after the first `before`, and returns all events after `before`.
func (s *fwStack) newEvents(t *testing.T, before, want int, timeout time.Duration) []AppEvent {
	t.Helper()
	var evs []AppEvent
	Eventually(t, timeout, 50*time.Millisecond, func() error {
		evs = s.App.Events(t)[before:]
		if n := len(ofType(evs, "session.ended")); n < want {
			return fmt.Errorf("%s app recorded %d of %d session.ended events: %+v", s.Name, n, want, evs)
		}
		return nil
	})
	return evs
}

// noMoreEnded checks for a while that no session.ended event beyond the
// first `upto` events arrives.
func (s *fwStack) noMoreEnded(t *testing.T, upto int, d time.Duration) {
	t.Helper()
	Consistently(t, d, 200*time.Millisecond, func() error {
		evs := s.App.Events(t)
		if len(evs) > upto {
			if extra := ofType(evs[upto:], "session.ended"); len(extra) > 0 {
				return fmt.Errorf("unexpected session.ended: %+v", extra)
			}
		}
		return nil
	})
}

// settle waits, after a failed scenario, until the app's event list has
// stopped growing for longer than an idle timeout, so the next scenario
// starts from a quiet app. (Only failures pay for this.)
func (s *fwStack) settle(t *testing.T) {
	t.Helper()
	n, since := len(s.App.Events(t)), time.Now()
	Eventually(t, 4*fwIdle+30*time.Second, 200*time.Millisecond, func() error {
		if m := len(s.App.Events(t)); m != n {
			n, since = m, time.Now()
		}
		if time.Since(since) < fwIdle+3*time.Second {
			return errNotYet
		}
		return nil
	})
}

func ofType(evs []AppEvent, typ string) []AppEvent {
	var out []AppEvent
	for _, e := range evs {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

// checkAppEnded checks a session.ended event the app recorded.
func (s *fwStack) checkAppEnded(t *testing.T, ev AppEvent, user, reason string) {
	t.Helper()
	d := ev.Data
	if ev.Type != "session.ended" || d.Reason != reason || d.User != userIDs[user] || d.Zone != s.Cookie {
		t.Errorf("event: type=%q reason=%q user=%q zone=%q, want session.ended/%s/%s/%s: %+v",
			ev.Type, d.Reason, d.User, d.Zone, reason, userIDs[user], s.Cookie, ev)
	}
	if d.Session == "" || d.StartedAt.IsZero() || d.LastActivityAt.IsZero() || d.EndedAt.IsZero() {
		t.Errorf("event lacks a field: %+v", ev)
	}
}

// checkUser checks that the app applied the user's session.ended events:
// last_logout_at is the latest ended_at, online_seconds their rounded sum.
func (s *fwStack) checkUser(t *testing.T, user string) {
	t.Helper()
	id := userIDs[user]
	var latest time.Time
	var sum int64
	for _, e := range ofType(s.App.Events(t), "session.ended") {
		if e.Data.User == id {
			sum += int64(math.Round(e.Data.DurationSeconds))
			if e.Data.EndedAt.After(latest) {
				latest = e.Data.EndedAt
			}
		}
	}
	u, ok := s.App.Users(t)[id]
	if !ok {
		t.Fatalf("app has no user %s", id)
	}
	if u.LastLogoutAt == nil {
		t.Fatalf("user %s: last_logout_at is null after a session.ended", id)
	}
	got, err := time.Parse(time.RFC3339, *u.LastLogoutAt)
	if err != nil || got.Sub(latest.UTC().Truncate(time.Second)).Abs() > time.Second {
		t.Errorf("user %s: last_logout_at = %q, want %s (the latest ended_at)", id, *u.LastLogoutAt, latest.UTC().Format(time.RFC3339))
	}
	if u.OnlineSeconds != sum {
		t.Errorf("user %s: online_seconds = %d, want %d (sum of rounded duration_seconds)", id, u.OnlineSeconds, sum)
	}
}

// checkReplay sends the ended session's cookie again, as a script and as a
// navigation: both refused, the cookie and the remember-me cookie cleared,
// the navigation sent to the login page.
func (s *fwStack) checkReplay(t *testing.T, a *Agent, value, reason string) {
	t.Helper()
	raw := s.Cookie + "=" + value + "; " + rememberCookie + "=token"
	r, err := a.SendWith(raw, http.MethodGet, "/api/me", false, XHR())
	if err != nil {
		t.Fatal(err)
	}
	if !Refused(r, s.Cookie) || r.StatusCode != http.StatusUnauthorized || refusalReason(r) != reason {
		t.Errorf("replayed cookie (XHR): want idlegate's 401 session_expired/%s: %s", reason, describe(r))
	}
	if !r.ClearsCookie(rememberCookie) {
		t.Errorf("refusal does not clear %s: %q", rememberCookie, r.Header.Values("Set-Cookie"))
	}
	r, err = a.SendWith(raw, http.MethodGet, "/", false, Navigation())
	if err != nil {
		t.Fatal(err)
	}
	if r.StatusCode != http.StatusSeeOther || locationPath(r) != "/login" || !r.ClearsCookie(s.Cookie) {
		t.Errorf("replayed cookie (navigation): want 303 to /login clearing %s: %s", s.Cookie, describe(r))
	}
}

func near1(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	if math.Abs(got-want) > tol {
		t.Errorf("%s = %.2f, want %.2f ± %.1f", what, got, want, tol)
	}
}

// Activity keeps the session; silence ends it with one idle webhook carrying
// the user and the online time; the replayed cookie is refused.
func scenarioIdle(t *testing.T, s *fwStack) {
	before := len(s.App.Events(t))
	a, loginAt := s.login(t, "alice")
	tick := time.NewTicker(fwIdle / 4)
	var last time.Time
	for range 4 { // 4 requests spread over a whole idle period
		<-tick.C
		last = a.Sent(s.page(t, a, "alice"))
	}
	tick.Stop()
	value := a.Cookie(s.Cookie)

	evs := s.newEvents(t, before, 1, fwIdle+20*time.Second)
	ended := ofType(evs, "session.ended")[0]
	s.checkAppEnded(t, ended, "alice", "idle")
	d := ended.Data
	near1(t, "duration_seconds", d.DurationSeconds, last.Sub(loginAt).Seconds(), 1)
	near(t, "started_at", d.StartedAt, loginAt, tsTol)
	near(t, "last_activity_at", d.LastActivityAt, last, tsTol)
	near(t, "ended_at", d.EndedAt, last.Add(fwIdle), tsTol)
	if d.Requests < 4 {
		t.Errorf("requests = %d, want at least the 4 pages", d.Requests)
	}
	if st := ofType(evs, "session.started"); len(st) != 1 || st[0].Data.User != "42" {
		t.Errorf("want one session.started for user 42, got %+v", st)
	} else {
		near(t, "session.started started_at", st[0].Data.StartedAt, loginAt, tsTol)
	}
	s.checkUser(t, "alice")

	s.checkReplay(t, a, value, "idle")
	s.noMoreEnded(t, before+len(evs), time.Second)
}

// A logout request ends the session at once with reason logout.
func scenarioLogout(t *testing.T, s *fwStack) {
	before := len(s.App.Events(t))
	a, loginAt := s.login(t, "bob")
	last := a.Sent(s.page(t, a, "bob"))
	value := a.Cookie(s.Cookie)
	a.SetCookie(rememberCookie, "token")
	r := a.Do(t, http.MethodPost, "/logout", nil)
	if r.StatusCode != http.StatusFound || locationPath(r) != "/login" {
		t.Fatalf("POST /logout: %s", describe(r))
	}
	if !r.ClearsCookie(rememberCookie) {
		t.Errorf("logout response does not clear %s: %q", rememberCookie, r.Header.Values("Set-Cookie"))
	}
	evs := s.newEvents(t, before, 1, 10*time.Second)
	ended := ofType(evs, "session.ended")[0]
	s.checkAppEnded(t, ended, "bob", "logout")
	near(t, "ended_at", ended.Data.EndedAt, a.Sent(r), tsTol)
	near1(t, "duration_seconds", ended.Data.DurationSeconds, last.Sub(loginAt).Seconds(), 1)
	s.checkUser(t, "bob")

	s.checkReplay(t, a, value, "logout")
	// Signed out, the app's own answer: back to the login page (Laravel's
	// fresh anonymous session is not refused).
	r = a.Do(t, http.MethodGet, "/", nil, Navigation())
	if Refused(r, s.Cookie) || r.StatusCode != http.StatusFound || locationPath(r) != "/login" {
		t.Errorf("GET / after logout: want the app's 302 to /login: %s", describe(r))
	}
	s.noMoreEnded(t, before+len(evs), time.Second)
}

// A session that only polls the passive endpoint expires on time.
func scenarioPassive(t *testing.T, s *fwStack) {
	before := len(s.App.Events(t))
	a, loginAt := s.login(t, "alice")
	var refused *Response
	polls := 0
	Eventually(t, fwIdle+15*time.Second, fwIdle/8, func() error {
		r := a.Do(t, http.MethodGet, "/poll", nil, XHR())
		polls++
		if Refused(r, s.Cookie) {
			refused = r
			return nil
		}
		if r.StatusCode != http.StatusOK || !strings.Contains(string(r.Body), `"42"`) {
			t.Fatalf("poll %d of a live session: %s", polls, describe(r))
		}
		return fmt.Errorf("poll %d still served", polls)
	})
	after := refused.At.Sub(loginAt)
	t.Logf("%d polls; refused %s after login (idle %s)", polls, after.Round(time.Millisecond), fwIdle)
	if after < fwIdle-tsTol || after > fwIdle+2*time.Second {
		t.Errorf("polling session refused %s after login, want about %s", after, fwIdle)
	}
	if polls < 5 {
		t.Errorf("only %d polls: the test proves nothing", polls)
	}
	evs := s.newEvents(t, before, 1, 20*time.Second)
	ended := ofType(evs, "session.ended")[0]
	s.checkAppEnded(t, ended, "alice", "idle")
	near(t, "last_activity_at", ended.Data.LastActivityAt, loginAt, tsTol)
	near(t, "ended_at", ended.Data.EndedAt, loginAt.Add(fwIdle), tsTol)
	if ended.Data.DurationSeconds > 1 {
		t.Errorf("duration_seconds = %v: polls counted as online time", ended.Data.DurationSeconds)
	}
	s.noMoreEnded(t, before+len(evs), time.Second)
}

// burst sends n requests at once with exactly the cookie header given, as
// a page load does; with keep, each response's cookies go to the jar in
// the order they arrive.
func burst(t *testing.T, a *Agent, cookie, path string, n int, keep bool) []*Response {
	t.Helper()
	out := make([]*Response, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i], errs[i] = a.SendWith(cookie, http.MethodGet, path, keep, XHR())
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("parallel request %d: %v", i, err)
		}
	}
	return out
}

// Parallel requests during a rotation are never refused; the old value
// works for rotation_grace and is then refused; the rotated session stays
// one session.
func scenarioRotation(t *testing.T, s *fwStack) {
	before := len(s.App.Events(t))
	a, loginAt := s.login(t, "alice")

	// A page load: parallel requests with the same cookie (Laravel answers
	// each with a fresh encryption of the cookie).
	for i, r := range burst(t, a, a.cookieHeader(), "/api/me", 8, true) {
		if Refused(r, s.Cookie) || r.StatusCode != http.StatusOK {
			t.Errorf("page-load request %d: %s", i, describe(r))
		}
	}
	s.me(t, a, "alice")

	// Signing in again regenerates the session ID (not Django's: it keeps
	// the key when the same user signs in again; switch_user rotates it)
	// while requests with the old cookie are still in flight.
	rotated, last := s.rotateWhileInFlight(t, a, "alice", "alice")
	if !rotated {
		if s.Dir != "django" {
			t.Errorf("signing in again did not rotate %s", s.Cookie)
		}
		last = a.Sent(s.me(t, a, "alice"))
	}

	// Still one logical session: one started, one idle end from the first login.
	evs := s.newEvents(t, before, 1, fwIdle+20*time.Second)
	ended := ofType(evs, "session.ended")
	s.checkAppEnded(t, ended[0], "alice", "idle")
	near(t, "started_at", ended[0].Data.StartedAt, loginAt, tsTol)
	near(t, "last_activity_at", ended[0].Data.LastActivityAt, last, tsTol)
	near1(t, "duration_seconds", ended[0].Data.DurationSeconds, last.Sub(loginAt).Seconds(), 1)
	if st := ofType(evs, "session.started"); len(st) != 1 {
		t.Errorf("want one session.started, got %+v", st)
	}
	s.noMoreEnded(t, before+len(evs), 1500*time.Millisecond)
}

// rotateWhileInFlight signs in as user (the agent is signed in as from)
// while eight requests with the agent's current cookie are in flight, and
// requires that none of them is refused. If the login rotated the session
// cookie, it then uses the new value until the old one is refused (reason
// rotated, not before rotation_grace) and returns the time of the last
// request of the new value.
func (s *fwStack) rotateWhileInFlight(t *testing.T, a *Agent, from, user string) (bool, time.Time) {
	t.Helper()
	old := a.cookieHeader()
	oldValue := a.Cookie(s.Cookie)
	var wg sync.WaitGroup
	var inflight []*Response
	wg.Add(1)
	// The old value may be rotated away by the first response of the burst
	// (Laravel without the key) or by the login: its grace starts no
	// earlier than this.
	began := wallNow()
	go func() { defer wg.Done(); inflight = burst(t, a, old, "/api/me", 8, false) }()
	s.loginAs(t, a, user)
	wg.Wait()
	for i, r := range inflight {
		if Refused(r, s.Cookie) {
			t.Errorf("in-flight request %d with the pre-rotation cookie refused: %s", i, describe(r))
		}
	}
	if a.Cookie(s.Cookie) == oldValue {
		t.Logf("%s: signing in as %s (signed in as %s) kept the session cookie", s.Name, user, from)
		return false, time.Time{}
	}
	// The old value keeps working for the grace, then is refused; the new
	// one is used throughout and never refused.
	var refusedAt time.Time
	var reason string
	Eventually(t, fwGrace+10*time.Second, fwGrace/8, func() error {
		s.me(t, a, user)
		r, err := a.SendWith(old, http.MethodGet, "/api/me", false, XHR())
		if err != nil {
			return err
		}
		if !Refused(r, s.Cookie) {
			return errNotYet
		}
		refusedAt = r.At
		reason = refusalReason(r)
		return nil
	})
	if reason == "logout" && freshAnonymous(s, inflight) {
		// Known race (PHP strict mode): an in-flight request's answer, a new
		// anonymous PHPSESSID, reached idlegate before the login's own
		// answer; it reads as "the user was cleared on rotation", a logout,
		// and the login then starts the new user's session afresh. The
		// events are the same; only the old value is refused at once.
		t.Logf("%s: the old value ended as logout: an in-flight answer with a fresh anonymous session overtook the login's", s.Name)
		return true, a.Sent(s.me(t, a, user))
	}
	if reason != "rotated" {
		t.Errorf("old value refused with reason %q, want rotated", reason)
	}
	if since := refusedAt.Sub(began); since < fwGrace {
		t.Errorf("old value refused %s after the rotation, before rotation_grace %s; the agent's exchanges (times from the burst):%s",
			since, fwGrace, a.Trace(began, s.Cookie, s.sessionOf(t)))
	}
	return true, a.Sent(s.me(t, a, user))
}

// sessionOf returns how a trace shows a session cookie value: a short
// hash of the session ID the application reads from it (Laravel's
// decrypted, so that its re-encryptions show as the same session), or of
// the value when it cannot be read.
func (s *fwStack) sessionOf(t *testing.T) func(string) string {
	var lv *sessioncookie.Laravel
	if s.App.AppKey != "" {
		var err error
		if lv, err = sessioncookie.NewLaravel(s.App.AppKey); err != nil {
			t.Logf("laravel key: %v", err)
		}
	}
	return func(v string) string {
		tag := "value:"
		if id, ok := lv.SessionID(s.Cookie, v); ok {
			v, tag = id, "id:"
		}
		sum := sha256.Sum256([]byte(v))
		return tag + hex.EncodeToString(sum[:4])
	}
}

// Another user signing in on the same browser: the first user's session
// ends with logout, the second's starts.
func scenarioSwitchUser(t *testing.T, s *fwStack) {
	before := len(s.App.Events(t))
	a, loginAt := s.login(t, "alice")
	last := a.Sent(s.page(t, a, "alice"))
	bobAt := wallNow()
	rotated, bobLast := s.rotateWhileInFlight(t, a, "alice", "bob")
	if !rotated {
		t.Errorf("signing in as another user did not rotate %s", s.Cookie)
	}
	evs := s.newEvents(t, before, 2, fwIdle+20*time.Second)
	ends := ofType(evs, "session.ended")
	s.checkAppEnded(t, ends[0], "alice", "logout")
	near1(t, "alice's duration_seconds", ends[0].Data.DurationSeconds, last.Sub(loginAt).Seconds(), 1)
	near(t, "alice's ended_at", ends[0].Data.EndedAt, bobAt, tsTol)
	s.checkAppEnded(t, ends[1], "bob", "idle")
	near(t, "bob's started_at", ends[1].Data.StartedAt, bobAt, tsTol)
	near1(t, "bob's duration_seconds", ends[1].Data.DurationSeconds, bobLast.Sub(bobAt).Seconds(), 1)
	var users []string
	for _, e := range ofType(evs, "session.started") {
		users = append(users, e.Data.User)
	}
	if strings.Join(users, ",") != "42,43" {
		t.Errorf("session.started users = %v, want [42 43]", users)
	}
	s.checkUser(t, "alice")
	s.checkUser(t, "bob")
	s.noMoreEnded(t, before+len(evs), time.Second)
}

// The app's receiver checks the signature: a forged event is refused and
// changes nothing.
func scenarioForgedWebhook(t *testing.T, s *fwStack) {
	before := s.App.Events(t)
	usersBefore := s.App.Users(t)
	body := `{"type":"session.ended","timestamp":"2026-11-21T09:30:00Z","data":{"session":"00","zone":"x","user":"42","reason":"idle","started_at":"2026-11-21T08:00:00Z","last_activity_at":"2026-11-21T09:00:00Z","ended_at":"2026-11-21T09:30:00Z","duration_seconds":99999,"requests":1}}`
	req, _ := http.NewRequest(http.MethodPost, s.App.URL+"/idlegate/webhook", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("webhook-id", "msg_forged")
	req.Header.Set("webhook-timestamp", strconv.FormatInt(time.Now().Unix(), 10))
	req.Header.Set("webhook-signature", "v1,bm90IGEgc2lnbmF0dXJl")
	resp, err := NewClient(s.App.URL).HC.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("forged webhook: %d, want 400", resp.StatusCode)
	}
	if after := s.App.Events(t); len(after) != len(before) {
		t.Errorf("forged webhook was recorded: %+v", after[len(before):])
	}
	if got, was := fmt.Sprint(userRow(s.App.Users(t)["42"])), fmt.Sprint(userRow(usersBefore["42"])); got != was {
		t.Errorf("forged webhook changed user 42: %s -> %s", was, got)
	}
}

func userRow(u AppUser) string {
	logout := "null"
	if u.LastLogoutAt != nil {
		logout = *u.LastLogoutAt
	}
	return fmt.Sprintf("%s last_logout_at=%s online_seconds=%d", u.ID, logout, u.OnlineSeconds)
}

// freshAnonymous reports whether an in-flight response set a new session
// cookie without signing anyone in (the app no longer knew the old value).
func freshAnonymous(s *fwStack, rs []*Response) bool {
	for _, r := range rs {
		if c := r.SetCookie(s.Cookie); c != nil && c.Value != "" && c.MaxAge >= 0 && r.StatusCode == http.StatusUnauthorized {
			return true
		}
	}
	return false
}
