package idletrack

import "testing"

// TestDecideCookieSet: one row per framework behaviour a response that sets
// the session cookie can stand for.
func TestDecideCookieSet(t *testing.T) {
	S, R, N := ID{1}, ID{2}, ID{3} // the session, a rotated-away value of it, the value the response sets
	for _, tt := range []struct {
		why  string
		c    CookieSet
		want Action
	}{
		{"a visitor without a session gets one (any framework)",
			CookieSet{NewID: N}, ActStart},
		{"the session ended while the request was served: the new value starts",
			CookieSet{Active: true, ReqID: S, Session: S, NewID: N}, ActStart},
		{"Laravel without laravel_key re-encrypts the cookie on every response",
			CookieSet{Active: true, ReqID: S, Session: S, Live: true, NewID: N}, ActRotate},
		{"PHP's session_regenerate_id at login, the response naming the user",
			CookieSet{Active: true, ReqID: S, Session: S, Live: true, NewID: N, Named: "42"}, ActRotate},
		{"Django cycle_key on re-login keeps the user, under a new key",
			CookieSet{Active: true, ReqID: S, Session: S, Live: true, CheckedUser: "42", CurUser: "42", NewID: N, Named: "42"}, ActRotate},
		{"the response sets the session's own value again (Redmine on every response)",
			CookieSet{Active: true, ReqID: S, Session: S, Live: true, NewID: S, Named: "42"}, ActContinue},
		{"Laravel's logout invalidates the session and issues a fresh anonymous one",
			CookieSet{Active: true, ReqID: S, Session: S, Live: true, CheckedUser: "42", CurUser: "42", NewID: N, InFlight: 1}, ActLogout},
		{"a login regenerating the ID is in flight; PHP's strict mode answers a parallel request with a fresh anonymous session",
			CookieSet{Active: true, ReqID: S, Session: S, Live: true, CheckedUser: "42", CurUser: "42", NewID: N, InFlight: 2}, ActDetach},
		{"a request with a rotated-away value after the login: PHP's strict mode no longer knows it",
			CookieSet{Active: true, ReqID: R, Session: S, Live: true, CheckedUser: "42", CurUser: "42", NewID: N}, ActDetach},
		{"the upstream re-sends the rotated-away value the request carried",
			CookieSet{Active: true, ReqID: R, Session: S, Live: true, CurUser: "42", NewID: R}, ActIgnore},
		{"Laravel's regenerate() keeps the old session: a racing request is answered for the old user",
			CookieSet{Active: true, ReqID: R, Session: S, Live: true, CheckedUser: "", CurUser: "42", NewID: N}, ActIgnore},
		{"the same race, the answer naming the new user: the session goes on under the new value",
			CookieSet{Active: true, ReqID: R, Session: S, Live: true, CheckedUser: "", CurUser: "42", NewID: N, Named: "42"}, ActRotate},
		{"Redmine's cookie store re-encrypts the signed-in session on a response that names no one (user_form)",
			CookieSet{Active: true, ReqID: S, Session: S, Live: true, CheckedUser: "alice", CurUser: "alice", NewID: N, InFlight: 1, UserOnLogin: true}, ActRotate},
		{"the same with a parallel request in flight: still the session, not a fresh one",
			CookieSet{Active: true, ReqID: S, Session: S, Live: true, CheckedUser: "alice", CurUser: "alice", NewID: N, InFlight: 2, UserOnLogin: true}, ActRotate},
		{"a login as bob on alice's session (user_form): the session changes users",
			CookieSet{Active: true, ReqID: S, Session: S, Live: true, CheckedUser: "alice", CurUser: "alice", NewID: N, Named: "bob", UserOnLogin: true}, ActRotate},
		{"a zone learning users at login re-sent the rotated-away value: nothing new",
			CookieSet{Active: true, ReqID: R, Session: S, Live: true, CurUser: "alice", NewID: R, UserOnLogin: true}, ActIgnore},
	} {
		if got := DecideCookieSet(tt.c); got != tt.want {
			t.Errorf("%s: %s, want %s", tt.why, got, tt.want)
		}
	}
}
