package caddymodule

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddytest"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

var update = flag.Bool("update", false, "rewrite golden files")

const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// fakeClock replaces the engines' clock for a test: idle timeouts pass when
// the test says so, not after real minutes.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func useFakeClock(t *testing.T) *fakeClock {
	c := &fakeClock{t: time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)}
	f := c.now
	clock.Store(&f)
	t.Cleanup(func() { clock.Store(nil) })
	return c
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// app is a real upstream: /login issues a fresh sid and names the user;
// every other path reports whether the sid arrived.
type upstreamApp struct {
	*httptest.Server
	mu   sync.Mutex
	seen []string // sid of every request, "" when none
	n    int
}

func newApp(t *testing.T) *upstreamApp {
	a := &upstreamApp{}
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sid := ""
		if c, err := r.Cookie("sid"); err == nil {
			sid = c.Value
		}
		a.mu.Lock()
		a.seen = append(a.seen, sid)
		a.n++
		n := a.n
		a.mu.Unlock()
		switch r.URL.Path {
		case "/login":
			http.SetCookie(w, &http.Cookie{Name: "sid", Value: fmt.Sprintf("session-value-%d-%d", n, time.Now().UnixNano()), Path: "/"})
			w.Header().Set("X-Idle-User", r.URL.Query().Get("user"))
		case "/logout":
			http.SetCookie(w, &http.Cookie{Name: "sid", Value: "", Path: "/", MaxAge: -1})
		}
		fmt.Fprintf(w, "sid=%s", sid)
	}))
	t.Cleanup(a.Close)
	return a
}

func (a *upstreamApp) requests() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.seen...)
}

// receiver verifies webhooks with the Standard Webhooks library.
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	events []map[string]any
	ids    []string
}

func newReceiver(t *testing.T) *receiver {
	wh, err := standardwebhooks.NewWebhook(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	rc := &receiver{}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		// The fake clock runs ahead of real time, so webhook-timestamp is
		// outside the library's tolerance by design; the signature is still
		// checked. The end-to-end tests run on real time with full Verify.
		if err := wh.VerifyIgnoringTimestamp(body, r.Header); err != nil {
			t.Errorf("webhook signature: %v", err)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		var ev map[string]any
		json.Unmarshal(body, &ev)
		rc.mu.Lock()
		rc.events = append(rc.events, ev)
		rc.ids = append(rc.ids, r.Header.Get("webhook-id"))
		rc.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rc.Close)
	return rc
}

// wait polls, with a deadline, until n events arrived.
func (rc *receiver) wait(t *testing.T, n int) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		rc.mu.Lock()
		got := append([]map[string]any(nil), rc.events...)
		rc.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited for %d webhook(s), got %d", n, len(got))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func caddyfileFor(t *testing.T, upstream, hook, extra string) string {
	db := filepath.Join(t.TempDir(), "sessions.db")
	return fmt.Sprintf(`{
	admin localhost:2999
	http_port 9080
	skip_install_trust
}
http://localhost:9080 {
	idle_session {
		cookie sid
		idle 30m
		user_header X-Idle-User
		status_path /.idlegate/status
		remaining_header X-Idle-Remaining
		store bolt %s
		logout {
			path /logout
		}
		webhook %s {
			secret %s
		}
		%s
	}
	reverse_proxy %s
}
`, db, hook, testSecret, extra, strings.TrimPrefix(upstream, "http://"))
}

func do(t *testing.T, tc *caddytest.Tester, method, path, sid string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, "http://localhost:9080"+path, nil)
	if sid != "" {
		req.Header.Set("Cookie", "sid="+sid)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func login(t *testing.T, tc *caddytest.Tester, user string) string {
	t.Helper()
	resp, _ := do(t, tc, "POST", "/login?user="+user, "")
	for _, c := range resp.Cookies() {
		if c.Name == "sid" && c.Value != "" {
			if resp.Header.Get("X-Idle-User") != "" {
				t.Fatal("the user header must not reach the client")
			}
			return c.Value
		}
	}
	t.Fatalf("login set no sid: %v", resp.Header)
	return ""
}

func clearsSid(resp *http.Response) bool {
	for _, c := range resp.Cookies() {
		if c.Name == "sid" && c.MaxAge < 0 {
			return true
		}
	}
	return false
}

func TestActiveSessionPassesAndIdleOneIsRefused(t *testing.T) {
	clk := useFakeClock(t)
	up, rc := newApp(t), newReceiver(t)
	tc := caddytest.NewTester(t)
	tc.InitServer(caddyfileFor(t, up.URL, rc.URL, ""), "caddyfile")

	sid := login(t, tc, "42")
	clk.advance(10 * time.Minute)
	resp, body := do(t, tc, "GET", "/", sid)
	if resp.StatusCode != 200 || body != "sid="+sid {
		t.Fatalf("active session: %d %q", resp.StatusCode, body)
	}
	if got := resp.Header.Get("X-Idle-Remaining"); got != "1800" {
		t.Fatalf("remaining header after activity = %q, want 1800", got)
	}

	clk.advance(30 * time.Minute) // silence: the sweeper ends it without a request
	evs := rc.wait(t, 1)
	data := evs[0]["data"].(map[string]any)
	if evs[0]["type"] != "session.ended" || data["reason"] != "idle" || data["user"] != "42" {
		t.Fatalf("webhook: %v", evs[0])
	}
	if data["duration_seconds"].(float64) != 600 {
		t.Fatalf("duration %v, want 600 (login to last activity)", data["duration_seconds"])
	}
	if data["ended_at"] != "2026-11-21T08:40:00Z" {
		t.Fatalf("ended_at %v, want the idle deadline 08:40", data["ended_at"])
	}

	before := len(up.requests())
	resp, body = do(t, tc, "GET", "/", sid, "Accept", "application/json")
	if resp.StatusCode != http.StatusUnauthorized || !clearsSid(resp) {
		t.Fatalf("replayed expired cookie: %d %v", resp.StatusCode, resp.Header)
	}
	if !strings.Contains(body, `"reason":"idle"`) || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("JSON refusal body: %q", body)
	}
	if len(up.requests()) != before {
		t.Fatal("the upstream must not see a refused request")
	}
	clk.advance(24 * time.Hour)
	if resp, _ := do(t, tc, "GET", "/", sid); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a day later the cookie must still be refused: %d", resp.StatusCode)
	}
	if got := len(rc.wait(t, 1)); got != 1 {
		t.Fatalf("refusals must not send more webhooks: %d", got)
	}
}

func TestOnExpiredModes(t *testing.T) {
	for _, tt := range []struct {
		mode   string
		hdr    []string
		status int
		check  func(t *testing.T, resp *http.Response, body string, up *upstreamApp, sid string)
	}{
		{"status 419", []string{"Accept", "text/html"}, 419, nil},
		{"redirect /signed-out", []string{"Sec-Fetch-Mode", "navigate", "Sec-Fetch-Dest", "document", "Accept", "text/html"}, 303,
			func(t *testing.T, resp *http.Response, _ string, _ *upstreamApp, _ string) {
				if resp.Header.Get("Location") != "/signed-out" {
					t.Fatalf("Location %q", resp.Header.Get("Location"))
				}
			}},
		{"redirect /signed-out", []string{"Sec-Fetch-Mode", "cors", "Accept", "application/json"}, 401, nil},
		{"redirect /signed-out", []string{"X-Requested-With", "XMLHttpRequest", "Accept", "text/html"}, 401, nil},
		{"strip", nil, 200, func(t *testing.T, resp *http.Response, body string, up *upstreamApp, sid string) {
			if body != "sid=" {
				t.Fatalf("the upstream must see the request without the cookie, got %q", body)
			}
		}},
	} {
		t.Run(tt.mode+" "+strings.Join(tt.hdr, ","), func(t *testing.T) {
			clk := useFakeClock(t)
			up, rc := newApp(t), newReceiver(t)
			tc := caddytest.NewTester(t)
			tc.InitServer(caddyfileFor(t, up.URL, rc.URL, "on_expired "+tt.mode), "caddyfile")
			sid := login(t, tc, "42")
			clk.advance(31 * time.Minute)
			rc.wait(t, 1)
			resp, body := do(t, tc, "GET", "/page", sid, tt.hdr...)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d (%q)", resp.StatusCode, tt.status, body)
			}
			if !clearsSid(resp) {
				t.Fatalf("every refusal clears the session cookie: %v", resp.Header.Values("Set-Cookie"))
			}
			if tt.check != nil {
				tt.check(t, resp, body, up, sid)
			}
		})
	}
}

func TestStatusPathDoesNotExtend(t *testing.T) {
	clk := useFakeClock(t)
	up, rc := newApp(t), newReceiver(t)
	tc := caddytest.NewTester(t)
	tc.InitServer(caddyfileFor(t, up.URL, rc.URL, ""), "caddyfile")
	sid := login(t, tc, "42")
	var st statusResponse
	for i := range 5 {
		clk.advance(5 * time.Minute)
		resp, body := do(t, tc, "GET", "/.idlegate/status", sid)
		if err := json.Unmarshal([]byte(body), &st); err != nil || resp.StatusCode != 200 {
			t.Fatalf("status: %d %q", resp.StatusCode, body)
		}
		if want := int64(1800 - 300*(i+1)); !st.Active || st.RemainingSeconds != want || st.IdleTimeoutSeconds != 1800 {
			t.Fatalf("poll %d: %+v, want %d s remaining", i, st, want)
		}
		if *st.ExpiresAt != "2026-11-21T08:30:00Z" {
			t.Fatalf("expires_at moved: %s", *st.ExpiresAt)
		}
	}
	if n := len(up.requests()); n != 1 {
		t.Fatalf("the status path is answered by idlegate, the upstream saw %d requests", n)
	}
	clk.advance(5 * time.Minute)
	rc.wait(t, 1)
	_, body := do(t, tc, "GET", "/.idlegate/status", sid)
	if body != `{"active":false,"remaining_seconds":0,"expires_at":null,"idle_timeout_seconds":1800}`+"\n" {
		t.Fatalf("after the end: %s", body)
	}
}

func TestLogoutEndsSessionOnce(t *testing.T) {
	useFakeClock(t)
	up, rc := newApp(t), newReceiver(t)
	tc := caddytest.NewTester(t)
	tc.InitServer(caddyfileFor(t, up.URL, rc.URL, ""), "caddyfile")
	sid := login(t, tc, "42")
	if resp, _ := do(t, tc, "POST", "/logout", sid); resp.StatusCode != 200 {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	evs := rc.wait(t, 1)
	if evs[0]["data"].(map[string]any)["reason"] != "logout" {
		t.Fatalf("want reason logout: %v", evs[0])
	}
	if resp, _ := do(t, tc, "GET", "/", sid); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("cookie after logout: %d", resp.StatusCode)
	}
}

func TestJSONConfigHasEveryOption(t *testing.T) {
	useFakeClock(t)
	up, rc := newApp(t), newReceiver(t)
	db := filepath.Join(t.TempDir(), "s.db")
	cfg := fmt.Sprintf(`{
	"admin": {"listen": "localhost:2999"},
	"apps": {"http": {"http_port": 9080, "servers": {"srv0": {"listen": [":9080"], "routes": [{
		"match": [{"host": ["localhost"]}],
		"handle": [
			{"handler": "idle_session", "cookie": "sid", "idle": "20m", "absolute": "8h",
			 "store": {"type": "bolt", "path": %q}, "name": "shop", "user_header": "X-Idle-User",
			 "logout_match": [{"path": ["/logout"]}], "passive_match": [{"path": ["/poll"]}],
			 "login_match": [{"path": ["/signin"]}], "user_form": "username", "user_form_status": ["302", "3xx"],
			 "user_placeholder": "{http.request.header.X-Forwarded-User}", "user_cookie": "uname", "user_cookie_separator": "|",
			 "on_expired": {"mode": "status", "status_code": 440}, "clear_cookies": ["remember_web_*"],
			 "status_path": "/.idlegate/status", "remaining_header": "X-Idle-Remaining",
			 "rotation_grace": "10s", "remember_ended": "7d", "max_sessions": 1000,
			 "websocket_activity": true, "warn_before": "1m", "inject_warning": true,
			 "webhook": {"url": %q, "secret": %q, "timeout": "3s", "max_attempts": 3, "events": ["ended", "started"], "include_anonymous": true}},
			{"handler": "reverse_proxy", "upstreams": [{"dial": %q}]}
		]}]}}}}}`, db, rc.URL, testSecret, strings.TrimPrefix(up.URL, "http://"))
	tc := caddytest.NewTester(t)
	tc.InitServer(cfg, "json")
	sid := login(t, tc, "42")
	evs := rc.wait(t, 1)
	if evs[0]["type"] != "session.started" {
		t.Fatalf("events started must send session.started at login: %v", evs[0])
	}
	resp, _ := do(t, tc, "GET", "/", sid)
	if resp.Header.Get("X-Idle-Remaining") != "1200" {
		t.Fatalf("idle 20m from JSON: remaining %q", resp.Header.Get("X-Idle-Remaining"))
	}
}

func TestBadConfigNamesTheOption(t *testing.T) {
	up := newApp(t)
	for _, tt := range []struct{ extra, want string }{
		{"bogus_option 1", `unknown option "bogus_option"`},
		{"idle -5m", "idle: must be positive"},
		{"absolute -1h", "absolute"},
		{"on_expired redirect", "on_expired redirect: missing URL"},
		{"on_expired teapot", `on_expired: unknown mode "teapot"`},
		{"max_sessions many", "max_sessions"},
		{"store floppy", `store: unknown type "floppy"`},
		{"inject_warning", "inject_warning: needs status_path"},
		{"laravel_key base64:notakey", "laravel_key"},
		{"clear_cookies *", "clear_cookies"},
		{"webhook http://127.0.0.1:1/x {\n secret nope\n}", "webhook secret"},
		{"webhook ftp://x {\n secret " + testSecret + "\n}", "webhook"},
		{"webhook http://127.0.0.1:1/x {\n secret " + testSecret + "\n events ended exploded\n}", `unknown event "exploded"`},
	} {
		cfg := fmt.Sprintf("{\n\tadmin localhost:2999\n}\nhttp://localhost:9080 {\n\tidle_session {\n\t\tcookie sid\n\t\t%s\n\t}\n\treverse_proxy %s\n}\n",
			tt.extra, strings.TrimPrefix(up.URL, "http://"))
		if tt.extra == "inject_warning" {
			cfg = strings.Replace(cfg, "cookie sid", "cookie sid\n\t\tstatus_path \"\"", 1)
		}
		err := loadError(cfg)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: error %v, want it to contain %q", tt.extra, err, tt.want)
		}
	}
	if err := loadError("{\n\tadmin localhost:2999\n}\nhttp://localhost:9080 {\n\tidle_session {\n\t\tidle 5m\n\t}\n}\n"); err == nil || !strings.Contains(err.Error(), "cookie: is required") {
		t.Errorf("missing cookie: %v", err)
	}
}

// loadError adapts cfg and provisions its idle_session handlers the way
// Caddy does at load, returning the first error.
func loadError(cfg string) error {
	adapted, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cfg), nil)
	if err != nil {
		return err
	}
	var doc struct {
		Apps struct {
			HTTP struct {
				Servers map[string]struct {
					Routes []struct {
						Handle []json.RawMessage `json:"handle"`
					} `json:"routes"`
				} `json:"servers"`
			} `json:"http"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(adapted, &doc); err != nil {
		return err
	}
	var find func(raw json.RawMessage) error
	find = func(raw json.RawMessage) error {
		var h struct {
			Handler string `json:"handler"`
			Routes  []struct {
				Handle []json.RawMessage `json:"handle"`
			} `json:"routes"`
		}
		json.Unmarshal(raw, &h)
		if h.Handler == "idle_session" {
			var hd Handler
			if err := json.Unmarshal(raw, &hd); err != nil {
				return err
			}
			return hd.Validate()
		}
		for _, r := range h.Routes {
			for _, x := range r.Handle {
				if err := find(x); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for _, srv := range doc.Apps.HTTP.Servers {
		for _, r := range srv.Routes {
			for _, x := range r.Handle {
				if err := find(x); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func TestAdaptCaddyfileExample(t *testing.T) {
	src, err := os.ReadFile("../Caddyfile.example")
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "Caddyfile.example.json")
	adapted, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt(src, nil)
	if err != nil {
		t.Fatalf("Caddyfile.example does not adapt: %v", err)
	}
	if len(warnings) > 0 {
		t.Fatalf("Caddyfile.example adapts with warnings: %v", warnings)
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, adapted, "", "\t"); err != nil {
		t.Fatal(err)
	}
	pretty.WriteByte('\n')
	if *update {
		os.WriteFile(golden, pretty.Bytes(), 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if pretty.String() != string(want) {
		t.Fatalf("caddy adapt output of Caddyfile.example changed; review and run go test -update:\n%s", pretty.String())
	}
	if !caddytest.CompareAdapt(t, "Caddyfile.example", string(src), "caddyfile", strings.TrimSpace(string(want))) {
		t.Fatal("caddytest.CompareAdapt disagrees with the golden file")
	}
}
