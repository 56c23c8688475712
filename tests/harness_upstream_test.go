package tests

// Upstream: a small application that behaves the way frameworks do with a
// session cookie, so idlegate is tested in front of something real.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// UpstreamCookie is the Upstream's session cookie name.
const UpstreamCookie = "sid"

// UserHeader is the response header through which the Upstream names the
// signed-in user (configured as idlegate's user_header).
const UserHeader = "X-Idle-User"

// ProbeHeader marks a request so a test can ask whether the Upstream saw it.
const ProbeHeader = "X-E2e-Probe"

// UpRequest is a request as the Upstream received it.
type UpRequest struct {
	Method string
	Path   string
	Query  string
	Header http.Header
	SID    string // value of the sid cookie, "" when none arrived
	HasSID bool
	At     time.Time
}

// Cookie returns the value of cookie name as the Upstream received it.
func (u UpRequest) Cookie(name string) (string, bool) {
	r := http.Request{Header: u.Header}
	c, err := r.Cookie(name)
	if err != nil {
		return "", false
	}
	return c.Value, true
}

// Upstream is the application behind Caddy, on 127.0.0.1:
//
//	POST /login?user=42  new sid each time (regeneration), Set-Cookie sid=...,
//	                     X-Idle-User: 42
//	GET  /               200 JSON {"has_sid":..,"known":..,"user":..} (HTML
//	                     when the client accepts text/html), X-Idle-User
//	                     when the sid belongs to a user
//	POST /logout         forgets the session, deletes the cookie (Max-Age=0)
//	GET  /poll           200 {"ok":true}, for polling and heartbeats
//	anything else        like GET /
type Upstream struct {
	URL  string // http://127.0.0.1:port
	Addr string // 127.0.0.1:port, for reverse_proxy

	srv *httptest.Server

	mu       sync.Mutex
	sessions map[string]string // sid -> user
	requests []UpRequest
}

// NewUpstream starts an Upstream that closes when t ends.
func NewUpstream(t testing.TB) *Upstream {
	t.Helper()
	u := &Upstream{sessions: map[string]string{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /login", u.login)
	mux.HandleFunc("POST /logout", u.logout)
	mux.HandleFunc("GET /poll", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"ok":true}`)
	})
	mux.HandleFunc("/", u.page)
	u.srv = httptest.NewServer(u.record(mux))
	u.URL = u.srv.URL
	u.Addr = strings.TrimPrefix(u.URL, "http://")
	t.Cleanup(u.srv.Close)
	return u
}

func (u *Upstream) record(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := UpRequest{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone(), At: time.Now()}
		if c, err := r.Cookie(UpstreamCookie); err == nil {
			rec.SID, rec.HasSID = c.Value, true
		}
		u.mu.Lock()
		u.requests = append(u.requests, rec)
		u.mu.Unlock()
		next.ServeHTTP(w, r)
	})
}

func (u *Upstream) sid(r *http.Request) (sid, user string, known bool) {
	c, err := r.Cookie(UpstreamCookie)
	if err != nil {
		return "", "", false
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	user, known = u.sessions[c.Value]
	return c.Value, user, known
}

func (u *Upstream) login(w http.ResponseWriter, r *http.Request) {
	user := r.URL.Query().Get("user")
	if user == "" {
		http.Error(w, "user required", http.StatusBadRequest)
		return
	}
	old, _, _ := u.sid(r)
	sid := randomHex(20)
	u.mu.Lock()
	delete(u.sessions, old) // regenerate: the old ID is dead to the app
	u.sessions[sid] = user
	u.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: UpstreamCookie, Value: sid, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
	w.Header().Set(UserHeader, user)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]string{"user": user})
}

func (u *Upstream) logout(w http.ResponseWriter, r *http.Request) {
	sid, _, _ := u.sid(r)
	u.mu.Lock()
	delete(u.sessions, sid)
	u.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: UpstreamCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true})
	w.WriteHeader(http.StatusNoContent)
}

func (u *Upstream) page(w http.ResponseWriter, r *http.Request) {
	_, user, known := u.sid(r)
	_, err := r.Cookie(UpstreamCookie)
	hasSID := err == nil
	if known {
		w.Header().Set(UserHeader, user)
	}
	if strings.Contains(r.Header.Get("Accept"), "text/html") {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, "<!doctype html><html><head><title>app</title></head><body><p>path=%s has_sid=%v user=%s</p></body></html>\n",
			r.URL.Path, hasSID, user)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"path": r.URL.Path, "has_sid": hasSID, "known": known, "user": user})
}

// Requests are all requests the Upstream received, in order.
func (u *Upstream) Requests() []UpRequest {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]UpRequest(nil), u.requests...)
}

// Probed returns the requests that carried ProbeHeader: probe.
func (u *Upstream) Probed(probe string) []UpRequest {
	var out []UpRequest
	for _, r := range u.Requests() {
		if r.Header.Get(ProbeHeader) == probe {
			out = append(out, r)
		}
	}
	return out
}

// Probe is a request option with a fresh ProbeHeader value; the value is
// returned so the test can look for it with Probed.
func Probe() (ReqOption, string) {
	v := randomHex(8)
	return WithHeader(ProbeHeader, v), v
}
