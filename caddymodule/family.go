package caddymodule

import (
	"net/http"
	"strings"
	"sync"

	"github.com/idlegate/idlegate/sessioncookie"
)

// families holds each zone's cookie family (docs/SECURITY.md, "A session
// is every cookie the application issued"), by store and zone, for as long
// as a config names the zone: what an application sets does not change
// with a reload. Cleanup drops the family of a zone that retires; the
// store's copy (engine/members.go) restores it when a config names the
// zone again.
var families sync.Map // familyKey → *sessioncookie.Family

func (h *Handler) familyKey() string { return h.poolKey + "\x00" + h.Zone }

// family returns the zone's cookie family, found once at Provision.
func (h *Handler) family() *sessioncookie.Family {
	if h.fam == nil {
		f, _ := families.LoadOrStore(h.familyKey(), new(sessioncookie.Family))
		h.fam = f.(*sessioncookie.Family)
	}
	return h.fam
}

// clearLines returns the Set-Cookie lines that delete the session's cookies
// from the browser: the session cookie (unless keepSession: the upstream's
// answer sets it itself), every cookie of the zone's family with the path
// and domain it was set with, and the clear_cookies. Cookies the request
// carries that nobody saw set (set by JavaScript, or before idlegate was
// installed), the clear_cookies and the session cookie are also cleared at
// each path prefix of the request's path, since a browser deletes a cookie
// only at the path it has. They are looked up in the request as it came,
// before anything is removed from it.
func (h *Handler) clearLines(r *http.Request, keepSession bool) []string {
	var c sessioncookie.Clearer
	prefixes := []string{"/"}
	if r != nil {
		prefixes = sessioncookie.PathPrefixes(r.URL.Path)
	}
	fam := h.family()
	if !keepSession && h.cookiePrefix == "" {
		c.AddAt(h.Cookie, prefixes)
	}
	for _, m := range fam.Members() {
		if keepSession && h.isSessionCookie(m.Name) {
			continue
		}
		c.Add(m.Name, m.Path, m.Domain)
	}
	if h.clear != nil {
		for _, p := range h.ClearCookies {
			if !strings.HasSuffix(p, "*") {
				c.AddAt(p, prefixes)
			}
		}
	}
	if r != nil {
		for name := range sessioncookie.Names(r.Header) {
			switch {
			case h.isSessionCookie(name):
				if !keepSession {
					c.AddAt(name, prefixes)
				}
			case h.clear != nil && sessioncookie.NameMatches(name, h.clear.Match), fam.Has(name):
				c.AddAt(name, prefixes)
			}
		}
	}
	return c.Lines()
}

// isSessionCookie reports whether a cookie called name is the session
// cookie: the cookie option's name, or a name its pattern matches.
func (h *Handler) isSessionCookie(name string) bool {
	if h.cookiePrefix != "" {
		return strings.HasPrefix(name, h.cookiePrefix)
	}
	return name == h.Cookie
}

// requestCookie returns the session cookie's name in a request: the cookie
// option's, or with a pattern the one name the request carries that the
// pattern matches (however the application normalizes names). several is
// true when the request carries more than one such name: which of them the
// application reads cannot be known, so the request does not read as one
// session.
func (h *Handler) requestCookie(hdr http.Header) (name string, several bool) {
	if h.cookiePrefix == "" {
		return h.Cookie, false
	}
	return sessioncookie.NameIn(hdr, h.isSessionCookie)
}

// responseCookie returns the session cookie's name in a response: with a
// pattern, the first name the response's Set-Cookie lines set that matches.
func (h *Handler) responseCookie(hdr http.Header) string {
	if h.cookiePrefix == "" {
		return h.Cookie
	}
	for _, line := range hdr["Set-Cookie"] {
		if name, _, ok := strings.Cut(line, "="); ok && h.isSessionCookie(strings.TrimSpace(name)) {
			return strings.TrimSpace(name)
		}
	}
	return ""
}

// addClearLines adds clearLines to hdr.
func (h *Handler) addClearLines(hdr http.Header, r *http.Request, keepSession bool) {
	for _, l := range h.clearLines(r, keepSession) {
		hdr.Add("Set-Cookie", l)
	}
}

// inFamily reports whether a request cookie called name is one the strip
// mode removes with the session: a clear_cookies match or a family member.
func (h *Handler) inFamily(name string) bool {
	return h.clear != nil && h.clear.Match(name) || h.family().Has(name) || h.isSessionCookie(name)
}
