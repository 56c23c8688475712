package caddymodule

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/caddyserver/caddy/v2/caddytest"
)

// userHeaderApp is an upstream that names the user where process does not
// look: on a 103 Early Hints response, and as a trailer, announced or not.
func userHeaderApp(t *testing.T) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		switch r.URL.Path {
		case "/login":
			http.SetCookie(w, &http.Cookie{Name: "sid", Value: "uh-" + r.URL.Query().Get("user"), Path: "/"})
			h.Set("X-Idle-User", r.URL.Query().Get("user"))
		case "/hints":
			h.Set("Link", "</app.css>; rel=preload; as=style")
			h.Set("X-Idle-User", "eve")
			w.WriteHeader(http.StatusEarlyHints)
			h.Del("X-Idle-User")
			h.Del("Link")
		case "/trailer":
			h.Set("Trailer", "X-Idle-User, X-Checksum")
			w.WriteHeader(http.StatusOK)
			io.WriteString(w, "body")
			h.Set("X-Idle-User", "eve")
			h.Set("X-Checksum", "abc")
			return
		case "/late-trailer":
			w.WriteHeader(http.StatusOK)
			io.WriteString(w, "body")
			w.(http.Flusher).Flush() // chunked, or there is no place for trailers
			h.Set(http.TrailerPrefix+"X-Idle-User", "eve")
			h.Set(http.TrailerPrefix+"x-idle-user", "eve2")
			h.Set(http.TrailerPrefix+"X-Checksum", "abc")
			return
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(s.Close)
	return s
}

// startSite runs a real Caddy with idle_session (cookie sid, user_header
// X-Idle-User, status_path /.idlegate/status, plus extra) in front of
// upstream, on ports of its own, and returns the site's and the admin
// endpoint's base URLs.
func startSite(t *testing.T, upstream, extra string) (site, admin string) {
	adminPort, httpPort := testAdminPort(t), freePort(t)
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
		idle 30m
		user_header X-Idle-User
		status_path /.idlegate/status
		store bolt %s
		%s
	}
	reverse_proxy %s
}
`, adminPort, httpPort, freePort(t), httpPort, filepath.Join(t.TempDir(), "sessions.db"), extra, strings.TrimPrefix(upstream, "http://"))
	tc := caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{AdminPort: adminPort, Certificates: []string{}})
	tc.InitServer(cfg, "caddyfile")
	return fmt.Sprintf("http://127.0.0.1:%d", httpPort), fmt.Sprintf("http://localhost:%d", adminPort)
}

type seenResponse struct {
	mu       sync.Mutex
	hints    []textproto.MIMEHeader
	header   http.Header
	trailer  http.Header
	status   int
	body     string
	hintCode []int
}

// fetch sends GET path (with the session cookie, if any) and records what
// the client receives: every 1xx response's headers, the final headers,
// the body and the trailers.
func fetch(t *testing.T, url, sid string) *seenResponse {
	t.Helper()
	seen := &seenResponse{}
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		seen.mu.Lock()
		defer seen.mu.Unlock()
		seen.hintCode = append(seen.hintCode, code)
		seen.hints = append(seen.hints, h)
		return nil
	}}
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
	if sid != "" {
		req.Header.Set("Cookie", "sid="+sid)
	}
	resp, err := (&http.Transport{Proxy: nil, DisableKeepAlives: true}).RoundTrip(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body) // trailers arrive after the body
	if err != nil {
		t.Fatal(err)
	}
	seen.status, seen.header, seen.trailer, seen.body = resp.StatusCode, resp.Header, resp.Trailer, string(b)
	return seen
}

// leaks reports any trace of the user header in h: a value, or its name
// in a Trailer announcement.
func leaks(h map[string][]string) string {
	for k, v := range h {
		if strings.EqualFold(k, "X-Idle-User") || strings.Contains(strings.ToLower(k), "x-idle-user") {
			return fmt.Sprintf("%s: %v", k, v)
		}
		if strings.EqualFold(k, "Trailer") && strings.Contains(strings.ToLower(strings.Join(v, ",")), "x-idle-user") {
			return fmt.Sprintf("%s: %v", k, v)
		}
	}
	return ""
}

// The user header never reaches the client: not on a 103 Early Hints
// response, not as an announced trailer, not as a trailer set after the
// body; with a session and without one. Other hints and trailers pass.
func TestUserHeaderNotOn1xxOrTrailers(t *testing.T) {
	site, admin := startSite(t, userHeaderApp(t).URL, "")

	login := fetch(t, site+"/login?user=42", "")
	if l := leaks(login.header); l != "" || login.status != 200 {
		t.Fatalf("login: %d, leaked %s", login.status, l)
	}
	sid := "uh-42"
	for _, who := range []struct{ name, sid string }{{"session", sid}, {"anonymous", ""}} {
		t.Run(who.name, func(t *testing.T) {
			r := fetch(t, site+"/hints", who.sid)
			if r.status != 200 || len(r.hints) != 1 || r.hintCode[0] != http.StatusEarlyHints {
				t.Fatalf("hints: %d, 1xx %v", r.status, r.hintCode)
			}
			if l := leaks(r.hints[0]); l != "" {
				t.Errorf("103 carries the user header: %s", l)
			}
			if r.hints[0].Get("Link") == "" {
				t.Errorf("103 lost its Link header: %v", r.hints[0])
			}
			if l := leaks(r.header); l != "" {
				t.Errorf("final response after 103 carries %s", l)
			}

			r = fetch(t, site+"/trailer", who.sid)
			if r.body != "body" {
				t.Fatalf("trailer: %d %q", r.status, r.body)
			}
			if l := leaks(r.header); l != "" {
				t.Errorf("announced trailer: header %s", l)
			}
			if l := leaks(r.trailer); l != "" {
				t.Errorf("announced trailer reached the client: %s", l)
			}
			if r.trailer.Get("X-Checksum") != "abc" {
				t.Errorf("the other trailer was lost: %v", r.trailer)
			}

			r = fetch(t, site+"/late-trailer", who.sid)
			if r.body != "body" {
				t.Fatalf("late trailer: %d %q", r.status, r.body)
			}
			if l := leaks(r.trailer); l != "" {
				t.Errorf("trailer set after the body reached the client: %s", l)
			}
			if l := leaks(r.header); l != "" {
				t.Errorf("late trailer: header %s", l)
			}
			if r.trailer.Get("X-Checksum") != "abc" {
				t.Errorf("the other trailer was lost: %v", r.trailer)
			}
		})
	}

	// Neither the 103 nor a trailer named anyone: the session's user is
	// still the one the login named.
	resp, err := http.Get(admin + "/idle-sessions/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list struct {
		Sessions []struct{ User *string } `json:"sessions"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	if len(list.Sessions) != 1 || list.Sessions[0].User == nil || *list.Sessions[0].User != "42" {
		t.Errorf("sessions after the hints and trailers: %+v", list.Sessions)
	}
}
