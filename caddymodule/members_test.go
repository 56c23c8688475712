package caddymodule

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
)

// memberApp signs in as WordPress does: the session cookie idlegate tracks
// and an auth cookie on /wp-admin that the application accepts by itself.
// /wp-admin/ answers "dashboard" when it receives any auth cookie it
// issued, "login" otherwise, and every request's cookies are recorded.
func memberApp(t *testing.T) (*httptest.Server, func() []string) {
	var mu sync.Mutex
	var seen []string
	var n atomic.Int64
	issued := map[string]bool{}
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Cookie"))
		mu.Unlock()
		switch {
		case strings.HasSuffix(r.URL.Path, "/login"):
			i := n.Add(1)
			tok := fmt.Sprintf("user%d|1764000000|token-%d-%d|hmac", i, i, time.Now().UnixNano())
			mu.Lock()
			issued[tok] = true
			mu.Unlock()
			w.Header().Add("Set-Cookie", fmt.Sprintf("sid=v%d-%d; Path=/; HttpOnly", i, time.Now().UnixNano()))
			w.Header().Add("Set-Cookie", "wp_auth="+strings.ReplaceAll(tok, "|", "%7C")+"; Path=/wp-admin; HttpOnly")
			w.Header().Set("X-Idle-User", fmt.Sprint("user", i))
		case strings.HasPrefix(r.URL.Path, "/wp-admin"):
			if c, err := r.Cookie("wp_auth"); err == nil {
				mu.Lock()
				ok := issued[strings.ReplaceAll(c.Value, "%7C", "|")]
				mu.Unlock()
				if ok {
					fmt.Fprint(w, "dashboard")
					return
				}
			}
			fmt.Fprint(w, "login")
			return
		}
		fmt.Fprint(w, "ok")
	}))
	t.Cleanup(s.Close)
	return s, func() []string { mu.Lock(); defer mu.Unlock(); return slices.Clone(seen) }
}

func memberConfig(upstream, db, extra string) string {
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
		store bolt %s
		%s
	}
	reverse_proxy %s
}
`, db, extra, strings.TrimPrefix(upstream, "http://"))
}

// login signs in and returns the session cookie and the auth cookie.
func memberLogin(t *testing.T, tc *caddytest.Tester) (sid, auth string) {
	t.Helper()
	resp, _ := do(t, tc, "POST", "/login", "")
	for _, c := range resp.Cookies() {
		switch c.Name {
		case "sid":
			sid = c.Value
		case "wp_auth":
			auth = c.Value
		}
	}
	if sid == "" || auth == "" {
		t.Fatalf("login set sid %q, wp_auth %q", sid, auth)
	}
	return sid, auth
}

func wpAdmin(t *testing.T, cookie string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://localhost:9080/wp-admin/", nil)
	req.Header.Set("Cookie", cookie)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 512)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp, b.String()
}

// TestMemberOfAnEndedSessionIsRefused: after the session expired, its auth
// cookie alone (no session cookie) must not reach the application as a
// credential, in every on_expired mode, nor beside an attacker's own live
// session, nor after a restart.
func TestMemberOfAnEndedSessionIsRefused(t *testing.T) {
	for _, mode := range []string{"status", "redirect", "strip"} {
		t.Run(mode, func(t *testing.T) {
			clk := useFakeClock(t)
			up, seen := memberApp(t)
			extra := ""
			switch mode {
			case "redirect":
				extra = "on_expired redirect /signin"
			case "strip":
				extra = "on_expired strip"
			}
			db := filepath.Join(t.TempDir(), "sessions.db")
			cfg := memberConfig(up.URL, db, extra)
			tc := caddytest.NewTester(t)
			tc.InitServer(cfg, "caddyfile")
			_, auth := memberLogin(t, tc)
			if _, body := wpAdmin(t, "wp_auth="+auth); body != "dashboard" {
				t.Fatalf("the live session's auth cookie: %q", body)
			}
			clk.advance(31 * time.Minute)

			refused := func(when, cookie string) {
				t.Helper()
				resp, body := wpAdmin(t, cookie, "Accept", "text/html")
				switch mode {
				case "status":
					if resp.StatusCode != http.StatusUnauthorized {
						t.Fatalf("%s: status %d %q, want 401", when, resp.StatusCode, body)
					}
				case "redirect":
					if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/signin" {
						t.Fatalf("%s: %d to %q, want 303 to /signin", when, resp.StatusCode, resp.Header.Get("Location"))
					}
				case "strip":
					if body != "login" {
						t.Fatalf("%s: the application answered %q", when, body)
					}
					if s := seen(); strings.Contains(s[len(s)-1], "wp_auth") || strings.Contains(s[len(s)-1], auth) {
						t.Fatalf("%s: the application received %q", when, s[len(s)-1])
					}
				}
				if got := clears(resp); !slices.Contains(got, "wp_auth /wp-admin ") {
					t.Errorf("%s: the answer does not clear the auth cookie at its path: %q", when, got)
				}
			}
			refused("only the ended session's auth cookie", "wp_auth="+auth)
			// PHP reads "wp.auth" and " wp auth" as wp_auth.
			refused("the auth cookie spelled as PHP normalizes it", "wp.auth="+auth)
			// Decoys under member names must not push it past the check.
			decoys := strings.Repeat("wp_auth=decoy-decoy-decoy-decoy; ", maxRequestMembers)
			refused("the auth cookie behind decoys", decoys+"wp_auth="+auth)

			// An attacker's own live session plus the victim's old auth cookie.
			own, _ := memberLogin(t, tc)
			refused("own live session + an ended session's auth cookie", "sid="+own+"; wp_auth="+auth)

			// A restart: a new engine on the same file, and a process
			// that has not learned the family.
			tc.InitServer(`{
	admin localhost:2999
	http_port 9080
	skip_install_trust
}
http://localhost:9080 {
	respond "down"
}`, "caddyfile")
			families.Range(func(k, _ any) bool { families.Delete(k); return true })
			tc.InitServer(cfg, "caddyfile")
			refused("after a restart", "wp_auth="+auth)
		})
	}
}

// TestMemberOfAnotherLiveSessionConflicts: two live sessions' cookies in
// one request do not read as one session.
func TestMemberOfAnotherLiveSessionConflicts(t *testing.T) {
	useFakeClock(t)
	up, _ := memberApp(t)
	tc := caddytest.NewTester(t)
	tc.InitServer(memberConfig(up.URL, filepath.Join(t.TempDir(), "s.db"), ""), "caddyfile")
	_, authA := memberLogin(t, tc)
	sidB, authB := memberLogin(t, tc)
	if _, body := wpAdmin(t, "sid="+sidB+"; wp_auth="+authB); body != "dashboard" {
		t.Fatalf("a session with its own auth cookie: %q", body)
	}
	if resp, _ := wpAdmin(t, "sid="+sidB+"; wp_auth="+authA); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a session with another live session's auth cookie: %d, want 401", resp.StatusCode)
	}
	// A value set before idlegate was installed is nobody's: it passes.
	if _, body := wpAdmin(t, "wp_auth=someone%7Cset-before-idlegate%7Cx"); body != "login" {
		t.Fatalf("an unknown auth cookie: %q", body)
	}
}
