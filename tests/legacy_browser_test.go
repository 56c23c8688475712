package tests

// One real browser per third-party app: Debian's Chromium signs in through
// the app's own form behind idlegate (on_expired redirect), goes idle, comes
// back, and must land on the app's own signed-out page with no cookie of the
// session left, with docs/apps.md's recipes (no clear_cookies). WordPress
// and DokuWiki under a sub-path failed at fa0dc65 (path-scoped cookies not
// cleared; a refusal loop).

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// legacyBrowserForm is how Chromium fills each app's login form.
var legacyBrowserForm = map[string]struct{ Login, UserField, PasswordField, Submit string }{
	"wordpress":        {"/wp-login.php", "log", "pwd", "#wp-submit"},
	"redmine":          {"/login", "username", "password", "#login-submit"},
	"mediawiki":        {"/index.php?title=Special:UserLogin", "wpName", "wpPassword", "#wpLoginAttempt"},
	"dokuwiki":         {"/doku.php?id=start&do=login", "u", "p", "#dw__login button[type=submit]"},
	"dokuwiki_subpath": {"/dokuwiki/doku.php?id=start&do=login", "u", "p", "#dw__login button[type=submit]"},
}

type browserCookie struct{ Name, Path, Value string }

// browserCookieNames is the cookies' names and paths, for logs (never their values).
func browserCookieNames(cs []browserCookie) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name+"@"+c.Path)
	}
	return out
}

type browserStep struct {
	Step     string          `json:"step"`
	URL      string          `json:"url"`
	HTML     string          `json:"html"`
	Statuses []int           `json:"statuses"`
	Error    string          `json:"error"`
	Cookies  []browserCookie `json:"cookies"`
}

func (st browserStep) page(t *testing.T) *Page {
	u, err := url.Parse(st.URL)
	if err != nil {
		t.Fatal(err)
	}
	return &Page{Response: &Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: []byte(st.HTML)}, URL: u}
}

// needBrowser skips t without the built Caddy, Chromium or playwright-core
// (tests/browser/setup.sh installs them) and returns Chromium's path and
// the absolute path of the browser script tests/browser/<script>.
func needBrowser(t *testing.T, script string) (chromium, path string) {
	t.Helper()
	needCaddy(t)
	chromium = "/usr/bin/chromium"
	if v := os.Getenv("CHROMIUM"); v != "" {
		chromium = v
	}
	path, _ = filepath.Abs(filepath.Join("browser", script))
	if _, err := os.Stat(filepath.Join("browser", "node_modules", "playwright-core", "package.json")); err != nil {
		t.Skip("playwright-core missing: run tests/browser/setup.sh")
	}
	if _, err := os.Stat(chromium); err != nil {
		t.Skipf("%s missing: run tests/browser/setup.sh", chromium)
	}
	return chromium, path
}

func TestLegacyBrowser(t *testing.T) {
	chromium, script := needBrowser(t, "legacy.mjs")
	for _, d := range []LegacyDriver{wordpressDriver, redmineDriver, mediawikiDriver, dokuwikiDriver(""), dokuwikiDriver("/dokuwiki")} {
		t.Run(d.Spec.Name, func(t *testing.T) { legacyBrowser(t, d, chromium, script) })
	}
}

func legacyBrowser(t *testing.T, d LegacyDriver, chromium, script string) {
	s := startLegacy(t, d)
	const mode = "redirect"
	zone, cookie := s.zone(mode), s.cookie(mode)
	f := legacyBrowserForm[d.Spec.Name]
	cfg, _ := json.Marshal(map[string]string{
		"base": s.Sites[mode], "login": f.Login, "user": d.LoginUser("alice"), "password": alicePassword,
		"userField": f.UserField, "passwordField": f.PasswordField, "submit": f.Submit, "protected": d.Protected,
	})
	cmd := exec.Command("node", script, string(cfg))
	cmd.Dir = filepath.Dir(script)
	cmd.Env = append(os.Environ(), "CHROMIUM="+chromium)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("node %s: %v", script, err)
	}
	t.Cleanup(func() {
		// node and the Chromium it launched share the group started here.
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
	})
	lines := make(chan browserStep)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			var st browserStep
			if json.Unmarshal(sc.Bytes(), &st) == nil {
				lines <- st
			}
		}
		close(lines)
	}()
	next := func(step string) browserStep {
		t.Helper()
		select {
		case st, ok := <-lines:
			if !ok {
				t.Fatalf("browser script ended before %q", step)
			}
			if st.Step != step {
				t.Fatalf("browser: want step %q, got %q", step, st.Step)
			}
			return st
		case <-time.After(90 * time.Second):
			t.Fatalf("browser: no %q within 90s", step)
		}
		return browserStep{}
	}
	before := len(s.ended(zone))
	in := next("signed_in")
	if u := d.Whoami(in.page(t)); u != d.LoginUser("alice") {
		t.Fatalf("Chromium after login at %s: the app shows user %q", in.URL, u)
	}
	t.Logf("signed in; cookies %v", browserCookieNames(in.Cookies))
	// The tab stays open and idle (its own scripts may poll): the session
	// must end by itself.
	s.waitEnded(t, zone, before, legacyIdle+40*time.Second)

	io.WriteString(stdin, "return\n")
	out := next("returned")
	t.Logf("returned to %s, navigation statuses %v, cookies %v", out.URL, out.Statuses, browserCookieNames(out.Cookies))
	if out.Error != "" {
		t.Fatalf("coming back after the idle timeout: %s (navigation statuses %v)", out.Error, out.Statuses)
	}
	p := out.page(t)
	if u := d.Whoami(p); u != "" {
		t.Errorf("coming back after the idle timeout, the app signs %q back in", u)
	}
	if !d.SignedOut(p) {
		t.Errorf("coming back after the idle timeout: not the app's signed-out page (%s)", out.URL)
	}
	left := map[string]bool{}
	for _, c := range in.Cookies {
		left[c.Name+" "+c.Path+" "+c.Value] = true
	}
	for _, c := range out.Cookies {
		if left[c.Name+" "+c.Path+" "+c.Value] && (c.Name == cookie || legacySessionCookie(d.Spec.Name, c.Name)) {
			t.Errorf("cookie %s (Path %s) of the ended session is still in the browser", c.Name, c.Path)
		}
	}
}

// legacySessionCookie reports whether name belongs to the app's signed-in
// session (docs/apps.md), as opposed to settings or test cookies.
func legacySessionCookie(app, name string) bool {
	switch app {
	case "wordpress":
		return strings.HasPrefix(name, "wordpress_") && name != "wordpress_test_cookie"
	case "redmine":
		return name == "Redmine" || name == "autologin"
	case "mediawiki":
		return name == "my_wiki_session" || name == "my_wikiUserID" || name == "my_wikiToken"
	default:
		return name == "DokuWiki" || strings.HasPrefix(name, "DW")
	}
}
