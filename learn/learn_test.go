package learn

import (
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"
)

// step is one exchange of a scripted visit: the request the browser
// makes (its cookies come from a real jar) and what the app answers.
type step struct {
	m, url string
	form   string        // urlencoded body
	xhr    bool          // X-Requested-With: XMLHttpRequest, no navigation
	sub    bool          // a page's subresource: no navigation
	wait   time.Duration // before the request (default 1s)
	status int
	loc    string
	set    []string // Set-Cookie lines
	hdr    map[string]string
}

const site = "http://127.0.0.1:2021"

// play records steps through a Recorder with a fake clock and a cookie jar.
func play(t *testing.T, user string, steps []step) []Exchange {
	t.Helper()
	r := NewRecorder(user)
	now := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	r.now = func() time.Time { return now }
	jar, _ := cookiejar.New(nil)
	for _, s := range steps {
		if s.wait == 0 {
			s.wait = time.Second
		}
		now = now.Add(s.wait)
		u, err := url.Parse(site + s.url)
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(s.m, u.String(), strings.NewReader(s.form))
		if s.form != "" {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		if s.xhr {
			req.Header.Set("X-Requested-With", "XMLHttpRequest")
			req.Header.Set("Sec-Fetch-Mode", "cors")
		} else if s.sub {
			req.Header.Set("Sec-Fetch-Mode", "no-cors")
		} else {
			req.Header.Set("Sec-Fetch-Mode", "navigate")
		}
		for _, c := range jar.Cookies(u) {
			req.AddCookie(c)
		}
		resp := &http.Response{StatusCode: s.status, Header: http.Header{}, Request: req}
		if s.loc != "" {
			resp.Header.Set("Location", s.loc)
		}
		for k, v := range s.hdr {
			resp.Header.Set(k, v)
		}
		for _, l := range s.set {
			resp.Header.Add("Set-Cookie", l)
		}
		r.Record(req, []byte(s.form), resp)
		jar.SetCookies(u, resp.Cookies())
	}
	return r.Exchanges()
}

const (
	wpHash  = "89367eb35cc67a54457b9e02c94ea82f"
	dwHash  = "0d1f5cf1a8f5e3b0a0cc2a8e4c5e9d2a"
	past    = "Expires=Thu, 01 Jan 1970 00:00:01 GMT"
	wpGone  = "=%20; expires=Mon, 01-Jan-2025 10:00:00 GMT; Max-Age=0; path="
	phpHdr  = "PHP/8.2.7"
	railsV  = "bG9uZ2Jhc2U2NA%3D%3D--c2Vjb25k--dGhpcmQ%3D"
	railsV2 = "b3RoZXJ2YWx1ZQ%3D%3D--c2Vjb25k--dGhpcmQ%3D"
)

var php = map[string]string{"X-Powered-By": phpHdr}

// The four apps as their tests observed them (docs/apps.md).
var appCases = []struct {
	name, user string
	steps      []step
	want       []string // lines the rendered block must have
	not        []string // lines it must not have
}{
	{
		// WordPress 6.1: the logged-in cookie at /, the auth cookie at two
		// Paths, heartbeat by script, logout by a query action.
		name: "wordpress", user: "alice",
		steps: []step{
			{m: "GET", url: "/wp-login.php", status: 200, hdr: php, set: []string{"wordpress_test_cookie=WP%20Cookie%20check; path=/"}},
			{m: "POST", url: "/wp-login.php", form: "log=alice&pwd=alice-password&wp-submit=Log+In&testcookie=1", status: 302, loc: site + "/wp-admin/", hdr: php, set: []string{
				"wordpress_test_cookie=WP%20Cookie%20check; path=/",
				"wordpress_" + wpHash + "=alice%7C1700000000%7Ctok%7Chmac; path=/wp-content/plugins; HttpOnly",
				"wordpress_" + wpHash + "=alice%7C1700000000%7Ctok%7Chmac; path=/wp-admin; HttpOnly",
				"wordpress_logged_in_" + wpHash + "=alice%7C1700000000%7Ctok%7Chmac2; path=/; HttpOnly",
			}},
			{m: "GET", url: "/wp-admin/", status: 200, hdr: php, set: []string{"wp-settings-1=mfold%3Do; path=/", "wp-settings-time-1=1700000000; path=/"}},
			{m: "GET", url: "/wp-admin/profile.php", status: 200, hdr: php},
			{m: "POST", url: "/wp-admin/admin-ajax.php", form: "action=heartbeat&_nonce=abc123&interval=60", xhr: true, status: 200, hdr: php},
			{m: "POST", url: "/wp-admin/admin-ajax.php", form: "action=heartbeat&_nonce=abc123&interval=60", xhr: true, wait: 60 * time.Second, status: 200, hdr: php},
			{m: "GET", url: "/wp-login.php?action=logout&_wpnonce=1a2b3c4d5e", status: 302, loc: site + "/wp-login.php?loggedout=true", hdr: php, set: []string{
				"wordpress_" + wpHash + wpGone + "/wp-admin",
				"wordpress_" + wpHash + wpGone + "/wp-content/plugins",
				"wordpress_logged_in_" + wpHash + wpGone + "/",
				"wp-settings-0" + wpGone + "/",
			}},
			{m: "GET", url: "/wp-login.php?loggedout=true", status: 200, hdr: php},
		},
		want: []string{
			"\tcookie wordpress_logged_in_*",
			"\tcookie_parser php",
			"\t#   wordpress_" + wpHash + "  Path=/wp-admin  (deleted by the logout)",
			"\tlogout {\n\t\tpath /wp-login.php\n\t\tquery action=logout\n\t}",
			"\tpassive {\n\t\tpath /wp-admin/admin-ajax.php\n\t\theader X-Requested-With XMLHttpRequest\n\t}",
			"\tuser_cookie wordpress_logged_in_* |",
			"\t# on_expired redirect /wp-login.php",
		},
		not: []string{"user_form", "_wpnonce", "# clear_cookies"},
	},
	{
		// Redmine 5 (Debian): "Redmine" re-set with a new value on every
		// response; autologin with "stay logged in"; logout is POST /logout.
		name: "redmine", user: "alice",
		steps: []step{
			{m: "GET", url: "/login", status: 200, hdr: map[string]string{"X-Runtime": "0.01"}, set: []string{"Redmine=" + railsV + "; path=/; HttpOnly"}},
			{m: "POST", url: "/login", form: "authenticity_token=tok%2B&username=alice&password=alice-password&autologin=1", status: 302, loc: site + "/my/page", set: []string{
				"autologin=0123456789abcdef0123456789abcdef01234567; path=/; expires=Fri, 01 Jan 2027 10:00:00 GMT; HttpOnly; SameSite=Lax",
				"Redmine=" + railsV2 + "; path=/; HttpOnly",
			}},
			{m: "GET", url: "/my/page", status: 200, set: []string{"Redmine=" + railsV + "x; path=/; HttpOnly"}},
			{m: "GET", url: "/my/account", status: 200, set: []string{"Redmine=" + railsV2 + "y; path=/; HttpOnly"}},
			{m: "POST", url: "/logout", form: "_method=post&authenticity_token=tok", status: 302, loc: site + "/", set: []string{
				"autologin=; path=/; max-age=0; expires=Thu, 01 Jan 1970 00:00:00 GMT",
				"Redmine=" + railsV + "z; path=/; HttpOnly",
			}},
			{m: "GET", url: "/", status: 200, set: []string{"Redmine=" + railsV2 + "w; path=/; HttpOnly"}},
		},
		want: []string{
			"\tcookie Redmine",
			"\tcookie_parser rails",
			"\t#   autologin  Path=/  (deleted by the logout)",
			"\tlogout {\n\t\tmethod POST\n\t\tpath /logout\n\t}",
			"\tlogin {\n\t\tmethod POST\n\t\tpath /login\n\t}",
			"\tuser_form username 3xx",
			"\t# on_expired redirect /login",
		},
		not: []string{"user_cookie", "passive"},
	},
	{
		// MediaWiki 1.39: the session cookie rotated at login, the user
		// name in a cookie, logout a POST after a confirmation page.
		name: "mediawiki", user: "Alice",
		steps: []step{
			{m: "GET", url: "/index.php?title=Special:UserLogin", status: 200, hdr: php, set: []string{"my_wiki_session=aaaabbbbccccddddeeeeffff00001111; path=/; HttpOnly"}},
			{m: "POST", url: "/index.php?title=Special:UserLogin&returnto=Main+Page", form: "wpName=Alice&wpPassword=alice-password&wpLoginToken=x%2B%5C&wploginattempt=Log+in", status: 302, loc: site + "/index.php/Main_Page", hdr: php, set: []string{
				"UseDC=master; expires=Thu, 01 Jan 2026 10:00:20 GMT; Max-Age=10; path=/; HttpOnly",
				"UseCDNCache=false; expires=Thu, 01 Jan 2026 10:00:20 GMT; Max-Age=10; path=/; HttpOnly",
				"my_wiki_session=11112222333344445555666677778888; path=/; HttpOnly",
				"my_wikiUserID=1; expires=Sat, 31 Jan 2026 10:00:00 GMT; Max-Age=2592000; path=/; HttpOnly",
				"my_wikiUserName=Alice; expires=Sat, 31 Jan 2026 10:00:00 GMT; Max-Age=2592000; path=/; HttpOnly",
			}},
			{m: "GET", url: "/index.php/Main_Page", status: 200, hdr: php},
			{m: "GET", url: "/index.php?title=Special:Preferences", status: 200, hdr: php},
			{m: "GET", url: "/index.php?title=Special:UserLogout&returnto=Main+Page", status: 200, hdr: php},
			{m: "POST", url: "/index.php?title=Special:UserLogout&returnto=Main+Page", form: "wpEditToken=abc%2B%5C&title=Special%3AUserLogout", status: 200, hdr: php, set: []string{
				"my_wiki_session=deleted; " + past + "; Max-Age=0; path=/; HttpOnly",
				"my_wikiUserID=deleted; " + past + "; Max-Age=0; path=/; HttpOnly",
				"my_wikiToken=deleted; " + past + "; Max-Age=0; path=/; HttpOnly",
			}},
		},
		want: []string{
			"\tcookie my_wiki_session",
			"\tcookie_parser php",
			"\tlogout {\n\t\tmethod POST\n\t\tpath /index.php\n\t\tquery title=Special:UserLogout\n\t}",
			"\tuser_cookie my_wikiUserName\n",
			"\t# on_expired redirect /index.php?title=Special:UserLogin",
		},
		not: []string{"cookie UseDC", "user_form", "passive"},
	},
	{
		// DokuWiki 2022-07: the PHP session from the first visit, kept at
		// login; DW<md5> set at login and deleted by every anonymous page;
		// logout by a query action.
		name: "dokuwiki", user: "alice",
		steps: []step{
			{m: "GET", url: "/doku.php?id=start&do=login", status: 200, hdr: php, set: []string{
				"DokuWiki=sess0123456789abcdefsess; path=/; HttpOnly",
				"DW" + dwHash + "=deleted; " + past + "; Max-Age=0; path=/; HttpOnly",
			}},
			{m: "POST", url: "/doku.php?id=start&do=login", form: "sectok=0123abcd&id=start&do=login&u=alice&p=alice-password", status: 302, loc: site + "/doku.php?id=start", hdr: php, set: []string{
				"DW" + dwHash + "=YWxpY2U%3D%7C0%7Cc2VjcmV0; path=/; HttpOnly",
			}},
			{m: "GET", url: "/doku.php?id=start", status: 200, hdr: php},
			{m: "GET", url: "/doku.php?id=playground", status: 200, hdr: php},
			{m: "GET", url: "/doku.php?id=start&do=logout&sectok=0123456789abcdef0123456789abcdef", status: 302, loc: site + "/doku.php?id=start&do=login", hdr: php, set: []string{
				"DW" + dwHash + "=deleted; " + past + "; Max-Age=0; path=/; HttpOnly",
				"DokuWiki=sess0123456789abcdefsess; path=/; HttpOnly",
			}},
		},
		want: []string{
			"\tcookie DW*",
			"\tcookie_parser php",
			"\tlogout {\n\t\tpath /doku.php\n\t\tquery do=logout\n\t}",
			"\tlogin {\n\t\tmethod POST\n\t\tpath /doku.php\n\t}",
			"\tuser_form u 3xx",
			"\t# on_expired redirect /doku.php?do=login",
			"\t# clear_cookies DokuWiki",
		},
		not: []string{"user_cookie", "passive", "dwHash"},
	},
}

// What a real browser adds to a page view: its stylesheets, scripts and
// images, fetched after the page (no navigation).
func withSubresources(steps []step) []step {
	var out []step
	for _, s := range steps {
		out = append(out, s)
		if s.m == "GET" && s.status == 200 && !s.xhr {
			out = append(out,
				step{m: "GET", url: "/lib/exe/css.php?t=dokuwiki", status: 200, sub: true, wait: 50 * time.Millisecond},
				step{m: "GET", url: "/lib/images/external-link.svg", status: 200, sub: true, wait: 50 * time.Millisecond})
		}
	}
	return out
}

func TestSuggestApps(t *testing.T) {
	var cases = append([]struct {
		name, user string
		steps      []step
		want       []string
		not        []string
	}(nil), appCases...)
	for _, c := range appCases {
		c.name += "_in_a_browser"
		c.steps = withSubresources(c.steps)
		cases = append(cases, c)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := Render(Suggest(play(t, c.user, c.steps)), "http://127.0.0.1:8080")
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("suggestion lacks %q:\n%s", w, out)
				}
			}
			for _, n := range c.not {
				if strings.Contains(out, n) {
					t.Errorf("suggestion has %q:\n%s", n, out)
				}
			}
			if strings.Contains(out, "# NOTE:") {
				t.Errorf("suggestion has a note:\n%s", out)
			}
		})
	}
}

// No cookie value, nor a part of it, is kept or printed.
func TestNoCookieValues(t *testing.T) {
	for _, c := range appCases {
		ex := play(t, c.user, c.steps)
		out := Render(Suggest(ex), "http://127.0.0.1:8080")
		dump := out
		for _, e := range ex {
			for _, rc := range e.Cookies {
				dump += " " + rc.ValueID
			}
		}
		for _, s := range c.steps {
			for _, l := range s.set {
				v := strings.SplitN(strings.SplitN(l, ";", 2)[0], "=", 2)[1]
				if len(v) < 6 || v == "deleted" {
					continue
				}
				if strings.Contains(dump, v) {
					t.Errorf("%s: the value of %q is in the suggestion or the record", c.name, l)
				}
			}
		}
	}
}

func TestPattern(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"wordpress_logged_in_" + wpHash, "wordpress_logged_in_*"},
		{"DW" + dwHash, "DW*"},
		{"my_wiki_session", "my_wiki_session"},
		{"Redmine", "Redmine"},
		{wpHash, wpHash},                               // a hash alone: no prefix to match by
		{"sess_" + wpHash[:20], "sess_" + wpHash[:20]}, // too short for a site hash
		{"x" + wpHash + wpHash[:8], "x*"},              // sha1-long
	} {
		if got := Pattern(c.in); got != c.want {
			t.Errorf("Pattern(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// Polling without a script header: the same request, no navigation, at a
// regular interval, is passive; irregular ones are not.
func TestPassiveByInterval(t *testing.T) {
	login := []step{
		{m: "GET", url: "/login", status: 200},
		{m: "POST", url: "/login", form: "user=alice&pw=x", status: 303, loc: "/", set: []string{"sid=abcdef; Path=/"}},
	}
	poll := func(waits ...time.Duration) []step {
		s := append([]step(nil), login...)
		for _, w := range waits {
			s = append(s, step{m: "GET", url: "/api/notifications?mode=count&since=1700000000", xhr: false, wait: w, status: 200})
		}
		for i := range s[2:] {
			s[2+i].xhr = false
		}
		return s
	}
	regularSteps := poll(30*time.Second, 30*time.Second, 31*time.Second, 29*time.Second)
	for i := range regularSteps[2:] {
		regularSteps[2+i].hdr = nil
	}
	cases := []struct {
		name  string
		steps []step
		want  bool
	}{
		{"regular", regularSteps, true},
		{"irregular", poll(5*time.Second, 40*time.Second, 2*time.Second), false},
		{"twice", poll(30*time.Second, 30*time.Second), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// no navigation: a script's fetch without X-Requested-With
			ex := play(t, "alice", c.steps)
			for i := 2; i < len(ex); i++ {
				ex[i].Navigation = false
				ex[i].XRequestedWith = ""
			}
			s := Suggest(ex)
			got := len(s.Passive) == 1 && s.Passive[0].Match.Path == "/api/notifications" &&
				len(s.Passive[0].Match.Query) == 1 && s.Passive[0].Match.Query[0] == "mode=count"
			if got != c.want {
				t.Errorf("passive = %+v, want found %v", s.Passive, c.want)
			}
		})
	}
}

// A failed login (the form again, no new cookie) is not taken for the
// login, and the user source comes from the accepted one.
func TestFailedLoginFirst(t *testing.T) {
	ex := play(t, "alice", []step{
		{m: "GET", url: "/login", status: 200, set: []string{"sid=anon1; Path=/"}},
		{m: "POST", url: "/login", form: "username=alice&password=wrong", status: 200, set: []string{"sid=anon2; Path=/"}},
		{m: "POST", url: "/login", form: "username=alice&password=right", status: 302, loc: "/home", set: []string{"sid=user1; Path=/", "remember=tok; Path=/; Max-Age=86400"}},
		{m: "GET", url: "/home", status: 200},
		{m: "POST", url: "/signout", status: 302, loc: "/", set: []string{"remember=; Path=/; Max-Age=0", "sid=anon3; Path=/"}},
	})
	s := Suggest(ex)
	if s.Login != 2 {
		t.Fatalf("login = exchange %d, want 2 (the accepted one)", s.Login)
	}
	if s.Cookie != "sid" || s.UserForm != "username" || s.UserFormStatus != "3xx" {
		t.Errorf("cookie %q, user_form %q %q", s.Cookie, s.UserForm, s.UserFormStatus)
	}
	if s.Logout == nil || s.Logout.Path != "/signout" || s.Logout.Method != "POST" {
		t.Errorf("logout = %+v", s.Logout)
	}
}

// Without a login, the block says so instead of guessing.
func TestNoLogin(t *testing.T) {
	out := Render(Suggest(play(t, "", []step{{m: "GET", url: "/", status: 200}})), "http://x")
	if !strings.Contains(out, "# NOTE: no login seen") {
		t.Errorf("no note about the missing login:\n%s", out)
	}
}

// Redmine signed in without "stay logged in": its logout deletes nothing
// (it re-sets the session cookie, anonymous) — the request that names a
// logout is taken, and the comment says it was by name.
func TestLogoutByName(t *testing.T) {
	ex := play(t, "alice", []step{
		{m: "GET", url: "/login", status: 200, set: []string{"Redmine=" + railsV + "; path=/"}},
		{m: "POST", url: "/login", form: "username=alice&password=x", status: 302, loc: "/my/page", set: []string{"Redmine=" + railsV2 + "; path=/"}},
		{m: "GET", url: "/my/page", status: 200, set: []string{"Redmine=" + railsV + "a; path=/"}},
		{m: "POST", url: "/logout", form: "_method=post", status: 302, loc: "/", set: []string{"Redmine=" + railsV + "b; path=/"}},
	})
	s := Suggest(ex)
	if s.Logout == nil || s.Logout.Method != "POST" || s.Logout.Path != "/logout" || !strings.Contains(s.LogoutWhy, "names a logout") {
		t.Errorf("logout = %+v (%s)", s.Logout, s.LogoutWhy)
	}
	if s.Cookie != "Redmine" || s.Parser != "rails" {
		t.Errorf("cookie %q parser %q", s.Cookie, s.Parser)
	}
}
