package tests

// The harness's own tests. TestReceiver and TestUpstream need no Caddy and
// run under -short; TestHarnessSmoke runs the real binary with a plain
// Caddyfile (respond + reverse_proxy), so it passes before idlegate exists.

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// post sends a webhook signed with secret to the receiver.
func post(t *testing.T, r *Receiver, secret, id, body string) (*http.Response, error) {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	sig, err := wh.Sign(id, now, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, r.Hook(), strings.NewReader(body))
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
	req.Header.Set("webhook-signature", sig)
	req.Header.Set("Content-Type", "application/json")
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	resp, err := hc.Do(req)
	if err == nil {
		resp.Body.Close()
	}
	return resp, err
}

func TestReceiver(t *testing.T) {
	r := NewReceiver(t)
	body := `{"type":"session.ended","timestamp":"2026-11-21T09:30:00Z","data":{"session":"5f2c9a1e7b3d4c60","zone":"sid","user":"42","reason":"idle","started_at":"2026-11-21T08:00:00Z","last_activity_at":"2026-11-21T09:00:00Z","ended_at":"2026-11-21T09:30:00Z","duration_seconds":3600,"requests":118}}`

	if resp, err := post(t, r, TestSecret, "msg_1", body); err != nil || resp.StatusCode != 200 {
		t.Fatalf("valid webhook: %v %v", resp, err)
	}
	if resp, err := post(t, r, TestSecret, "msg_1", body); err != nil || resp.StatusCode != 200 {
		t.Fatalf("redelivery: %v %v", resp, err)
	}
	// Signed with another key: refused and counted, never an event.
	if resp, err := post(t, r, "whsec_"+"dGhpcyBpcyBub3QgdGhlIHJpZ2h0IGtleQ==", "msg_2", body); err != nil || resp.StatusCode != 400 {
		t.Fatalf("forged webhook: %v %v", resp, err)
	}
	evs := r.Events()
	if len(evs) != 1 || evs[0].ID != "msg_1" || evs[0].Deliveries != 2 || evs[0].Attempts != 2 {
		t.Fatalf("want msg_1 once, delivered twice: %s", r.Summary())
	}
	d := evs[0].Data
	if d.User != "42" || d.Reason != "idle" || d.DurationSeconds != 3600 || d.Requests != 118 ||
		!d.EndedAt.Equal(time.Date(2026, 11, 21, 9, 30, 0, 0, time.UTC)) {
		t.Fatalf("data parsed wrong: %+v", d)
	}
	if n := len(r.Invalid()); n != 1 {
		t.Fatalf("invalid = %d, want 1", n)
	}

	r.Fail(http.StatusServiceUnavailable, "1")
	resp, err := post(t, r, TestSecret, "msg_3", body)
	if err != nil || resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("fail mode: %v %v", resp, err)
	}
	r.Garbage()
	if resp, err := post(t, r, TestSecret, "msg_3", body); err == nil {
		t.Fatalf("garbage mode answered HTTP: %v", resp.Status)
	}
	r.Hang()
	start := time.Now()
	if _, err := post(t, r, TestSecret, "msg_3", body); err == nil || time.Since(start) < time.Second {
		t.Fatalf("hang mode: err=%v after %s", err, time.Since(start))
	}
	r.Succeed()
	if resp, err := post(t, r, TestSecret, "msg_3", body); err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthy again: %v %v", resp, err)
	}
	evs = r.Events()
	if len(evs) != 2 || evs[1].ID != "msg_3" || evs[1].Attempts != 4 || evs[1].Deliveries != 1 {
		t.Fatalf("want msg_3 delivered once after 3 failed attempts: %s", r.Summary())
	}
}

func TestUpstream(t *testing.T) {
	u := NewUpstream(t)
	c := NewClient(u.URL)
	first := c.Post(t, "/login?user=42")
	sid1 := first.SetCookie(UpstreamCookie)
	if first.StatusCode != 200 || sid1 == nil || first.Header.Get(UserHeader) != "42" {
		t.Fatalf("login: %s", first)
	}
	second := c.Post(t, "/login?user=42", WithCookie(UpstreamCookie, sid1.Value))
	sid2 := second.SetCookie(UpstreamCookie)
	if sid2 == nil || sid2.Value == sid1.Value {
		t.Fatalf("login did not regenerate the session: %s", second)
	}
	if got := c.Get(t, "/", WithCookie(UpstreamCookie, sid1.Value)); got.Header.Get(UserHeader) != "" {
		t.Fatalf("old sid still names a user: %s", got)
	}
	opt, probe := Probe()
	var page struct {
		HasSID bool   `json:"has_sid"`
		User   string `json:"user"`
	}
	got := c.Get(t, "/", WithCookie(UpstreamCookie, sid2.Value), opt)
	got.JSON(t, &page)
	if !page.HasSID || page.User != "42" || got.Header.Get(UserHeader) != "42" {
		t.Fatalf("page: %s", got)
	}
	if seen := u.Probed(probe); len(seen) != 1 || seen[0].SID != sid2.Value {
		t.Fatalf("probe: %+v", seen)
	}
	out := c.Post(t, "/logout", WithCookie(UpstreamCookie, sid2.Value))
	if !out.ClearsCookie(UpstreamCookie) {
		t.Fatalf("logout does not delete the cookie: %s", out)
	}
	if got := c.Get(t, "/", WithCookie(UpstreamCookie, sid2.Value)); got.Header.Get(UserHeader) != "" {
		t.Fatalf("logged-out sid still names a user: %s", got)
	}
}

const smokeCaddyfile = `{
	admin 127.0.0.1:{ADMIN}
	default_bind 127.0.0.1
	grace_period 3s
}
http://127.0.0.1:{PORT} {
	respond /hello "hello {WORD}" 200
	reverse_proxy {UP}
}
`

// TestHarnessSmoke drives the harness against the real binary: start,
// proxy to the Upstream, reload, graceful stop, restart, crash, restart.
func TestHarnessSmoke(t *testing.T) {
	needCaddy(t)
	up := NewUpstream(t)
	port := strconv.Itoa(FreePort(t))
	vars := map[string]string{"PORT": port, "UP": up.Addr, "WORD": "one"}
	c := StartCaddy(t, Render(t, smokeCaddyfile, vars))
	cl := NewClient("http://127.0.0.1:" + port)

	hello := func(want string) {
		t.Helper()
		if got := cl.Get(t, "/hello"); got.StatusCode != 200 || string(got.Body) != "hello "+want {
			t.Fatalf("GET /hello: %s", got)
		}
	}
	hello("one")

	login := cl.Post(t, "/login?user=42")
	sid := login.SetCookie(UpstreamCookie)
	if login.StatusCode != 200 || sid == nil {
		t.Fatalf("login through caddy: %s", login)
	}
	// Plain Caddy passes the user header on; idlegate's user_header must not.
	if login.Header.Get(UserHeader) != "42" {
		t.Fatalf("login through plain caddy lost %s: %s", UserHeader, login)
	}
	opt, probe := Probe()
	page := cl.Get(t, "/", WithCookie(UpstreamCookie, sid.Value), opt)
	if page.StatusCode != 200 || !bytes.Contains(page.Body, []byte(`"user":"42"`)) {
		t.Fatalf("page: %s", page)
	}
	if seen := up.Probed(probe); len(seen) != 1 || seen[0].SID != sid.Value {
		t.Fatalf("upstream did not see the probe with the cookie: %+v", seen)
	}

	vars["WORD"] = "two"
	c.Reload(Render(t, smokeCaddyfile, vars))
	hello("two")
	if err := c.TryReload("{\n\tadmin 127.0.0.1:{ADMIN}\n\tdefault_bind 127.0.0.1\n}\nhttp://127.0.0.1:" + port + " {\n\tno_such_directive\n}\n"); err == nil {
		t.Fatal("reload of a broken Caddyfile succeeded")
	}
	hello("two")

	pid := c.Pid()
	c.Stop()
	if c.Running() {
		t.Fatal("running after Stop")
	}
	if err := syscall.Kill(pid, 0); err != syscall.ESRCH {
		t.Fatalf("pid %d still exists after Stop: %v", pid, err)
	}
	if _, err := cl.Try(http.MethodGet, "/hello"); err == nil {
		t.Fatal("port still answers after Stop")
	}
	c.Restart()
	hello("two") // the reloaded Caddyfile is the one on disk

	c.Kill()
	if c.Running() {
		t.Fatal("running after Kill")
	}
	c.Restart()
	hello("two")

	logs := c.Logs()
	for _, want := range []string{"serving initial configuration", "=== harness", "sending terminated", "sending killed"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q", want)
		}
	}
	if status, body := c.Admin(t, http.MethodGet, "/config/", nil); status != 200 || !bytes.Contains(body, []byte(`"hello two"`)) {
		t.Fatalf("admin /config/: %d %s", status, body)
	}
}
