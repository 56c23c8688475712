package caddymodule

import (
	"net/http"
	"strings"
	"time"

	"github.com/idlegate/idlegate/sessioncookie"
)

// refuse answers a request of an ended session per on_expired, clearing the
// session cookie and the clear_cookies.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, reason string) error {
	hdr := w.Header()
	h.addClearCookies(hdr, r)
	hdr.Add("Set-Cookie", clearSession(h.Cookie))
	hdr.Set("Cache-Control", "no-store")
	if h.OnExpired.Mode == "redirect" && isBrowserNavigation(r) {
		http.Redirect(w, r, h.OnExpired.URL, http.StatusSeeOther)
		return nil
	}
	code := h.OnExpired.StatusCode
	if h.OnExpired.Mode == "redirect" {
		code = http.StatusUnauthorized
	}
	if acceptsJSON(r) {
		hdr.Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_, err := w.Write([]byte(`{"error":"session_expired","reason":"` + reason + `"}` + "\n"))
		return err
	}
	hdr.Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	_, err := w.Write([]byte("Your session has expired. Please sign in again.\n"))
	return err
}

// reject counts a refused request under reason and answers it per
// on_expired; with strip, it only prepares the request to go on without
// the session (the caller forwards it).
func (h *Handler) reject(w http.ResponseWriter, r *http.Request, reason string) error {
	metrics.rejected.WithLabelValues(h.Name, reason).Inc()
	if h.OnExpired.Mode != "strip" {
		return h.refuse(w, r, reason)
	}
	h.strip(w, r)
	return nil
}

// strip forwards a refused request without the session: every pair the
// application would read as the session cookie, however spelled, and every
// clear_cookies match go. The upstream sees a signed-out visitor. The
// response still clears the cookies, which are looked up first.
func (h *Handler) strip(w http.ResponseWriter, r *http.Request) {
	h.addClearCookies(w.Header(), r)
	w.Header().Add("Set-Cookie", clearSession(h.Cookie))
	var also func(string) bool
	if h.clear != nil {
		also = h.clear.Match
	}
	sessioncookie.Strip(r.Header, h.Cookie, h.profile, also)
}

// addClearCookies adds Set-Cookie lines that delete the clear_cookies: every
// exact name, and the request's cookies that match a prefix, also under the
// names the application normalizes them to (PHP reads remember.web_x as
// remember_web_x).
func (h *Handler) addClearCookies(hdr http.Header, r *http.Request) {
	if h.clear == nil {
		return
	}
	seen := map[string]bool{}
	for _, p := range h.ClearCookies {
		if !strings.HasSuffix(p, "*") && !seen[p] {
			seen[p] = true
			hdr.Add("Set-Cookie", sessioncookie.Clear(p, "/", ""))
		}
	}
	if r == nil {
		return
	}
	for name := range sessioncookie.Names(r.Header) {
		if !seen[name] && sessioncookie.NameMatches(name, h.clear.Match) {
			seen[name] = true
			hdr.Add("Set-Cookie", sessioncookie.Clear(name, "/", ""))
		}
	}
}

// isBrowserNavigation decides whether a refused request is a top-level
// browser navigation (redirect it to the login page) or an API/XHR request
// (answer 401, a redirect would only confuse a script). The rule follows
// mod_auth_openidc:
//
//   - X-Requested-With: XMLHttpRequest → API;
//   - Sec-Fetch-Mode present: navigation only if "navigate", and then only if
//     Sec-Fetch-Dest is absent, "document" or "iframe";
//   - without Sec-Fetch headers (older browsers, curl): navigation only for
//     GET or HEAD with an Accept header that names text/html.
func isBrowserNavigation(r *http.Request) bool {
	if strings.EqualFold(r.Header.Get("X-Requested-With"), "XMLHttpRequest") {
		return false
	}
	if mode := r.Header.Get("Sec-Fetch-Mode"); mode != "" {
		if mode != "navigate" {
			return false
		}
		switch r.Header.Get("Sec-Fetch-Dest") {
		case "", "document", "iframe", "frame":
			return true
		}
		return false
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

// acceptsJSON reports whether the client prefers a JSON body.
func acceptsJSON(r *http.Request) bool {
	a := r.Header.Get("Accept")
	return strings.Contains(a, "application/json") || strings.Contains(a, "+json")
}

func unixTime(ns int64) time.Time { return time.Unix(0, ns) }

// clearSession is the Set-Cookie value that deletes the session cookie.
func clearSession(name string) string { return sessioncookie.Clear(name, "/", "") }
