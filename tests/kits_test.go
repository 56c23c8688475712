package tests

// Issue #19: the framework kits of integrations/ in the real test apps
// (tests/apps/laravel-kit, tests/apps/django-kit), behind the built Caddy.
// Each app has an ordinary listener of its framework's own logout event
// (Laravel's Illuminate\Auth\Events\Logout, Django's user_logged_out) that
// records a row, shown by GET /app/logouts. The kit must make that listener
// run exactly once on a silent idle expiry, not a second time after the
// user's own click on "Log out", and never for a replayed or forged webhook.

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

var kitFrameworks = []Framework{
	{Name: "laravel_kit", Dir: "laravel-kit", Cookie: "laravel_session", LaravelKey: true},
	{Name: "django_kit", Dir: "django-kit", Cookie: "sessionid"},
	{Name: "express_kit", Dir: "express-kit", Cookie: "connect.sid"},
}

// otherSecret is a well-formed secret that is not TestSecret.
const otherSecret = "whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0MjQy"

// AppLogout is one row the app's own logout listener wrote.
type AppLogout struct {
	User            string  `json:"user"`
	Reason          string  `json:"reason"` // "app" when the app itself logged the user out
	DurationSeconds *int64  `json:"duration_seconds"`
	EndedAt         *string `json:"ended_at"`
}

func (a *App) logouts(t testing.TB) []AppLogout {
	t.Helper()
	r := NewClient(a.URL).Get(t, "/app/logouts")
	if r.StatusCode != http.StatusOK {
		t.Fatalf("%s GET /app/logouts: %s", a.Name, r)
	}
	var out []AppLogout
	r.JSON(t, &out)
	return out
}

func (l AppLogout) String() string {
	d, e := "null", "null"
	if l.DurationSeconds != nil {
		d = strconv.FormatInt(*l.DurationSeconds, 10)
	}
	if l.EndedAt != nil {
		e = *l.EndedAt
	}
	return fmt.Sprintf("{user=%s reason=%s duration=%s ended_at=%s}", l.User, l.Reason, d, e)
}

func logoutsOf(ls []AppLogout, user string) []AppLogout {
	var out []AppLogout
	for _, l := range ls {
		if l.User == user {
			out = append(out, l)
		}
	}
	return out
}

func TestKits(t *testing.T) {
	needCaddy(t)
	for _, fw := range kitFrameworks {
		t.Run(fw.Name, func(t *testing.T) {
			s := startFramework(t, fw)
			// check runs first: it asserts that no refusal was recorded yet.
			for _, sc := range []struct {
				name string
				fn   func(*testing.T, *fwStack)
			}{
				{"idle_fires_logout", kitIdle},
				{"click_logout_once", kitClickLogout},
				{"check", kitCheck},
				{"replay_and_forgery", kitReplay},
			} {
				if !t.Run(sc.name, func(t *testing.T) { sc.fn(t, s) }) {
					s.settle(t)
				}
			}
		})
	}
}

// A silent idle expiry runs the app's Logout / user_logged_out listener
// once, for the right user, with the duration idlegate computed.
func kitIdle(t *testing.T, s *fwStack) {
	before := len(s.App.Events(t))
	a, loginAt := s.login(t, "alice")
	// Activity spread over most of an idle period, so the online time is
	// seconds, not zero.
	var last time.Time
	tick := time.NewTicker(fwIdle / 4)
	for range 3 {
		<-tick.C
		last = a.Sent(s.page(t, a, "alice"))
	}
	tick.Stop()

	evs := s.newEvents(t, before, 1, fwIdle+30*time.Second)
	ended := ofType(evs, "session.ended")[0]
	s.checkAppEnded(t, ended, "alice", "idle")
	near1(t, "duration_seconds", ended.Data.DurationSeconds, last.Sub(loginAt).Seconds(), 1.5)

	var rows []AppLogout
	Eventually(t, 10*time.Second, 50*time.Millisecond, func() error {
		if rows = logoutsOf(s.App.logouts(t), "42"); len(rows) == 0 {
			return errors.New("the app's logout listener has not run for user 42")
		}
		return nil
	})
	// No second run: not from a redelivery, not from anything else.
	Consistently(t, 2*time.Second, 200*time.Millisecond, func() error {
		if n := len(logoutsOf(s.App.logouts(t), "42")); n != 1 {
			return fmt.Errorf("the app's logout listener ran %d times for user 42, want once", n)
		}
		return nil
	})
	r := rows[0]
	if r.Reason != "idle" {
		t.Errorf("logout row reason = %q, want idle (the kit's ending() during the dispatch)", r.Reason)
	}
	if r.DurationSeconds == nil || *r.DurationSeconds != int64(math.Round(ended.Data.DurationSeconds)) {
		t.Errorf("logout row duration_seconds = %v, want %v (the webhook's)", r.DurationSeconds, math.Round(ended.Data.DurationSeconds))
	}
	if r.EndedAt == nil {
		t.Errorf("logout row has no ended_at")
	} else if got, err := time.Parse(time.RFC3339, *r.EndedAt); err != nil || !got.Equal(ended.Data.EndedAt) {
		t.Errorf("logout row ended_at = %q, want %s", *r.EndedAt, ended.Data.EndedAt.Format(time.RFC3339Nano))
	}
	// The kit's own event carried the whole payload, and the presence
	// bookkeeping (Laravel: the kit's optional listener) followed it.
	if ended.Data.DurationSeconds < 1 {
		t.Errorf("duration_seconds = %v: the activity spanned about 2 s", ended.Data.DurationSeconds)
	}
	if ended.Data.Requests < 3 || ended.Data.StartedAt.IsZero() || ended.Data.LastActivityAt.IsZero() {
		t.Errorf("kit event lacks payload fields: %+v", ended)
	}
	s.checkUser(t, "alice")
}

// A click on the app's own "Log out" runs the listener once (the app's
// Auth::logout() / logout()); idlegate's session.ended with reason logout
// that follows reaches the kit event but does not dispatch it again.
func kitClickLogout(t *testing.T, s *fwStack) {
	before := len(s.App.Events(t))
	a, _ := s.login(t, "bob")
	s.page(t, a, "bob")
	r := a.Do(t, http.MethodPost, "/logout", nil)
	if r.StatusCode != http.StatusFound || locationPath(r) != "/login" {
		t.Fatalf("POST /logout: %s", describe(r))
	}
	evs := s.newEvents(t, before, 1, 15*time.Second)
	s.checkAppEnded(t, ofType(evs, "session.ended")[0], "bob", "logout")
	Consistently(t, 2*time.Second, 200*time.Millisecond, func() error {
		rows := logoutsOf(s.App.logouts(t), "43")
		if len(rows) != 1 || rows[0].Reason != "app" {
			return fmt.Errorf("want exactly the app's own logout row for user 43, got %v", rows)
		}
		return nil
	})
	s.checkUser(t, "bob")
}

// sendWebhook posts body to the app's webhook, signed with secret at ts
// (signBody, when not nil, is what the signature covers instead of body).
func sendWebhook(t *testing.T, app *App, secret, id string, ts time.Time, body, signBody []byte) (int, string) {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	if signBody == nil {
		signBody = body
	}
	sig, err := wh.Sign(id, ts, signBody)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, app.URL+"/idlegate/webhook", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts.Unix(), 10))
	req.Header.Set("webhook-signature", sig)
	resp, err := NewClient(app.URL).HC.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

// A replayed delivery (a known webhook-id, correctly signed) is answered 200
// as a duplicate and changes nothing; a wrong secret, a stale timestamp and
// a body the signature does not cover are refused with 400 and change
// nothing either.
func kitReplay(t *testing.T, s *fwStack) {
	events := ofType(s.App.Events(t), "session.ended")
	var idle *AppEvent
	for i := range events {
		if events[i].Data.Reason == "idle" && events[i].Data.User == "42" {
			idle = &events[i]
		}
	}
	if idle == nil {
		t.Fatal("no idle session.ended of user 42 to replay (idle_fires_logout failed?)")
	}
	// The payload as idlegate sent it, with the same webhook-id.
	d := idle.Data
	body := []byte(fmt.Sprintf(`{"type":"session.ended","timestamp":%q,"data":{"session":%q,"zone":%q,"user":"42","reason":"idle","started_at":%q,"last_activity_at":%q,"ended_at":%q,"duration_seconds":%v,"requests":%d}}`,
		d.EndedAt.Format(time.RFC3339), d.Session, d.Zone, d.StartedAt.Format(time.RFC3339Nano), d.LastActivityAt.Format(time.RFC3339Nano),
		d.EndedAt.Format(time.RFC3339Nano), d.DurationSeconds, d.Requests))
	snapshot := func() string {
		var rows []string
		for _, l := range s.App.logouts(t) {
			rows = append(rows, l.String())
		}
		return fmt.Sprintf("events=%d logouts=%v users=%s/%s", len(s.App.Events(t)), rows,
			userRow(s.App.Users(t)["42"]), userRow(s.App.Users(t)["43"]))
	}
	was := snapshot()

	if code, resp := sendWebhook(t, s.App, TestSecret, idle.ID, time.Now(), body, nil); code != http.StatusOK || !strings.Contains(resp, "duplicate") {
		t.Errorf("replayed webhook %s: %d %s, want 200 with duplicate", idle.ID, code, resp)
	}
	fresh := "msg_kit_" + randomHex(8)
	for _, c := range []struct {
		name     string
		secret   string
		ts       time.Time
		signBody []byte
	}{
		{"wrong secret", otherSecret, time.Now(), nil},
		{"stale timestamp", TestSecret, time.Now().Add(-10 * time.Minute), nil},
		{"future timestamp", TestSecret, time.Now().Add(10 * time.Minute), nil},
		{"tampered body", TestSecret, time.Now(), bytes.Replace(body, []byte(`"user":"42"`), []byte(`"user":"43"`), 1)},
	} {
		if code, resp := sendWebhook(t, s.App, c.secret, fresh, c.ts, body, c.signBody); code != http.StatusBadRequest {
			t.Errorf("%s: %d %s, want 400", c.name, code, resp)
		}
	}
	if now := snapshot(); now != was {
		t.Errorf("replayed or forged webhooks changed the app:\nbefore %s\nafter  %s", was, now)
	}
}

// kitCheckCmd runs the kit's check command with the app's environment and
// secret, against Caddy's admin endpoint when admin is not empty.
func kitCheckCmd(t *testing.T, app *App, secret, admin string) (string, int) {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("apps", app.Dir))
	if err != nil {
		t.Fatal(err)
	}
	var cmd *exec.Cmd
	switch app.Dir {
	case "laravel-kit":
		cmd = exec.Command(filepath.Join(dir, "artisan-env"), "idlegate:check")
	case "django-kit":
		cmd = exec.Command(filepath.Join(dir, "manage"), "idlegate_check")
	case "express-kit":
		cmd = exec.Command(filepath.Join(dir, "check"))
	default:
		t.Fatalf("no check command for %s", app.Dir)
	}
	if admin != "" {
		cmd.Args = append(cmd.Args, "--caddy="+admin)
	}
	cmd.Env = append(os.Environ(), "APP_STATE_DIR="+app.State, "APP_KEY="+app.AppKey, "IDLEGATE_WEBHOOK_SECRET="+secret)
	out, err := cmd.CombinedOutput()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	return string(out), code
}

// The check command passes on the configuration the tests run with, and
// says plainly when the secret is malformed, differs from idlegate's, or
// when idlegate's deliveries are being refused.
func kitCheck(t *testing.T, s *fwStack) {
	out, code := kitCheckCmd(t, s.App, TestSecret, s.Caddy.AdminURL)
	if code != 0 || !strings.Contains(out, "all checks passed") || !strings.Contains(out, "same webhook secret as idlegate") {
		t.Errorf("check on a consistent setup: exit %d\n%s", code, out)
	}
	if strings.Contains(out, "refused") {
		t.Errorf("check reports refused webhooks before any was refused:\n%s", out)
	}
	t.Logf("check, consistent:\n%s", out)

	out, code = kitCheckCmd(t, s.App, "not-a-secret", "")
	if code != 1 || !strings.Contains(out, "FAIL") || !strings.Contains(out, `does not start with "whsec_"`) {
		t.Errorf("check with a malformed secret: exit %d, want 1 naming the prefix\n%s", code, out)
	}
	out, code = kitCheckCmd(t, s.App, "whsec_YWJj", "")
	if code != 1 || !strings.Contains(out, "bytes; idlegate needs at least 24") {
		t.Errorf("check with a short secret: exit %d, want 1 naming the length\n%s", code, out)
	}
	out, code = kitCheckCmd(t, s.App, otherSecret, s.Caddy.AdminURL)
	if code != 1 || !strings.Contains(out, "differs from the secret idlegate signs with") {
		t.Errorf("check with a secret idlegate does not use: exit %d, want 1 saying it differs\n%s", code, out)
	}
	t.Logf("check, other secret:\n%s", out)

	// A second idlegate in front of the same app, signing with another
	// secret: its deliveries are refused, and the check, run as the person
	// wondering why no webhook arrives would run it, says so.
	port := strconv.Itoa(FreePort(t))
	laravel := ""
	if s.LaravelKey {
		laravel = "\t\tlaravel_key " + s.App.AppKey
	}
	wrong := StartCaddy(t, Render(t, frameworkCaddyfile, map[string]string{
		"PORT": port, "COOKIE": s.Cookie, "LARAVEL": laravel, "IDLE": fwIdle.String(),
		"GRACE": fwGrace.String(), "APP": s.App.Addr, "SECRET": otherSecret,
	}))
	other := &fwStack{Framework: s.Framework, App: s.App, Caddy: wrong, Base: "http://127.0.0.1:" + port}
	before := len(s.App.Events(t))
	a, _ := other.login(t, "alice")
	other.page(t, a, "alice")
	a.Do(t, http.MethodPost, "/logout", nil)
	Eventually(t, 30*time.Second, 250*time.Millisecond, func() error {
		out, code = kitCheckCmd(t, s.App, TestSecret, "")
		if !strings.Contains(out, "refused") || !strings.Contains(out, "no matching signature") {
			return fmt.Errorf("check does not report the refused deliveries yet (exit %d):\n%s", code, out)
		}
		return nil
	})
	t.Logf("check after refused deliveries:\n%s", out)
	out, code = kitCheckCmd(t, s.App, TestSecret, wrong.AdminURL)
	if code != 1 || !strings.Contains(out, "differs from the secret idlegate signs with") {
		t.Errorf("check against the misconfigured idlegate: exit %d\n%s", code, out)
	}
	if after := s.App.Events(t); len(after) != before {
		t.Errorf("deliveries signed with another secret were applied: %+v", after[before:])
	}
	wrong.Stop()
}
