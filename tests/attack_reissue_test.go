package tests

// Issue 15, item 3, from outside: an upstream that answers with the cookie
// of an ended session (as Laravel does when it read S from a spelling
// idlegate missed) must not make that identity live again, before or after
// a restart, whether the request had no session or a live anonymous one.
// The tests/apps cannot be made to do this once the request side is closed,
// so this upstream does it on purpose: GET /reissue?to=S sets S for alice.

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// startReissueApp is an app with the tests/apps endpoints the attack harness
// uses (login, /api/me, /, the webhook receiver and its events) plus
// /reissue. Like Laravel, every visitor gets a session cookie at GET /login,
// and the login rotates it.
func startReissueApp(t *testing.T) *App {
	t.Helper()
	recv := NewReceiver(t)
	var mu sync.Mutex
	users := map[string]string{} // sid → user ("" anonymous); never forgets
	user := func(r *http.Request) string {
		c, err := r.Cookie(UpstreamCookie)
		if err != nil {
			return ""
		}
		mu.Lock()
		defer mu.Unlock()
		return users[c.Value]
	}
	set := func(w http.ResponseWriter, sid, u string) {
		mu.Lock()
		users[sid] = u
		mu.Unlock()
		http.SetCookie(w, &http.Cookie{Name: UpstreamCookie, Value: sid, Path: "/", HttpOnly: true})
		if u != "" {
			w.Header().Set(UserHeader, u)
		}
	}
	me := func(w http.ResponseWriter, u string) {
		w.Header().Set("Content-Type", "application/json")
		if u == "" {
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"error":"unauthenticated","user":null}`))
			return
		}
		w.Header().Set(UserHeader, u)
		w.Write([]byte(`{"user":"` + u + `","username":"alice"}`))
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", func(w http.ResponseWriter, r *http.Request) {
		set(w, randomHex(16), "")
		w.Write([]byte("<h1>Sign in</h1>"))
	})
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		if r.PostForm.Get("username") != "alice" || r.PostForm.Get("password") != "alice-pw" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		set(w, randomHex(16), atkUser)
		http.Redirect(w, r, "/", http.StatusFound)
	})
	mux.HandleFunc("GET /reissue", func(w http.ResponseWriter, r *http.Request) {
		set(w, r.URL.Query().Get("to"), atkUser)
		me(w, atkUser)
	})
	mux.HandleFunc("GET /api/me", func(w http.ResponseWriter, r *http.Request) { me(w, user(r)) })
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		if user(r) == "" {
			http.Redirect(w, r, "/login", http.StatusFound)
			return
		}
		w.Header().Set(UserHeader, atkUser)
		w.Write([]byte("<h1>Hello alice</h1>"))
	})
	mux.HandleFunc("POST /idlegate/webhook", recv.serve)
	mux.HandleFunc("GET /idlegate/events", func(w http.ResponseWriter, r *http.Request) {
		var out []AppEvent
		for _, e := range recv.Events() {
			out = append(out, AppEvent{ID: e.ID, Type: e.Type, Data: e.Data})
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(out)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &App{
		Framework: Framework{Name: "reissue", Cookie: UpstreamCookie},
		URL:       srv.URL,
		Addr:      strings.TrimPrefix(srv.URL, "http://"),
	}
}

var reissueRows = []*atkRow{
	// A request without a session cookie; the answer sets S (a Start).
	{Name: "reissue_start", Reissue: true, Lines: func(*atkCase, string) []string { return nil }},
	// A request of a live anonymous session A; the answer moves it onto S
	// (a Rotate).
	{Name: "reissue_rotate", Reissue: true, Anon: true, Lines: func(_ *atkCase, anon string) []string {
		return []string{UpstreamCookie + "=" + anon}
	}},
}

func TestAttackUpstreamReissue(t *testing.T) {
	needCaddy(t)
	t.Parallel()
	attackStack(t, startReissueApp(t), reissueRows).run()
}
