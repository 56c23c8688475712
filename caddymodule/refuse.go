package caddymodule

import (
	"net/http"
	"strings"
	"time"

	"github.com/idlegate/idlegate/sessioncookie"
)

// refuse answers a request of an ended session per on_expired, clearing the
// session's cookies.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, reason string) error {
	hdr := w.Header()
	h.addClearLines(hdr, r, false)
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
// on_expired. With strip — and with redirect for a request to the redirect
// target itself, which must never be redirected again (a loop, when the
// clearing cannot take) — it only prepares the request to go on without
// the session, and reports forward.
func (h *Handler) reject(w http.ResponseWriter, r *http.Request, o *observer, reason string) (forward bool, err error) {
	metrics.rejected.WithLabelValues(h.Zone, reason).Inc()
	if h.OnExpired.Mode != "strip" && !h.isRedirectTarget(r) {
		return false, h.refuse(w, r, reason)
	}
	h.strip(r, o)
	return true, nil
}

// strip readies a refused request to go on without the session: every pair
// the application would read as the session cookie, however spelled, every
// clear_cookies match and every cookie of the session's family go, and the
// upstream sees a signed-out visitor. The response clears them all (the
// lines are computed from the request before anything is removed, and are
// put before the upstream's own Set-Cookie lines, so a fresh session the
// upstream issues survives them).
func (h *Handler) strip(r *http.Request, o *observer) {
	o.clears = h.clearLines(r, false)
	name := o.name
	if name == "" {
		name = h.Cookie // a pattern that matched nothing: inFamily removes its matches
	}
	sessioncookie.Strip(r.Header, name, h.profile, h.inFamily)
}

// isRedirectTarget reports whether r asks for on_expired redirect's target.
func (h *Handler) isRedirectTarget(r *http.Request) bool {
	return h.redirectPath != "" && r.URL.Path == h.redirectPath && (h.redirectHost == "" || strings.EqualFold(h.redirectHost, r.Host))
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
