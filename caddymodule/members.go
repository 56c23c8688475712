package caddymodule

import (
	"net/http"

	"github.com/idlegate/idlegate/engine"
	"github.com/idlegate/idlegate/idletrack"
	"github.com/idlegate/idlegate/sessioncookie"
	"github.com/idlegate/idlegate/storage"
)

// Credential members (docs/design.md, "Credential members"; docs/SECURITY.md,
// "A session is every cookie the application issued"): every cookie of the
// zone's family other than the session cookie that a session's response
// sets is bound to the session by value, and a request that carries such a
// value is refused once its session has ended — WordPress signs /wp-admin in
// from wordpress_<hash> alone.

const (
	// maxRequestMembers bounds the member pairs a request may carry
	// (WordPress's /wp-admin requests carry five), and maxMemberValues
	// the values of one name bindMembers compares.
	maxRequestMembers = 16
	maxMemberValues   = 4
	// minMemberValue: shorter values (a language, a timestamp, a flag)
	// cannot be one session's credential and are never bound, so that a
	// value many sessions share can never refuse them all.
	minMemberValue = 16
)

// memberRefusal checks the family members a request carries: it returns
// the reason to refuse it under, or "" to let it pass. own is the request's
// live session (hasOwn). A member of an ended session refuses with that
// end's reason; a member of another live session than the request's own is
// cookie_conflict. Members are found under every spelling an application
// normalizes to their names (wordpress.<hash> is PHP's wordpress_<hash>),
// and a request with more member pairs than maxRequestMembers is
// cookie_conflict: decoys must not push a credential past the check. A
// request without family members costs a look at its cookie names.
func (h *Handler) memberRefusal(r *http.Request, own idletrack.ID, hasOwn bool, now int64) string {
	fam := h.family()
	if fam.Len() == 0 || len(r.Header["Cookie"]) == 0 {
		return ""
	}
	isMember := func(name string) bool { return !h.isSessionCookie(name) && fam.Has(name) }
	reason := ""
	over := sessioncookie.MemberPairs(r.Header, isMember, h.profile, maxRequestMembers, func(name, value string) {
		if reason != "" || len(value) < minMemberValue || len(value) > maxCookieValue {
			return
		}
		v := h.z.Member(r.Context(), h.z.MemberID(name, value), now)
		switch {
		case v.Status == idletrack.StatusEnded:
			reason = string(v.Reason)
		case v.Status == idletrack.StatusActive && hasOwn && v.ID != own:
			reason = "cookie_conflict"
		}
	})
	if reason == "" && over {
		reason = "cookie_conflict"
	}
	return reason
}

// bindMembers binds the family members the response sets (not deletes) to
// the live session target: each value as the application will decode it,
// unless it is short or the request already carried it (a cookie the
// browser had before this session, such as a test cookie).
func (h *Handler) bindMembers(hdr http.Header, req *http.Request, target idletrack.ID, now int64) {
	fam := h.family()
	var binds []engine.MemberBind
	for _, line := range hdr["Set-Cookie"] {
		if len(binds) == storage.MaxMembers {
			break
		}
		c, ok := sessioncookie.ParseSetCookie(line, unixTime(now))
		if !ok || c.Deleted || h.isSessionCookie(c.Name) || !fam.Has(c.Name) {
			continue
		}
		value := sessioncookie.Decode(c.Raw, h.profile)
		if len(value) < minMemberValue || len(value) > maxCookieValue || carries(req, c.Name, value, h.profile) {
			continue
		}
		id := h.z.MemberID(c.Name, value)
		dup := false
		for _, b := range binds {
			dup = dup || b.ID == id
		}
		if !dup {
			binds = append(binds, engine.MemberBind{ID: id, Name: c.Name})
		}
	}
	h.z.BindMembers(target, binds, now)
}

// carries reports whether req sends the cookie name with value.
func carries(req *http.Request, name, value string, p sessioncookie.Profile) bool {
	found := false
	if req != nil {
		sessioncookie.Values(req.Header, name, p, maxMemberValues, func(v string) { found = found || v == value })
	}
	return found
}

// restoreFamily fills a family this process has not learned yet from the
// store's copy, so a refusal after a restart clears every member at once.
func (h *Handler) restoreFamily() {
	fam := h.family()
	if fam.Len() > 0 {
		return
	}
	stored := h.z.Family()
	ms := make([]sessioncookie.Member, 0, len(stored))
	for _, m := range stored {
		ms = append(ms, sessioncookie.Member{Name: m.Name, Path: m.Path, Domain: m.Domain})
	}
	fam.Restore(ms)
}

// saveFamily hands the grown family to the engine, which stores it on its
// next flush.
func (h *Handler) saveFamily() {
	ms := h.family().Members()
	out := make([]storage.FamilyMember, 0, len(ms))
	for _, m := range ms {
		out = append(out, storage.FamilyMember{Name: m.Name, Path: m.Path, Domain: m.Domain})
	}
	h.z.SaveFamily(out)
}
