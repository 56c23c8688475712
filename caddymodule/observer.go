package caddymodule

import (
	"errors"
	"io"
	"maps"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/idlegate/idlegate/engine"
	"github.com/idlegate/idlegate/idletrack"
	"github.com/idlegate/idlegate/sessioncookie"
)

// observer watches the upstream's response headers as they are written: a
// new session cookie (a session starts, or rotates), a deleted one (logout),
// the user header (login; removed before the client sees it). Whatever must
// be durable is written before the headers go out.
//
// It embeds caddyhttp.ResponseWriterWrapper, so http.ResponseController
// reaches Flush and Hijack of the real writer through Unwrap: WebSockets and
// streaming keep working.
type observer struct {
	caddyhttp.ResponseWriterWrapper
	h        *Handler
	req      *http.Request
	now      int64
	reqID    idletrack.ID // the ID of the cookie value the request carried
	name     string       // the session cookie's name in the request
	session  idletrack.ID // the request's session, when active
	user     string       // the session's user when the request was checked
	active   bool
	logout   bool     // the request matches a logout matcher
	login    bool     // the request matches a login matcher
	formUser string   // the user its form names (user_form; "" for none)
	clears   []string // Set-Cookie lines of a stripped request, put before the upstream's
	wrote    bool
	switched bool   // 101 Switching Protocols was written (see Hijack)
	inflight bool   // the session's requests in flight count this one
	finish   func() // ends the warning wrapper, if any
}

// observers are pooled: a ResponseWriter may not be used after ServeHTTP
// returns (net/http's contract), so the handler puts its observer back then,
// and the request path of a known session allocates nothing.
var observers = sync.Pool{New: func() any { return new(observer) }}

func getObserver(h *Handler, now int64) *observer {
	o := observers.Get().(*observer)
	o.h, o.now = h, now
	return o
}

// done undoes what serving the request set up, in the order it was set
// up backwards, and puts o back. It runs once the request is served, also
// when a handler after this one panics.
func (o *observer) done() {
	if o.finish != nil {
		o.finish()
	}
	if o.inflight {
		o.h.z.Tracker().InFlight(o.session, -1)
	}
	*o = observer{}
	observers.Put(o)
}

func (o *observer) WriteHeader(code int) {
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		// An informational response (103 Early Hints) goes out at once
		// with the header map as it is, and process reads only the final
		// one: the user header is kept out of the 1xx and put back for the
		// final response (Caddy's proxy removes the 1xx's own headers
		// after sending it anyway).
		saved := o.hideUser()
		o.ResponseWriter.WriteHeader(code)
		maps.Copy(o.Header(), saved)
		return
	}
	if !o.wrote && (code >= 200 || code == http.StatusSwitchingProtocols) {
		o.process(code)
		o.switched = code == http.StatusSwitchingProtocols
	}
	o.hideUser() // announced as a trailer, or already set as one
	o.ResponseWriter.WriteHeader(code)
}

// hideUser removes the user header from the response: under any spelling
// of its name, as a trailer set under http.TrailerPrefix, and from the
// Trailer header's announcement. It returns the entries it removed.
// WriteHeader calls it for every status; ServeHTTP again once the body is
// written, when trailers have been set.
func (o *observer) hideUser() http.Header {
	name := o.h.UserHeader
	if name == "" {
		return nil
	}
	hdr := o.Header()
	var removed http.Header
	for k, v := range hdr {
		if strings.EqualFold(strings.TrimPrefix(k, http.TrailerPrefix), name) {
			if removed == nil {
				removed = make(http.Header, 1)
			}
			removed[k] = v
			delete(hdr, k)
		}
	}
	if announced, ok := hdr["Trailer"]; ok {
		var keep []string
		for _, v := range announced {
			for n := range strings.SplitSeq(v, ",") {
				if n = strings.TrimSpace(n); n != "" && !strings.EqualFold(n, name) {
					keep = append(keep, n)
				}
			}
		}
		if len(keep) == 0 {
			delete(hdr, "Trailer")
		} else {
			hdr["Trailer"] = []string{strings.Join(keep, ", ")}
		}
	}
	return removed
}

func (o *observer) Write(b []byte) (int, error) {
	if !o.wrote {
		o.process(http.StatusOK)
	}
	return o.ResponseWriter.Write(b)
}

func (o *observer) ReadFrom(r io.Reader) (int64, error) {
	if !o.wrote {
		o.process(http.StatusOK)
	}
	return o.ResponseWriterWrapper.ReadFrom(r)
}

// FlushError makes http.ResponseController's Flush process the headers
// before the real writer sends them.
func (o *observer) FlushError() error {
	if !o.wrote {
		o.process(http.StatusOK)
	}
	return http.NewResponseController(o.ResponseWriter).Flush()
}

// maxUser bounds the user name taken from the user header.
const maxUser = 256

// process applies the response's session facts, once.
func (o *observer) process(code int) {
	o.wrote = true
	h, z := o.h, o.h.z
	hdr := o.Header()

	user, userSet := "", false
	if h.UserHeader != "" {
		if vals := hdr.Values(h.UserHeader); len(vals) > 0 {
			user, userSet = cleanUser(vals[0])
			hdr.Del(h.UserHeader)
		}
	}
	// Most responses set no cookie: one header lookup then spares the
	// parse and the family's (a lookup is ~130 instructions of a hot
	// request's ~5k, issue 18).
	sets := len(hdr["Set-Cookie"]) > 0
	var sc sessioncookie.SetCookie
	hasCookie := false
	if sets {
		sc, hasCookie = sessioncookie.FromResponse(hdr, h.responseCookie(hdr), unixTime(o.now))
	}
	if !userSet && h.UserCookie != "" && hasCookie && !sc.Deleted {
		// The session starts or rotates on this response (cookieSet
		// decides which): the answer to a login the application accepted.
		user, userSet = h.cookieUser(hdr)
	}
	loginOnly := false // the user counts only if the session starts or rotates
	if !userSet && hasCookie && !sc.Deleted {
		user, userSet = o.loginUser(code)
		loginOnly = userSet
	}
	if sets {
		// The cookies a session's responses set are its family; so are
		// the HttpOnly ones the app sets a visitor before (DokuWiki's PHP
		// session, which its login is bound to and which outlives its own
		// logout).
		if h.family().Learn(hdr, o.req.URL.Path, !o.active && !hasCookie) {
			h.saveFamily()
		}
	}
	if len(o.clears) > 0 {
		hdr["Set-Cookie"] = append(o.clears, hdr["Set-Cookie"]...)
	}
	ended := false
	endSession := func(why string) {
		if _, err := z.End(o.session, idletrack.ReasonLogout, o.now); err != nil {
			h.logger.Warn("session end not yet stored", zap.String("session", o.session.Short()), zap.String("why", why), zap.Error(err))
		}
		ended = true
		// When the upstream's answer leaves the session cookie alone
		// (DokuWiki keeps the same ID), idlegate clears it: the next page
		// is the application's, not a refusal.
		h.addClearLines(hdr, o.req, hasCookie)
	}
	if o.active {
		switch {
		case o.logout && code >= 200 && code < 400:
			endSession("logout request")
		case hasCookie && sc.Deleted && !o.stale():
			// (A response to a rotated-away value deleting it, e.g. Django
			// answering a request that raced a login, says nothing about
			// the session's current value.)
			endSession("upstream deleted the cookie")
		}
	}

	bind, hasBind := o.session, o.active && !ended
	if hasCookie && !sc.Deleted && len(sc.Raw) <= maxCookieValue {
		if id, ok := h.valueID(sc.Name, sc.Raw); ok {
			o.cookieSet(id, user, userSet, loginOnly, ended)
			bind, hasBind = id, true
		}
	} else if o.active && !ended && userSet && user != "" {
		if err := z.SetUser(o.session, user, o.now); err != nil {
			h.logger.Warn("login not yet stored", zap.String("session", o.session.Short()), zap.Error(err))
		}
	}

	if hasBind && (sets || ended || len(o.clears) > 0) && len(hdr["Set-Cookie"]) > 0 {
		// The credentials set with the session (members.go); only for a
		// session that is live after this response.
		if _, live := z.Tracker().Get(bind); live {
			h.bindMembers(hdr, o.req, bind, o.now)
		}
	}

	if o.active && !ended && h.RemainingHeader != "" {
		if s, ok := z.Tracker().Get(o.session); ok {
			at, _ := s.Deadline(&z.Config().Policy)
			hdr.Set(h.RemainingHeader, remainingSeconds(at, o.now))
		}
	}
}

// cookieSet carries out what the upstream setting the session cookie to
// the value whose ID is id means for the request's session, as the core
// decides it (idletrack.DecideCookieSet): the observer gathers the facts
// and acts.
//
// loginOnly: the user comes from a source believed only when the session
// starts or rotates onto id (user_form, user_placeholder), not when the
// response sets the session's own value again.
func (o *observer) cookieSet(id idletrack.ID, user string, userSet, loginOnly, ended bool) {
	h, z := o.h, o.h.z
	c := idletrack.CookieSet{Active: o.active && !ended, ReqID: o.reqID, Session: o.session, CheckedUser: o.user, NewID: id,
		UserOnLogin: h.UserHeader == ""}
	if userSet {
		c.Named = user
	}
	if c.Active && id != o.session {
		if cur, ok := z.Tracker().Get(o.session); ok {
			c.CurUser, c.Live = cur.User, true
		} else {
			// Rotated by a parallel request of the same page since this one
			// was checked (Laravel re-encrypts on every response): follow
			// the session to its current value.
			c.CurUser, c.Live = o.follow()
			c.Session = o.session
		}
		c.InFlight = z.Tracker().InFlight(o.session, 0)
	}
	switch idletrack.DecideCookieSet(c) {
	case idletrack.ActIgnore:
		return
	case idletrack.ActContinue:
		o.setUser(id, user, userSet && !loginOnly)
		return
	case idletrack.ActRotate:
		if o.rotate(id) {
			if o.session == id {
				o.setUser(id, user, userSet)
			}
			return
		}
	case idletrack.ActLogout:
		if _, err := z.End(o.session, idletrack.ReasonLogout, o.now); err != nil {
			h.logger.Warn("session end not yet stored", zap.String("session", o.session.Short()), zap.Error(err))
		}
		h.addClearLines(o.Header(), o.req, true)
		o.active = false
	case idletrack.ActDetach:
		o.active = false
	}
	// A session the upstream has just issued.
	started, err := z.Start(id, user, o.now)
	if errors.Is(err, engine.ErrEnded) {
		o.refuseIssued()
		return
	}
	if err != nil {
		h.logger.Warn("new session not yet stored", zap.String("session", id.Short()), zap.Error(err))
	}
	if !started {
		// Already known (e.g. the same value set again): it may be a login.
		o.setUser(id, user, userSet && !loginOnly)
	}
}

// setUser records a user the response named for session id.
func (o *observer) setUser(id idletrack.ID, user string, userSet bool) {
	if !userSet || user == "" {
		return
	}
	if err := o.h.z.SetUser(id, user, o.now); err != nil {
		o.h.logger.Warn("login not yet stored", zap.String("session", id.Short()), zap.Error(err))
	}
}

// rotate moves the session to the value whose ID is id. A parallel request
// of the same session may rotate it between this one's look and its move
// (Laravel re-encrypts on every response): then it follows the session to
// its current value and moves it from there, rather than leave id to become
// a session of its own. It reports whether it is done with id (moved onto
// it, or refused it as an ended identity); false means the session is gone
// and id starts as a session of its own.
func (o *observer) rotate(id idletrack.ID) bool {
	h, z := o.h, o.h.z
	for range maxRotateTries {
		_, ok, err := z.Rotate(o.session, id, o.now)
		if errors.Is(err, engine.ErrEnded) {
			o.refuseIssued()
			return true // nothing more to do with id
		}
		if ok {
			if err != nil {
				h.logger.Warn("rotation not yet stored", zap.String("session", id.Short()), zap.Error(err))
			}
			h.shared.ws.rekey(z.Name(), o.session, id)
			o.session = id
			return true
		}
		if _, live := o.follow(); !live || o.session == id {
			return o.session == id
		}
	}
	return false
}

// maxRotateTries bounds rotate's retries; each one means another request
// of the session rotated it meanwhile.
const maxRotateTries = 8

// follow moves o.session to the session's current value after a parallel
// rotation, and reports the session's user (false if it is no longer live).
// It takes both from one look: the value may be rotated on again at once,
// and then it is still the session, not a value gone.
func (o *observer) follow() (string, bool) {
	v := o.h.z.Check(o.req.Context(), o.session, o.now, false)
	if v.Status != idletrack.StatusActive {
		return "", false
	}
	o.session = v.ID
	return v.User, true
}

// refuseIssued keeps an ended identity from reaching the client when the
// upstream issues it again (Laravel answering a request for a session it
// still holds; an app that keeps the ID idlegate ended): the upstream's
// Set-Cookie lines for the session cookie give way to one that clears it,
// and the clear_cookies are cleared too.
func (o *observer) refuseIssued() {
	h, hdr := o.h, o.Header()
	lines := hdr["Set-Cookie"]
	kept := make([]string, 0, len(lines))
	for _, l := range lines {
		if sc, ok := sessioncookie.ParseSetCookie(l, unixTime(o.now)); ok && h.isSessionCookie(sc.Name) {
			continue
		}
		kept = append(kept, l)
	}
	hdr["Set-Cookie"] = append(kept, h.clearLines(o.req, false)...)
	metrics.rejected.WithLabelValues(h.Zone, "reissued").Inc()
	h.logger.Warn("the upstream issued an ended session again; its cookie was cleared instead", zap.String("zone", h.Zone))
}

// stale reports whether the request carried a rotated-away value of its
// session (one still inside rotation_grace) rather than the current one.
func (o *observer) stale() bool {
	return o.active && o.reqID != o.session
}

// cookieUser reads the user from the user_cookie the response sets.
func (h *Handler) cookieUser(hdr http.Header) (string, bool) {
	base, prefix := strings.CutSuffix(h.UserCookie, "*")
	for _, line := range hdr["Set-Cookie"] {
		c, ok := sessioncookie.ParseSetCookie(line, time.Time{})
		if !ok || c.Deleted || !(c.Name == h.UserCookie || prefix && strings.HasPrefix(c.Name, base)) {
			continue
		}
		v := sessioncookie.Decode(c.Raw, h.profile)
		if h.UserCookieSeparator != "" {
			v, _, _ = strings.Cut(v, h.UserCookieSeparator)
		}
		if u, ok := cleanUser(v); ok && u != "" {
			return u, true
		}
	}
	return "", false
}

// cleanUser accepts a user header value: valid UTF-8, no control characters
// (C0, DEL and C1: U+0085 breaks lines, U+009B starts terminal escapes) and
// no line or paragraph separators, at most maxUser bytes. Anything else is
// ignored.
func cleanUser(v string) (string, bool) {
	v = strings.TrimSpace(v)
	if len(v) > maxUser || !utf8.ValidString(v) {
		return "", false
	}
	for _, r := range v {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return "", false
		}
	}
	return v, true
}
