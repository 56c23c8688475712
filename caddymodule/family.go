package caddymodule

import (
	"net/http"
	"strings"
	"sync"

	"github.com/idlegate/idlegate/sessioncookie"
)

// families holds each zone's cookie family (docs/SECURITY.md, "A session
// is every cookie the application issued"), by store and zone, for the life
// of the process: what an application sets does not change with a reload.
var families sync.Map // poolKey + "\x00" + zone → *sessioncookie.Family

// family returns the zone's cookie family, found once at Provision.
func (h *Handler) family() *sessioncookie.Family {
	if h.fam == nil {
		f, _ := families.LoadOrStore(h.poolKey+"\x00"+h.Name, new(sessioncookie.Family))
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
	if !keepSession {
		c.AddAt(h.Cookie, prefixes)
	}
	for _, m := range fam.Members() {
		if keepSession && m.Name == h.Cookie {
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
			case name == h.Cookie:
			case h.clear != nil && sessioncookie.NameMatches(name, h.clear.Match), fam.Has(name):
				c.AddAt(name, prefixes)
			}
		}
	}
	return c.Lines()
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
	return h.clear != nil && h.clear.Match(name) || h.family().Has(name)
}
