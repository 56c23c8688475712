package caddymodule

// The admin API against a real Caddy running in this test process
// (caddytest), with a small application behind it and a webhook receiver.

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
)

var (
	adminPortOnce sync.Once
	adminPort     int
)

// testAdminPort is the admin port of this package's in-process Caddy: one
// free port per test process, so parallel runs on one machine never meet.
func testAdminPort(t *testing.T) int {
	adminPortOnce.Do(func() {
		adminPort = freePort(t)
		// Caddy autosaves its config and keeps data under these.
		dir, err := os.MkdirTemp("", "idlegate-caddytest-")
		if err != nil {
			t.Fatal(err)
		}
		os.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "config"))
		os.Setenv("XDG_DATA_HOME", filepath.Join(dir, "data"))
		os.Setenv("HOME", dir)
	})
	return adminPort
}

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

var adminSecret = "whsec_" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))

// app is the application behind Caddy: POST /login?user=U issues a new sid
// (U empty: an anonymous session) and names the user in X-User; other
// requests answer 200 and name the sid's user; /reissue also sets a new sid
// for the same session.
type app struct {
	mu    sync.Mutex
	users map[string]string
	n     int
}

func (a *app) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if r.URL.Path == "/login" {
		a.n++
		sid := fmt.Sprintf("raw-cookie-value-%d-%d", time.Now().UnixNano(), a.n)
		a.users[sid] = r.URL.Query().Get("user")
		http.SetCookie(w, &http.Cookie{Name: "sid", Value: sid, Path: "/"})
		if u := a.users[sid]; u != "" {
			w.Header().Set("X-User", u)
		}
		fmt.Fprint(w, "ok")
		return
	}
	if c, err := r.Cookie("sid"); err == nil && a.users[c.Value] != "" {
		w.Header().Set("X-User", a.users[c.Value])
		if r.URL.Path == "/reissue" {
			// Laravel without laravel_key, as idlegate sees it: every
			// answer carries a new value for the same session.
			a.n++
			sid := fmt.Sprintf("raw-cookie-value-%d-%d", time.Now().UnixNano(), a.n)
			a.users[sid] = a.users[c.Value]
			http.SetCookie(w, &http.Cookie{Name: "sid", Value: sid, Path: "/"})
		}
	}
	fmt.Fprint(w, "page")
}

// hooks records webhook bodies; fail makes it answer 500.
type hooks struct {
	mu     sync.Mutex
	events []map[string]any
	fail   atomic.Bool
}

func (h *hooks) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.fail.Load() {
		http.Error(w, "down", http.StatusInternalServerError)
		return
	}
	var ev map[string]any
	if err := json.NewDecoder(r.Body).Decode(&ev); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	h.events = append(h.events, ev)
	h.mu.Unlock()
}

func (h *hooks) ended() []map[string]any {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []map[string]any
	for _, ev := range h.events {
		if ev["type"] == "session.ended" {
			out = append(out, ev["data"].(map[string]any))
		}
	}
	return out
}

type adminEnv struct {
	t     *testing.T
	tc    *caddytest.Tester
	admin string
	site  string
	hooks *hooks
}

// startAdminEnv loads a config with idle_session in front of app into the
// in-process Caddy. extra goes into the webhook block.
func startAdminEnv(t *testing.T, webhookExtra string) *adminEnv {
	port := testAdminPort(t)
	up := httptest.NewServer(&app{users: map[string]string{}})
	t.Cleanup(up.Close)
	hk := &hooks{}
	recv := httptest.NewServer(hk)
	t.Cleanup(recv.Close)
	httpPort := freePort(t)
	cfg := fmt.Sprintf(`{
	admin localhost:%d
	http_port %d
	https_port %d
	default_bind 127.0.0.1
	auto_https off
	grace_period 1s
}
http://127.0.0.1:%d {
	idle_session {
		cookie sid
		user_header X-User
		idle 1m
		store bolt %s
		webhook %s {
			secret %s
			%s
		}
	}
	reverse_proxy %s
}
`, port, httpPort, freePort(t), httpPort, filepath.Join(t.TempDir(), "sessions.db"), recv.URL, adminSecret, webhookExtra, strings.TrimPrefix(up.URL, "http://"))
	tc := caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{AdminPort: port, Certificates: []string{}})
	tc.InitServer(cfg, "caddyfile")
	return &adminEnv{t: t, tc: tc, admin: fmt.Sprintf("http://localhost:%d", port), site: fmt.Sprintf("http://127.0.0.1:%d", httpPort), hooks: hk}
}

var plain = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}

func (e *adminEnv) do(method, url, cookie string) (int, http.Header, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	if cookie != "" {
		req.AddCookie(&http.Cookie{Name: "sid", Value: cookie})
	}
	resp, err := plain.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func (e *adminEnv) api(method, path string, want int, out any) []byte {
	e.t.Helper()
	code, hdr, body := e.do(method, e.admin+path, "")
	if code != want {
		e.t.Fatalf("%s %s: %d %s, want %d", method, path, code, body, want)
	}
	if code >= 400 {
		var ej struct{ Error string }
		if json.Unmarshal(body, &ej) != nil || ej.Error == "" {
			e.t.Errorf("%s %s: error is not JSON {\"error\": ...}: %s", method, path, body)
		}
		if code == http.StatusMethodNotAllowed && hdr.Get("Allow") == "" {
			e.t.Errorf("%s %s: 405 without Allow", method, path)
		}
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			e.t.Fatalf("%s %s: %v: %s", method, path, err, body)
		}
	}
	return body
}

func (e *adminEnv) login(user string) string {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.site+"/login?user="+user, nil)
	resp, err := plain.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	for _, c := range resp.Cookies() {
		if c.Name == "sid" {
			return c.Value
		}
	}
	e.t.Fatalf("login %q: no sid cookie", user)
	return ""
}

type listResp struct {
	Sessions []sessionJSON `json:"sessions"`
	Count    int           `json:"count"`
}

func eventually(t *testing.T, d time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %v", d, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestAdminListStatsRevoke(t *testing.T) {
	e := startAdminEnv(t, "")
	a1 := e.login("42")
	a2 := e.login("42")
	b := e.login("7")
	anon := e.login("")
	e.do(http.MethodGet, e.site+"/", b) // b is now the newest activity
	raw := map[string]string{a1: "42", a2: "42", b: "7", anon: ""}

	var all listResp
	body := e.api(http.MethodGet, "/idle-sessions/", http.StatusOK, &all)
	for v := range raw {
		if strings.Contains(string(body), v) {
			t.Fatalf("the admin API shows a raw cookie value: %s", body)
		}
	}
	if all.Count != 4 || len(all.Sessions) != 4 {
		t.Fatalf("list: %s", body)
	}
	if u := all.Sessions[0].User; u == nil || *u != "7" {
		t.Errorf("newest activity first: first is %+v, want user 7's session", all.Sessions[0])
	}
	for i, s := range all.Sessions {
		if i > 0 && s.LastActivityAt.After(all.Sessions[i-1].LastActivityAt) {
			t.Errorf("list not ordered by last activity: %s", body)
		}
		if len(s.Session) != 16 || s.Zone != "sid" || s.RemainingSeconds < 50 || s.RemainingSeconds > 60 ||
			s.Requests < 1 || s.ExpiresAt.Sub(s.LastActivityAt) != time.Minute {
			t.Errorf("session fields: %+v", s)
		}
	}

	var some listResp
	e.api(http.MethodGet, "/idle-sessions/?user=42", http.StatusOK, &some)
	if some.Count != 2 || len(some.Sessions) != 2 || *some.Sessions[0].User != "42" || *some.Sessions[1].User != "42" {
		t.Errorf("?user=42: %+v", some)
	}
	e.api(http.MethodGet, "/idle-sessions/?limit=1", http.StatusOK, &some)
	if some.Count != 4 || len(some.Sessions) != 1 {
		t.Errorf("?limit=1: %+v", some)
	}
	e.api(http.MethodGet, "/idle-sessions/?zone=sid", http.StatusOK, &some)
	if some.Count != 4 {
		t.Errorf("?zone=sid: %+v", some)
	}
	e.api(http.MethodGet, "/idle-sessions/?zone=nope", http.StatusNotFound, nil)
	e.api(http.MethodGet, "/idle-sessions/?limit=many", http.StatusBadRequest, nil)

	var st struct {
		Active         int            `json:"active"`
		Zones          map[string]int `json:"zones"`
		UsersOnline    int            `json:"users_online"`
		OutboxPending  int            `json:"outbox_pending"`
		WebhookPending *int           `json:"webhook_pending"`
		DeadLetters    int            `json:"dead_letters"`
	}
	e.api(http.MethodGet, "/idle-sessions/stats", http.StatusOK, &st)
	if st.WebhookPending == nil || *st.WebhookPending != st.OutboxPending {
		t.Errorf("stats: webhook_pending %v, want the outbox_pending count %d under the metric's name", st.WebhookPending, st.OutboxPending)
	}
	if st.Active != 4 || st.Zones["sid"] != 4 || st.UsersOnline != 2 || st.DeadLetters != 0 {
		t.Errorf("stats: %+v", st)
	}

	// Log user 42 out everywhere.
	var rv map[string]int
	e.api(http.MethodDelete, "/idle-sessions/?user=42", http.StatusOK, &rv)
	if rv["revoked"] != 2 {
		t.Fatalf("revoke user 42: %v", rv)
	}
	want := map[string]bool{}
	for _, s := range all.Sessions {
		if s.User != nil && *s.User == "42" {
			want[s.Session] = true
		}
	}
	eventually(t, 10*time.Second, func() error {
		if n := len(e.hooks.ended()); n < 2 {
			return fmt.Errorf("%d session.ended webhooks", n)
		}
		return nil
	})
	for _, d := range e.hooks.ended() {
		if d["reason"] != "revoked" || d["user"] != "42" || !want[d["session"].(string)] {
			t.Errorf("webhook: %v, want reason revoked for one of %v", d, want)
		}
		delete(want, d["session"].(string))
	}
	if len(want) != 0 || len(e.hooks.ended()) != 2 {
		t.Errorf("want one webhook per revoked session; missing %v, got %v", want, e.hooks.ended())
	}
	for _, v := range []string{a1, a2} {
		if code, _, _ := e.do(http.MethodGet, e.site+"/", v); code != http.StatusUnauthorized {
			t.Errorf("a revoked session's request: %d, want 401", code)
		}
	}
	if code, _, _ := e.do(http.MethodGet, e.site+"/", b); code != http.StatusOK {
		t.Errorf("user 7's request after revoking user 42: %d", code)
	}
	e.api(http.MethodGet, "/idle-sessions/?user=42", http.StatusOK, &some)
	if some.Count != 0 {
		t.Errorf("user 42 still listed: %+v", some)
	}

	// One session by its short ID.
	e.api(http.MethodGet, "/idle-sessions/?user=7", http.StatusOK, &some)
	short := some.Sessions[0].Session
	e.api(http.MethodDelete, "/idle-sessions/"+short, http.StatusOK, &rv)
	if rv["revoked"] != 1 {
		t.Errorf("revoke %s: %v", short, rv)
	}
	e.api(http.MethodDelete, "/idle-sessions/"+short, http.StatusNotFound, nil)
	if code, _, _ := e.do(http.MethodGet, e.site+"/", b); code != http.StatusUnauthorized {
		t.Errorf("revoked session's request: %d, want 401", code)
	}

	// Errors.
	e.api(http.MethodDelete, "/idle-sessions/not-a-session", http.StatusBadRequest, nil)
	e.api(http.MethodDelete, "/idle-sessions/", http.StatusBadRequest, nil)
	e.api(http.MethodDelete, "/idle-sessions/stats", http.StatusMethodNotAllowed, nil)
	e.api(http.MethodPost, "/idle-sessions/", http.StatusMethodNotAllowed, nil)
	e.api(http.MethodGet, "/idle-sessions/dead-letters/retry", http.StatusMethodNotAllowed, nil)
	e.api(http.MethodGet, "/idle-sessions/a/b", http.StatusNotFound, nil)
	e.api(http.MethodDelete, "/idle-sessions/?user=nobody&zone=nope", http.StatusNotFound, nil)
}

func TestAdminDeadLettersRetry(t *testing.T) {
	e := startAdminEnv(t, "max_attempts 1")
	e.hooks.fail.Store(true)
	sid := e.login("42")

	var rv map[string]int
	e.api(http.MethodDelete, "/idle-sessions/?user=42", http.StatusOK, &rv)

	var dl struct {
		DeadLetters []deadLetterJSON `json:"dead_letters"`
		Count       int              `json:"count"`
	}
	eventually(t, 10*time.Second, func() error {
		e.api(http.MethodGet, "/idle-sessions/dead-letters", http.StatusOK, &dl)
		if dl.Count != 1 {
			return fmt.Errorf("dead letters: %+v", dl)
		}
		return nil
	})
	d := dl.DeadLetters[0]
	if d.Type != "session.ended" || d.Zone != "sid" || d.Attempts != 1 || d.LastError == "" || !strings.Contains(string(d.Payload), `"revoked"`) {
		t.Errorf("dead letter: %+v %s", d, d.Payload)
	}
	if strings.Contains(string(d.Payload), sid) {
		t.Errorf("dead letter carries the raw cookie: %s", d.Payload)
	}

	e.hooks.fail.Store(false)
	var rq map[string]int
	e.api(http.MethodPost, "/idle-sessions/dead-letters/retry", http.StatusOK, &rq)
	if rq["requeued"] != 1 {
		t.Fatalf("retry: %v", rq)
	}
	eventually(t, 10*time.Second, func() error {
		if n := len(e.hooks.ended()); n != 1 {
			return fmt.Errorf("%d webhooks delivered after the retry", n)
		}
		return nil
	})
	e.api(http.MethodGet, "/idle-sessions/dead-letters", http.StatusOK, &dl)
	if dl.Count != 0 {
		t.Errorf("dead letters after a successful retry: %+v", dl)
	}
}

func TestAdminUIServed(t *testing.T) {
	e := startAdminEnv(t, "")
	code, hdr, body := e.do(http.MethodGet, e.admin+"/idle-sessions/ui", "")
	if code != http.StatusOK || !strings.HasPrefix(hdr.Get("Content-Type"), "text/html") {
		t.Fatalf("ui: %d %s", code, hdr)
	}
	for _, bad := range []string{"src=\"http", "href=\"http", "<link", "src=\"//"} {
		if strings.Contains(string(body), bad) {
			t.Errorf("ui page loads an external asset (%s)", bad)
		}
	}
	if !strings.Contains(hdr.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Errorf("ui CSP: %q", hdr.Get("Content-Security-Policy"))
	}
}

// Parallel requests of one session, each answered with a new value of it
// (Laravel without laravel_key), rotate that one session: however their
// rotations interleave, none of the values becomes a session of its own.
func TestParallelReissueStaysOneSession(t *testing.T) {
	e := startAdminEnv(t, "")
	cur := e.login("42")
	for round := range 40 {
		values := make([]string, 8)
		var wg sync.WaitGroup
		for i := range values {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequest(http.MethodGet, e.site+"/reissue", nil)
				req.AddCookie(&http.Cookie{Name: "sid", Value: cur})
				resp, err := plain.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Errorf("round %d: parallel request refused: %d", round, resp.StatusCode)
				}
				for _, c := range resp.Cookies() {
					if c.Name == "sid" {
						values[i] = c.Value
					}
				}
			}()
		}
		wg.Wait()
		if t.Failed() {
			return
		}
		var all listResp
		e.api(http.MethodGet, "/idle-sessions/", http.StatusOK, &all)
		if all.Count != 1 {
			t.Fatalf("round %d: %d sessions after parallel reissues, want the one: %+v", round, all.Count, all.Sessions)
		}
		cur = values[round%len(values)] // any answer's value is the session
	}
}

// Methods are compared exactly: a method that is a part of an allowed one
// ("DEL", "ET", "E"), or one in another case, gets 405 with the resource's
// Allow header, and does nothing.
func TestAdminMethodsExact(t *testing.T) {
	e := startAdminEnv(t, "")
	sid := e.login("42")
	var all listResp
	e.api(http.MethodGet, "/idle-sessions/", http.StatusOK, &all)
	if all.Count != 1 {
		t.Fatalf("list: %+v", all)
	}
	short := all.Sessions[0].Session
	for _, tc := range []struct {
		path, allow string
		methods     []string
	}{
		{"/idle-sessions/", "GET, DELETE", []string{"DEL", "DELET", "ELETE", "E", "ET", "GE", "T", "get", "delete", "Delete", "POST", "PUT", "HEAD", "GETDELETE"}},
		{"/idle-sessions/?user=42", "GET, DELETE", []string{"DEL", "ELE", "LETE", "delete"}},
		{"/idle-sessions/stats", "GET", []string{"E", "ET", "GE", "get", "DELETE"}},
		{"/idle-sessions/dead-letters", "GET", []string{"ET", "G"}},
		{"/idle-sessions/dead-letters/retry", "POST", []string{"POS", "OST", "PO", "post", "GET"}},
		{"/idle-sessions/" + short, "DELETE", []string{"DEL", "D", "ETE", "delete", "GET"}},
	} {
		for _, m := range tc.methods {
			code, hdr, body := e.do(m, e.admin+tc.path, "")
			if code != http.StatusMethodNotAllowed {
				t.Errorf("%s %s: %d %s, want 405", m, tc.path, code, body)
				continue
			}
			if got := hdr.Get("Allow"); got != tc.allow {
				t.Errorf("%s %s: Allow %q, want %q", m, tc.path, got, tc.allow)
			}
		}
	}
	// Nothing was revoked: the session still works and is still listed.
	if code, _, _ := e.do(http.MethodGet, e.site+"/", sid); code != http.StatusOK {
		t.Errorf("session after the refused methods: %d, want 200", code)
	}
	e.api(http.MethodGet, "/idle-sessions/", http.StatusOK, &all)
	if all.Count != 1 {
		t.Errorf("after the refused methods: %d sessions, want 1", all.Count)
	}
	// The exact methods still work.
	e.api(http.MethodGet, "/idle-sessions/stats", http.StatusOK, nil)
	e.api(http.MethodDelete, "/idle-sessions/"+short, http.StatusOK, nil)
}
