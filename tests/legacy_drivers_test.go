package tests

// How each third-party app is used by a person: its login form with its
// CSRF token, its own signed-in page, an ordinary CSRF-protected form, its
// logout link. Each works through any base URL (the app, or idlegate).

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// LegacyDriver is what the tests know about one app.
type LegacyDriver struct {
	Spec      LegacySpec
	Protected string // an app path only a signed-in user sees
	// LoginUser is the name the login form takes for a test user.
	LoginUser func(user string) string
	// Login posts the app's own login form (fetched first, for its token)
	// and returns the login POST's response, not followed.
	Login func(t testing.TB, b *Browser, user, password string, remember bool) *Page
	// LoggedIn reports whether the login POST's response is the app's
	// acceptance (a redirect away from the form).
	LoggedIn func(p *Page) bool
	// Whoami is the user the page shows as signed in ("" when signed out).
	Whoami func(p *Page) string
	// SignedOut reports whether p is the app's own page for a signed-out
	// visitor (its login form, or a page without a user).
	SignedOut func(p *Page) bool
	// Form submits an ordinary CSRF-protected form with text and returns
	// the response (followed); Check then reads the text back.
	Form  func(t testing.TB, b *Browser, text string) *Page
	Check func(t testing.TB, b *Browser, text string) bool
	// Logout follows the app's own logout link/form from a signed-in page
	// and returns the logout request's response (not followed).
	Logout func(t testing.TB, b *Browser) *Page
}

const (
	alicePassword = "alice-password"
	bobPassword   = "bob-password"
)

var legacyPasswords = map[string]string{"alice": alicePassword, "bob": bobPassword}

func md5hex(s string) string {
	h := md5.Sum([]byte(s))
	return hex.EncodeToString(h[:])
}

// WordPressCookieHash is WordPress's COOKIEHASH: md5 of the site URL
// (here the URL the browser uses, since WP_SITEURL follows the Host).
func WordPressCookieHash(site string) string { return md5hex(strings.TrimRight(site, "/")) }

// DokuWikiCookie is DokuWiki's auth cookie name: "DW" + md5(DOKU_REL +
// SERVER_PORT) with securecookie on (the default) — the port the PHP
// server listens on, i.e. the app's port, not the proxy's.
func DokuWikiCookie(prefix string, appPort int) string {
	return "DW" + md5hex(prefix+"/"+strconv.Itoa(appPort))
}

func pagePath(p *Page) string { return p.URL.Path }

// ---------------------------------------------------------------- WordPress

var (
	reWPProfileUser = regexp.MustCompile(`id="user_login" value="([^"]+)"`)
	reWPLogout      = regexp.MustCompile(`href="([^"]*wp-login\.php\?action=logout[^"]*)"`)
)

var wordpressDriver = LegacyDriver{
	Spec: LegacySpec{Name: "wordpress", Dir: "wordpress", Packages: []string{"wordpress", "mariadb-server"},
		Ready: "/wp-login.php"},
	Protected: "/wp-admin/profile.php",
	LoginUser: func(u string) string { return u },
	Login: func(t testing.TB, b *Browser, user, pw string, remember bool) *Page {
		t.Helper()
		p := b.Get(t, "/wp-login.php") // sets wordpress_test_cookie, which the POST must carry
		f, err := FindForm(p.Text(), `id="loginform"`)
		if err != nil {
			t.Fatalf("wordpress login page: %v: %s", err, describe(p.Response))
		}
		set := url.Values{"log": {user}, "pwd": {pw}, "wp-submit": {"Log In"}}
		if remember {
			set.Set("rememberme", "forever")
		}
		return b.Submit(t, p, f, set)
	},
	LoggedIn: func(p *Page) bool {
		return p.StatusCode == 302 && strings.Contains(p.Location(), "/wp-admin/")
	},
	Whoami: func(p *Page) string {
		if p.StatusCode != 200 || pagePath(p) == "/wp-login.php" {
			return ""
		}
		return firstMatch(reWPProfileUser, p.Text())
	},
	SignedOut: func(p *Page) bool {
		return p.StatusCode == 200 && pagePath(p) == "/wp-login.php" && strings.Contains(p.Text(), `id="loginform"`)
	},
	Form: func(t testing.TB, b *Browser, text string) *Page {
		t.Helper()
		// The dashboard's Quick Draft: a nonce-protected post to wp-admin/post.php.
		p := b.Get(t, "/wp-admin/index.php")
		f, err := FindForm(p.Text(), `id="quick-press"`)
		if err != nil {
			t.Fatalf("wordpress dashboard: %v: %s", err, describe(p.Response))
		}
		if f.Fields.Get("_wpnonce") == "" {
			t.Fatalf("quick draft form has no _wpnonce: %v", f.Fields)
		}
		return b.Follow(t, b.Submit(t, p, f, url.Values{"post_title": {text}, "content": {"draft " + text}}))
	},
	Check: func(t testing.TB, b *Browser, text string) bool {
		t.Helper()
		p := b.Get(t, "/wp-admin/edit.php?post_status=draft&post_type=post")
		return p.StatusCode == 200 && strings.Contains(p.Text(), text)
	},
	Logout: func(t testing.TB, b *Browser) *Page {
		t.Helper()
		p := b.Get(t, "/wp-admin/profile.php")
		link := firstMatch(reWPLogout, p.Text())
		if link == "" {
			t.Fatalf("wordpress: no logout link on the profile page: %s", describe(p.Response))
		}
		return b.Get(t, link)
	},
}

// ---------------------------------------------------------------- Redmine

var (
	reRedmineUser = regexp.MustCompile(`Logged in as <a class="user active" href="/users/\d+">([^<]+)</a>`)
	reCSRFMeta    = regexp.MustCompile(`<meta name="csrf-token" content="([^"]+)"`)
)

var redmineDriver = LegacyDriver{
	Spec:      LegacySpec{Name: "redmine", Dir: "redmine", Packages: []string{"redmine", "redmine-sqlite", "ruby-webrick"}, Ready: "/login"},
	Protected: "/my/account",
	LoginUser: func(u string) string { return u },
	Login: func(t testing.TB, b *Browser, user, pw string, remember bool) *Page {
		t.Helper()
		p := b.Get(t, "/login")
		f, err := FindForm(p.Text(), `action="/login"`)
		if err != nil {
			t.Fatalf("redmine login page: %v: %s", err, describe(p.Response))
		}
		if f.Fields.Get("authenticity_token") == "" {
			t.Fatalf("redmine login form has no authenticity_token: %v", f.Fields)
		}
		set := url.Values{"username": {user}, "password": {pw}, "login": {"Login"}}
		if remember {
			set.Set("autologin", "1")
		}
		return b.Submit(t, p, f, set)
	},
	LoggedIn: func(p *Page) bool {
		return p.StatusCode == 302 && !strings.Contains(p.Location(), "/login")
	},
	Whoami: func(p *Page) string {
		if p.StatusCode != 200 {
			return ""
		}
		return firstMatch(reRedmineUser, p.Text())
	},
	SignedOut: func(p *Page) bool {
		return p.StatusCode == 200 && pagePath(p) == "/login" && strings.Contains(p.Text(), `name="password"`)
	},
	Form: func(t testing.TB, b *Browser, text string) *Page {
		t.Helper()
		// My account: a PUT (Rails' _method) with authenticity_token.
		p := b.Get(t, "/my/account")
		f, err := FindForm(p.Text(), `id="my_account_form"`)
		if err != nil {
			t.Fatalf("redmine my/account: %v: %s", err, describe(p.Response))
		}
		return b.Follow(t, b.Submit(t, p, f, url.Values{"user[lastname]": {text}}))
	},
	Check: func(t testing.TB, b *Browser, text string) bool {
		t.Helper()
		p := b.Get(t, "/my/account")
		return p.StatusCode == 200 && strings.Contains(p.Text(), `value="`+text+`"`)
	},
	Logout: func(t testing.TB, b *Browser) *Page {
		t.Helper()
		// "Sign out" is <a data-method="post" href="/logout">: Rails UJS posts
		// it with the page's csrf-token.
		p := b.Get(t, "/my/page")
		tok := firstMatch(reCSRFMeta, p.Text())
		if tok == "" || !strings.Contains(p.Text(), `href="/logout"`) {
			t.Fatalf("redmine: no sign-out link or csrf-token on /my/page: %s", describe(p.Response))
		}
		return b.Post(t, "/logout", url.Values{"_method": {"post"}, "authenticity_token": {tok}})
	},
}

// ---------------------------------------------------------------- MediaWiki

var reMWUser = regexp.MustCompile(`"wgUserName":"([^"]+)"`)

var mediawikiDriver = LegacyDriver{
	Spec: LegacySpec{Name: "mediawiki", Dir: "mediawiki", Packages: []string{"mediawiki", "php-sqlite3"},
		Ready: "/index.php?title=Special:UserLogin"},
	Protected: "/index.php?title=Special:Preferences",
	LoginUser: func(u string) string { return strings.ToUpper(u[:1]) + u[1:] },
	Login: func(t testing.TB, b *Browser, user, pw string, remember bool) *Page {
		t.Helper()
		p := b.Get(t, "/index.php?title=Special:UserLogin")
		f, err := FindForm(p.Text(), `name="userlogin"`)
		if err != nil {
			t.Fatalf("mediawiki login page: %v: %s", err, mwError(p))
		}
		if f.Fields.Get("wpLoginToken") == "" {
			t.Fatalf("mediawiki login form has no wpLoginToken: %v", f.Fields)
		}
		set := url.Values{"wpName": {user}, "wpPassword": {pw}, "wploginattempt": {"Log in"}}
		if remember {
			set.Set("wpRemember", "1")
		}
		return b.Submit(t, p, f, set)
	},
	LoggedIn: func(p *Page) bool {
		return p.StatusCode == 302 && !strings.Contains(p.Location(), "UserLogin")
	},
	Whoami: func(p *Page) string {
		if p.StatusCode != 200 {
			return ""
		}
		return firstMatch(reMWUser, p.Text())
	},
	SignedOut: func(p *Page) bool {
		return p.StatusCode == 200 && strings.Contains(p.Text(), `"wgUserName":null`)
	},
	Form: func(t testing.TB, b *Browser, text string) *Page {
		t.Helper()
		// Editing a page: wpEditToken is the CSRF token.
		p := b.Get(t, "/index.php?title=Sandbox&action=edit")
		f, err := FindForm(p.Text(), `id="editform"`)
		if err != nil {
			t.Fatalf("mediawiki edit page: %v: %s", err, describe(p.Response))
		}
		if tok := f.Fields.Get("wpEditToken"); tok == "" || tok == `+\` {
			t.Fatalf("mediawiki edit form has no user's wpEditToken: %q", tok)
		}
		return b.Follow(t, b.Submit(t, p, f, url.Values{"wpTextbox1": {text}, "wpSummary": {"test"}, "wpSave": {"Save page"}}))
	},
	Check: func(t testing.TB, b *Browser, text string) bool {
		t.Helper()
		p := b.Get(t, "/index.php?title=Sandbox&action=raw")
		return p.StatusCode == 200 && strings.Contains(p.Text(), text)
	},
	Logout: func(t testing.TB, b *Browser) *Page {
		t.Helper()
		// MediaWiki 1.39's logout is a POST with wpEditToken (the link leads
		// to a confirmation form when JavaScript does not do it).
		p := b.Get(t, "/index.php?title=Special:UserLogout&returnto=Main+Page")
		f, err := FindForm(p.Text(), `Special:UserLogout`)
		if err != nil {
			t.Fatalf("mediawiki logout page: %v: %s", err, describe(p.Response))
		}
		return b.Submit(t, p, f, nil)
	},
}

// ---------------------------------------------------------------- DokuWiki

var (
	reDWUser   = regexp.MustCompile(`Logged in as: <bdi>[^<]*</bdi> \(<bdi>([^<]+)</bdi>\)`)
	reDWLogout = regexp.MustCompile(`href="([^"]*do=logout[^"]*)"`)
)

func dokuwikiDriver(prefix string) LegacyDriver {
	name := "dokuwiki"
	env := map[string]string{}
	if prefix != "" {
		name = "dokuwiki_subpath"
		env["DOKU_TEST_BASE"] = prefix + "/"
	}
	return LegacyDriver{
		Spec: LegacySpec{Name: name, Dir: "dokuwiki", Packages: []string{"dokuwiki"}, Env: env, Prefix: prefix,
			Ready: "/doku.php"},
		Protected: prefix + "/doku.php?id=start",
		LoginUser: func(u string) string { return u },
		Login: func(t testing.TB, b *Browser, user, pw string, remember bool) *Page {
			t.Helper()
			p := b.Get(t, prefix+"/doku.php?id=start&do=login")
			f, err := FindForm(p.Text(), `id="dw__login"`)
			if err != nil {
				t.Fatalf("dokuwiki login page: %v: %s", err, describe(p.Response))
			}
			set := url.Values{"u": {user}, "p": {pw}}
			if remember {
				set.Set("r", "1")
			}
			return b.Submit(t, p, f, set)
		},
		LoggedIn: func(p *Page) bool {
			return p.StatusCode == 302 && !strings.Contains(p.Location(), "do=login")
		},
		Whoami: func(p *Page) string {
			if p.StatusCode != 200 {
				return ""
			}
			return firstMatch(reDWUser, p.Text())
		},
		SignedOut: func(p *Page) bool {
			return p.StatusCode == 200 && strings.Contains(p.Text(), `do=login`) && !strings.Contains(p.Text(), "Logged in as")
		},
		Form: func(t testing.TB, b *Browser, text string) *Page {
			t.Helper()
			// Editing a page: sectok is the CSRF token.
			p := b.Get(t, prefix+"/doku.php?id=playground&do=edit")
			f, err := FindForm(p.Text(), `id="dw__editform"`)
			if err != nil {
				t.Fatalf("dokuwiki edit page: %v: %s", err, describe(p.Response))
			}
			if f.Fields.Get("sectok") == "" {
				t.Fatalf("dokuwiki edit form has no sectok: %v", f.Fields)
			}
			return b.Follow(t, b.Submit(t, p, f, url.Values{"wikitext": {text}, "summary": {"test"}, "do[save]": {"1"}}))
		},
		Check: func(t testing.TB, b *Browser, text string) bool {
			t.Helper()
			p := b.Get(t, prefix+"/doku.php?id=playground&do=export_raw")
			return p.StatusCode == 200 && strings.Contains(p.Text(), text)
		},
		Logout: func(t testing.TB, b *Browser) *Page {
			t.Helper()
			p := b.Get(t, prefix+"/doku.php?id=start")
			link := firstMatch(reDWLogout, p.Text())
			if link == "" {
				t.Fatalf("dokuwiki: no logout link: %s", describe(p.Response))
			}
			return b.Get(t, link)
		},
	}
}

// signIn logs user in through b and fails t unless the app accepted it and
// shows the user on its protected page.
func (d *LegacyDriver) signIn(t testing.TB, b *Browser, user string, remember bool) (*Page, time.Time) {
	t.Helper()
	at := time.Now()
	p := d.Login(t, b, d.LoginUser(user), legacyPasswords[user], remember)
	if !d.LoggedIn(p) {
		t.Fatalf("%s: login as %s not accepted: %s", d.Spec.Name, user, describe(p.Response))
	}
	b.Follow(t, p)
	if got := d.whoami(t, b); got != d.LoginUser(user) {
		t.Fatalf("%s: after login the app shows user %q, want %q", d.Spec.Name, got, d.LoginUser(user))
	}
	return p, at
}

// whoami visits the protected page (following redirects) and returns the
// signed-in user the app shows.
func (d *LegacyDriver) whoami(t testing.TB, b *Browser) string {
	t.Helper()
	return d.Whoami(b.Visit(t, d.Protected))
}

func (d *LegacyDriver) String() string { return fmt.Sprintf("%s app", d.Spec.Name) }

var reMWError = regexp.MustCompile(`(?s)<div class="mw-body-content">(.*?)</div>`)

// mwError is the error text of a MediaWiki error page, for failure messages.
func mwError(p *Page) string {
	if m := reMWError.FindStringSubmatch(p.Text()); m != nil {
		return fmt.Sprintf("%d: %s", p.StatusCode, regexp.MustCompile(`<[^>]+>`).ReplaceAllString(m[1], ""))
	}
	return describe(p.Response)
}
