package idletrack

// CookieSet is what the observer knows when the upstream's response sets
// the session cookie: what the request carried, what the response set, and
// the session's state now. DecideCookieSet turns it into one Action; the
// Caddy adapter only carries the action out (docs/design.md, "Responses").
type CookieSet struct {
	// Active: the request's session was live when the request was checked
	// (and the response is not a logout that ended it).
	Active bool
	// ReqID is the ID of the value the request carried; Session the
	// session's ID when the request was checked. They differ when the
	// request carried a rotated-away value still inside its grace.
	ReqID, Session ID
	// CheckedUser is the session's user when the request was checked.
	CheckedUser string
	// Live: the session is live now (followed to its current value if a
	// parallel request rotated it meanwhile); CurUser is its user now.
	Live    bool
	CurUser string
	// NewID is the ID of the value the response sets; Named the user the
	// response names ("" when it names none).
	NewID ID
	Named string
	// InFlight is the number of the session's requests being served, this
	// one included (counted only when the zone learns users).
	InFlight int32
	// UserOnLogin: the zone learns the user only from the answer to a login
	// (user_cookie, user_form, user_placeholder), not on every response as
	// with user_header, so a new value that names no one says nothing about
	// the user: it is the session's, rotated.
	UserOnLogin bool
}

// Action is what a response that sets the session cookie does to the
// request's session.
type Action uint8

const (
	// ActStart: a session the upstream has just issued (the request had no
	// live session, or its session ended meanwhile).
	ActStart Action = iota
	// ActContinue: the response set the session's own value again; a user
	// it names is a login.
	ActContinue
	// ActRotate: the new value continues the session (same start, same
	// user unless the response names another).
	ActRotate
	// ActIgnore: nothing about the session; the value set is not started
	// either (should the browser keep it, its next request adopts it).
	ActIgnore
	// ActDetach: the new value is a session of its own (ActStart), and the
	// request's session goes on untouched.
	ActDetach
	// ActLogout: the user was cleared as the ID changed: the session ends
	// (reason logout), and the new value starts as a session of its own.
	ActLogout
)

var actionNames = [...]string{"start", "continue", "rotate", "ignore", "detach", "logout"}

func (a Action) String() string { return actionNames[a] }

// DecideCookieSet decides what a response that sets the session cookie
// means for the request's session. Each case is a framework's behaviour;
// TestDecideCookieSet names them.
func DecideCookieSet(c CookieSet) Action {
	if !c.Active {
		return ActStart
	}
	if c.NewID == c.Session {
		return ActContinue
	}
	stale := c.ReqID != c.Session
	switch {
	case !c.Live:
		// Ended since the request was checked: the value is new.
		return ActStart
	case stale && c.NewID == c.ReqID:
		// The upstream re-sent the rotated-away value the request
		// carried: nothing new about the session.
		return ActIgnore
	case stale && c.CurUser != c.CheckedUser && c.Named != c.CurUser:
		// The session changed users while this request, which still
		// carried a rotated-away value, was being served, and the answer is
		// about the old user: the upstream answered for the old value's
		// session, which it kept (Laravel's regenerate() does not destroy
		// it). Nothing about the current session.
		return ActIgnore
	case c.UserOnLogin && c.Named == "":
		// Nothing is known of the user from this response (Redmine's
		// cookie store re-encrypts the session on every response after the
		// login, naming no one): the same session under a new value.
		return ActRotate
	case stale && c.CurUser != "" && c.Named == "":
		// The request raced a rotation with the old value, and the upstream
		// no longer knew that value: it answered with a fresh anonymous
		// session (PHP's strict mode, Laravel). A session of its own; the
		// signed-in one goes on untouched.
		return ActDetach
	case c.CurUser != "" && c.Named == "" && c.InFlight > 1:
		// Another request of the session is still being served — a login
		// regenerating the ID, typically — and the upstream answered this
		// one with a fresh anonymous session because it had already dropped
		// the old value. The signed-in session is not ended by a race.
		return ActDetach
	case c.CurUser != "" && c.Named == "":
		// The user was cleared as the ID changed: a logout (Laravel's
		// logout() invalidates the session and issues a fresh one).
		return ActLogout
	}
	// A new value for the same session: a login regenerating the ID (PHP's
	// session_regenerate_id, Django's cycle_key), or Laravel re-encrypting
	// the cookie without laravel_key.
	return ActRotate
}
