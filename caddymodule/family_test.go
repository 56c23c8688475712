package caddymodule

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
)

// familyApp sets, with the session, cookies as WordPress and DokuWiki do:
// an auth cookie scoped to a path and a domain, and one without a Path
// (the browser gives it the request's directory). Every request reports
// the cookies it received.
func familyApp(t *testing.T) (*httptest.Server, func() []string) {
	var mu sync.Mutex
	var seen []string
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Cookie"))
		mu.Unlock()
		if strings.HasSuffix(r.URL.Path, "/login") {
			w.Header().Add("Set-Cookie", fmt.Sprintf("sid=v%d; Path=/; HttpOnly", time.Now().UnixNano()))
			w.Header().Add("Set-Cookie", "wp_auth=tok; Path=/wp-admin; Domain=example.com; HttpOnly")
			w.Header().Add("Set-Cookie", "pref=1")
			w.Header().Set("X-Idle-User", "42")
		}
		fmt.Fprint(w, "ok")
	}))
	t.Cleanup(s.Close)
	return s, func() []string { mu.Lock(); defer mu.Unlock(); return slices.Clone(seen) }
}

func loginAt(t *testing.T, tc *caddytest.Tester, path string) string {
	t.Helper()
	resp, _ := do(t, tc, "POST", path, "")
	for _, c := range resp.Cookies() {
		if c.Name == "sid" {
			return c.Value
		}
	}
	t.Fatalf("no sid from %s", path)
	return ""
}

// clears lists the (name, path, domain) that a response's Set-Cookie lines
// delete.
func clears(resp *http.Response) []string {
	var out []string
	for _, c := range resp.Cookies() {
		if c.MaxAge < 0 {
			out = append(out, c.Name+" "+c.Path+" "+c.Domain)
		}
	}
	return out
}

// TestRefusalClearsEveryCookieOfTheSession: a browser deletes a cookie only
// at the path and domain it was set with, so clearing at Path=/ left
// WordPress's path-scoped auth cookie behind to sign the user back in.
func TestRefusalClearsEveryCookieOfTheSession(t *testing.T) {
	clk := useFakeClock(t)
	up, _ := familyApp(t)
	rc := newReceiver(t)
	tc := caddytest.NewTester(t)
	tc.InitServer(caddyfileFor(t, up.URL, rc.URL, ""), "caddyfile")
	sid := loginAt(t, tc, "/app/login")
	clk.advance(31 * time.Minute)
	resp, _ := do(t, tc, "GET", "/wp-admin/index.php", sid, "Accept", "text/html")
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("status %d", resp.StatusCode)
	}
	got := clears(resp)
	for _, want := range []string{
		"sid / ", "sid /wp-admin ", "sid /wp-admin/ ", // the session cookie, also at the request's path prefixes
		"wp_auth /wp-admin example.com", // as it was set
		"pref /app ",                    // no Path: the login request's directory
	} {
		if !slices.Contains(got, want) {
			t.Errorf("the refusal does not clear %q; it clears %q", want, got)
		}
	}
}

// TestStripRemovesTheFamily: in strip mode the request goes on without
// every cookie the session's responses set, not only the session cookie.
func TestStripRemovesTheFamily(t *testing.T) {
	clk := useFakeClock(t)
	up, seen := familyApp(t)
	rc := newReceiver(t)
	tc := caddytest.NewTester(t)
	tc.InitServer(caddyfileFor(t, up.URL, rc.URL, "on_expired strip"), "caddyfile")
	sid := loginAt(t, tc, "/app/login")
	clk.advance(31 * time.Minute)
	req, _ := http.NewRequest("GET", "http://localhost:9080/wp-admin/", nil)
	req.Header.Set("Cookie", "sid="+sid+"; wp_auth=tok; theme=dark; pref=1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if s := seen(); s[len(s)-1] != "theme=dark" {
		t.Fatalf("the upstream received %q; want only the cookie that is not the session's", s[len(s)-1])
	}
	if got := clears(resp); !slices.Contains(got, "wp_auth /wp-admin example.com") || !slices.Contains(got, "sid / ") {
		t.Errorf("strip's response clears %q", got)
	}
}

// TestRedirectTargetIsNeverRedirected: a cookie whose clearing cannot take
// (set at a path idlegate does not know, or by a browser that ignores the
// deletion) would otherwise send the browser from the page to the login
// page and back, forever.
func TestRedirectTargetIsNeverRedirected(t *testing.T) {
	clk := useFakeClock(t)
	up, seen := familyApp(t)
	rc := newReceiver(t)
	tc := caddytest.NewTester(t)
	tc.InitServer(caddyfileFor(t, up.URL, rc.URL, "on_expired redirect /wp-login.php"), "caddyfile")
	sid := loginAt(t, tc, "/app/login")
	clk.advance(31 * time.Minute)
	nav := []string{"Sec-Fetch-Mode", "navigate", "Sec-Fetch-Dest", "document", "Accept", "text/html"}
	if resp, _ := do(t, tc, "GET", "/wp-admin/", sid, nav...); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("a page: status %d, want 303 to the login page", resp.StatusCode)
	}
	// The browser kept the cookie (its clearing did not take) and follows.
	resp, body := do(t, tc, "GET", "/wp-login.php", sid, nav...)
	if resp.StatusCode != http.StatusOK || body != "ok" {
		t.Fatalf("the redirect target: status %d %q; want the application's page", resp.StatusCode, body)
	}
	if s := seen(); strings.Contains(s[len(s)-1], "sid=") {
		t.Fatalf("the redirect target reached the application with the ended cookie: %q", s[len(s)-1])
	}
	if !clearsSid(resp) {
		t.Error("the redirect target's answer still clears the session cookie")
	}
}

// TestCookiePattern: WordPress and DokuWiki name their cookies with a hash
// of the site (wordpress_logged_in_<md5>, DW<md5>); cookie takes a pattern.
// A request carrying two names the pattern matches is refused: which one
// the application reads cannot be known, and an attacker would hide the
// ended session behind an invented one.
func TestCookiePattern(t *testing.T) {
	clk := useFakeClock(t)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/login" {
			w.Header().Add("Set-Cookie", fmt.Sprintf("wp_li_1a2b=alice%%7C%d; Path=/", time.Now().UnixNano()))
			w.Header().Set("X-Idle-User", "alice")
		}
		fmt.Fprintf(w, "cookies=%s", r.Header.Get("Cookie"))
	}))
	defer up.Close()
	rc := newReceiver(t)
	tc := caddytest.NewTester(t)
	cfg := strings.Replace(caddyfileFor(t, up.URL, rc.URL, "cookie_parser php"), "cookie sid", "cookie wp_li_*", 1)
	tc.InitServer(cfg, "caddyfile")
	resp, _ := do(t, tc, "POST", "/login", "")
	var v string
	for _, c := range resp.Cookies() {
		if c.Name == "wp_li_1a2b" {
			v = c.Value
		}
	}
	if v == "" {
		t.Fatalf("no session cookie: %v", resp.Header.Values("Set-Cookie"))
	}
	get := func(cookie string) (*http.Response, string) {
		req, _ := http.NewRequest("GET", "http://localhost:9080/page", nil)
		req.Header.Set("Cookie", cookie)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	if resp, body := get("wp_li_1a2b=" + v); resp.StatusCode != 200 || !strings.Contains(body, v) {
		t.Fatalf("the live session: %d %q", resp.StatusCode, body)
	}
	if resp, _ := get("wp_li_zzzz=junk; wp_li_1a2b=" + v); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("two names of the pattern: status %d, want 401", resp.StatusCode)
	}
	clk.advance(31 * time.Minute)
	for _, c := range []string{"wp_li_1a2b=" + v, "wp.li_1a2b=" + v, "a=1; wp_li_1a2b=" + v} {
		if resp, body := get(c); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%q after the idle timeout: %d %q, want 401", c, resp.StatusCode, body)
		} else if got := clears(resp); !slices.Contains(got, "wp_li_1a2b / ") {
			t.Errorf("%q: the refusal clears %q", c, got)
		}
	}
}

// TestUserFromACookie: an application that sends no user header still
// names the user in a cookie it sets at login (WordPress's
// wordpress_logged_in_<hash> starts with "alice|"). The cookie is believed
// only on the response that starts or rotates the session: a failed login
// sets none, and a later page re-setting it changes nothing.
func TestUserFromACookie(t *testing.T) {
	clk := useFakeClock(t)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/login":
			if r.URL.Query().Get("pw") != "right" {
				w.WriteHeader(http.StatusForbidden) // no cookie: no user
				return
			}
			w.Header().Add("Set-Cookie", fmt.Sprintf("sid=s%d; Path=/", time.Now().UnixNano()))
			w.Header().Add("Set-Cookie", "wp_li_9f=alice%7C1700000000%7Ctoken; Path=/")
		case "/profile":
			w.Header().Add("Set-Cookie", "wp_li_9f=mallory%7C1; Path=/")
		}
		fmt.Fprint(w, "ok")
	}))
	defer up.Close()
	rc := newReceiver(t)
	tc := caddytest.NewTester(t)
	cfg := strings.Replace(caddyfileFor(t, up.URL, rc.URL, "user_cookie wp_li_* |\n\t\tcookie_parser php"), "user_header X-Idle-User", "", 1)
	tc.InitServer(cfg, "caddyfile")
	do(t, tc, "POST", "/login?pw=wrong", "")
	resp, _ := do(t, tc, "POST", "/login?pw=right", "")
	var sid string
	for _, c := range resp.Cookies() {
		if c.Name == "sid" {
			sid = c.Value
		}
	}
	do(t, tc, "GET", "/profile", sid)
	clk.advance(31 * time.Minute)
	evs := rc.wait(t, 1)
	data, _ := evs[0]["data"].(map[string]any)
	// Had /profile's cookie been believed, mallory would have taken the
	// session over, ending alice's with reason logout first.
	if data["user"] != "alice" || data["reason"] != "idle" {
		t.Fatalf("the first end: user %v, reason %v; want alice (from the login's cookie), idle", data["user"], data["reason"])
	}
}
