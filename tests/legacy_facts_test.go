package tests

// The facts docs/apps.md states about each third-party app's cookies,
// observed on the app itself (no idlegate): which response sets which
// cookie with which attributes, what login, activity and logout do, and
// which cookie the app authenticates from. `go test ./tests -run
// TestLegacyFacts -v` prints every Set-Cookie line per step.

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// logCookies prints the Set-Cookie lines of one step.
func logCookies(t *testing.T, step string, evs []CookieEvent) {
	t.Helper()
	var sb strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&sb, "\n    %s %s -> %d  Set-Cookie: %s", e.Method, e.Path, e.Status, e.Line)
	}
	if sb.Len() == 0 {
		sb.WriteString(" (none)")
	}
	t.Logf("[%s]%s", step, sb.String())
}

// setNames is the set of cookie names the events set (deleted ones as "-name").
func setNames(evs []CookieEvent) map[string]*http.Cookie {
	out := map[string]*http.Cookie{}
	for _, e := range evs {
		name := e.Cookie.Name
		if e.Cookie.MaxAge < 0 || e.Cookie.Value == "deleted" && e.Cookie.MaxAge <= 0 || strings.Contains(strings.ToLower(e.Line), "expires=thu, 01 jan 1970") {
			name = "-" + name
		}
		out[name] = e.Cookie
	}
	return out
}

// onlyCookies is a request option that sends exactly the named cookies of
// b's jar for path.
func onlyCookies(b *Browser, path string, names ...string) ReqOption {
	var parts []string
	for _, c := range b.Cookies(path) {
		for _, n := range names {
			if c.Name == n {
				parts = append(parts, c.Name+"="+c.Value)
			}
		}
	}
	return WithRawCookie(strings.Join(parts, "; "))
}

// probe visits the protected page with exactly the given cookies (no jar
// change) and returns the user the app shows.
func (d *LegacyDriver) probe(t *testing.T, b *Browser, names ...string) string {
	t.Helper()
	p, err := b.DoWithout(http.MethodGet, b.URL(d.Protected), Navigation(), onlyCookies(b, d.Protected, names...))
	if err != nil {
		t.Fatal(err)
	}
	return d.Whoami(p)
}

// factsSteps runs visit / failed login / login / activity / form / logout
// against the app directly and logs every cookie; it returns the events of
// each step for the app's own assertions.
func factsSteps(t *testing.T, d LegacyDriver, app *LegacyApp, remember bool) (*Browser, map[string][]CookieEvent) {
	t.Helper()
	b := NewBrowser(app.URL, d.Spec.Prefix)
	steps := map[string][]CookieEvent{}
	mark := 0
	step := func(name string) {
		evs := b.LogSince(mark)
		mark += len(evs)
		steps[name] = evs
		logCookies(t, name, evs)
	}
	b.Visit(t, d.Protected)
	step("anonymous visit of " + d.Protected)
	bad := d.Login(t, b, d.LoginUser("alice"), "wrong-password", false)
	if d.LoggedIn(bad) {
		t.Fatalf("a wrong password was accepted: %s", describe(bad.Response))
	}
	step("failed login")
	p := d.Login(t, b, d.LoginUser("alice"), alicePassword, remember)
	if !d.LoggedIn(p) {
		t.Fatalf("login not accepted: %s", describe(p.Response))
	}
	step(fmt.Sprintf("login (remember=%v)", remember))
	b.Follow(t, p)
	step("login redirect target")
	for i := 0; i < 3; i++ {
		if u := d.whoami(t, b); u != d.LoginUser("alice") {
			t.Fatalf("activity %d: the app shows user %q", i, u)
		}
	}
	step("3 visits of " + d.Protected)
	d.Form(t, b, "facts-form-text")
	if !d.Check(t, b, "facts-form-text") {
		t.Errorf("the CSRF-protected form did not take effect")
	}
	step("CSRF-protected form")
	return b, steps
}

func TestLegacyFactsWordPress(t *testing.T) {
	d := wordpressDriver
	app := StartLegacyApp(t, d.Spec)
	b, steps := factsSteps(t, d, app, false)
	h := WordPressCookieHash(app.URL)
	auth, li := "wordpress_"+h, "wordpress_logged_in_"+h
	login := steps["login (remember=false)"]
	paths := map[string]bool{}
	for _, e := range login {
		if e.Cookie.Name == auth {
			paths[e.Cookie.Path] = true
		}
		if e.Cookie.Name == li && e.Cookie.Path != "/" {
			t.Errorf("%s path %q, want /", li, e.Cookie.Path)
		}
	}
	if !paths["/wp-admin"] || !paths["/wp-content/plugins"] {
		t.Errorf("%s set with paths %v, want /wp-admin and /wp-content/plugins", auth, paths)
	}
	if v := b.CookieValue("/", li); !strings.HasPrefix(v, "alice%7C") && !strings.HasPrefix(v, "alice|") {
		t.Errorf("%s = %q, want it to start with the user name", li, v)
	}
	// WordPress authenticates /wp-admin from wordpress_<hash> alone.
	if u := d.probe(t, b, auth); u != "alice" {
		t.Errorf("/wp-admin with %s alone: user %q, want alice", auth, u)
	} else {
		t.Logf("[auth] /wp-admin/ with only %s: signed in as %s", auth, u)
	}
	if u := d.probe(t, b, li); u != "" {
		t.Errorf("/wp-admin with %s alone: user %q, want signed out", li, u)
	} else {
		t.Logf("[auth] /wp-admin/ with only %s: signed out (302 to wp-login.php)", li)
	}
	old := b.CookieHeader("/wp-admin/")
	mark := len(b.Log())
	lo := d.Logout(t, b)
	logCookies(t, "logout", b.LogSince(mark))
	del := setNames(b.LogSince(mark))
	for _, n := range []string{"-" + auth, "-" + li} {
		if del[n] == nil {
			t.Errorf("logout does not delete %s: %s", n[1:], describe(lo.Response))
		}
	}
	p, _ := b.DoWithout(http.MethodGet, b.URL(d.Protected), Navigation(), WithRawCookie(old))
	t.Logf("[replay after logout] pre-logout cookies on %s: %d, user %q (WordPress destroys the session token)", d.Protected, p.StatusCode, d.Whoami(p))
	if d.Whoami(p) != "" {
		t.Errorf("pre-logout cookies still sign in after logout")
	}
	_, steps2 := factsSteps(t, d, StartLegacyApp(t, d.Spec), true)
	_ = steps2
}

func TestLegacyFactsRedmine(t *testing.T) {
	d := redmineDriver
	app := StartLegacyApp(t, d.Spec)
	b, steps := factsSteps(t, d, app, true)
	// Redmine re-sets its session cookie on every response, with a new value.
	act := steps["3 visits of "+d.Protected]
	values := map[string]bool{}
	for _, e := range act {
		if e.Cookie.Name == "Redmine" {
			values[e.Cookie.Value] = true
		}
	}
	if len(values) < 3 {
		t.Errorf("Redmine cookie values on 3 visits: %d distinct, want a new one each time", len(values))
	}
	if setNames(steps["login (remember=true)"])["autologin"] == nil {
		t.Errorf("login with autologin=1 sets no autologin cookie")
	}
	if u := d.probe(t, b, "autologin"); u != "alice" {
		t.Errorf("autologin alone: user %q, want alice", u)
	} else {
		t.Logf("[auth] %s with only autologin: signed in as %s (a new session is issued)", d.Protected, u)
	}
	if u := d.probe(t, b, "Redmine"); u != "alice" {
		t.Errorf("Redmine alone: user %q, want alice", u)
	}
	old := b.CookieHeader("/")
	mark := len(b.Log())
	d.Logout(t, b)
	logCookies(t, "logout", b.LogSince(mark))
	if setNames(b.LogSince(mark))["-autologin"] == nil {
		t.Errorf("logout does not delete autologin")
	}
	p, _ := b.DoWithout(http.MethodGet, b.URL(d.Protected), Navigation(), WithRawCookie(old))
	t.Logf("[replay after logout] pre-logout cookies: %d, user %q", p.StatusCode, d.Whoami(p))
}

func TestLegacyFactsMediaWiki(t *testing.T) {
	d := mediawikiDriver
	app := StartLegacyApp(t, d.Spec)
	b, steps := factsSteps(t, d, app, true)
	login := setNames(steps["login (remember=true)"])
	for _, n := range []string{"my_wiki_session", "my_wikiUserID", "my_wikiUserName", "my_wikiToken"} {
		if login[n] == nil {
			t.Errorf("login (remember) does not set %s", n)
		}
	}
	if u := d.probe(t, b, "my_wikiUserID", "my_wikiToken"); u != "Alice" {
		t.Errorf("UserID+Token alone: user %q, want Alice", u)
	} else {
		t.Logf("[auth] with only my_wikiUserID + my_wikiToken: signed in as %s", u)
	}
	if u := d.probe(t, b, "my_wiki_session", "my_wikiUserID"); u != "Alice" {
		t.Errorf("session + UserID: user %q, want Alice", u)
	}
	t.Logf("[auth] with only my_wiki_session: %q; only my_wikiUserName: %q; session + UserID: Alice", d.probe(t, b, "my_wiki_session"), d.probe(t, b, "my_wikiUserName"))
	old := b.CookieHeader("/")
	mark := len(b.Log())
	d.Logout(t, b)
	logCookies(t, "logout", b.LogSince(mark))
	p, _ := b.DoWithout(http.MethodGet, b.URL(d.Protected), Navigation(), WithRawCookie(old))
	t.Logf("[replay after logout] pre-logout cookies: %d, user %q", p.StatusCode, d.Whoami(p))
}

func testLegacyFactsDokuWiki(t *testing.T, prefix string) {
	d := dokuwikiDriver(prefix)
	app := StartLegacyApp(t, d.Spec)
	b, steps := factsSteps(t, d, app, false)
	dw := DokuWikiCookie(prefix, app.Port)
	login := setNames(steps["login (remember=false)"])
	if login[dw] == nil || login["DokuWiki"] == nil {
		t.Fatalf("login does not set %s and DokuWiki: %v", dw, login)
	}
	if p := login["DokuWiki"].Path; p != prefix+"/" {
		t.Errorf("DokuWiki cookie path %q, want %q", p, prefix+"/")
	}
	t.Logf("[auth] only DokuWiki (session): %q; only %s: %q", d.probe(t, b, "DokuWiki"), dw, d.probe(t, b, dw))
	sid := b.CookieValue(prefix+"/", "DokuWiki")
	old := b.CookieHeader(prefix + "/")
	mark := len(b.Log())
	d.Logout(t, b)
	logCookies(t, "logout", b.LogSince(mark))
	if after := b.CookieValue(prefix+"/", "DokuWiki"); after != sid {
		t.Logf("logout changed the session ID")
	} else {
		t.Logf("[logout] the DokuWiki session ID stays the same")
	}
	p, _ := b.DoWithout(http.MethodGet, b.URL(d.Protected), Navigation(), WithRawCookie(old))
	t.Logf("[replay after logout] pre-logout cookies: %d, user %q", p.StatusCode, d.Whoami(p))
	_, s2 := factsSteps(t, d, StartLegacyApp(t, d.Spec), true)
	_ = s2
}

func TestLegacyFactsDokuWiki(t *testing.T)        { testLegacyFactsDokuWiki(t, "") }
func TestLegacyFactsDokuWikiSubpath(t *testing.T) { testLegacyFactsDokuWiki(t, "/dokuwiki") }
