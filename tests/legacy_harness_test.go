package tests

// Issue #17: real third-party applications that cannot be changed —
// WordPress, Redmine, MediaWiki and DokuWiki from Debian's packages — and a
// browser-like client that drives their own login forms, CSRF tokens and
// logout links through any base URL (the app itself, or idlegate).

import (
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// legacyStartTimeout covers a first start that builds the app's template
// (Redmine's db:migrate, WordPress's mariadb-install-db + wp_install) on a
// loaded 2-core machine; later starts copy the template (Redmine ≈10 s of
// Rails boot, WordPress ≈3 s of MariaDB, the wikis well under 2 s).
const legacyStartTimeout = 150 * time.Second

// LegacySpec is one third-party application of tests/apps.
type LegacySpec struct {
	Name     string            // subtest and log name
	Dir      string            // tests/apps/<Dir>
	Packages []string          // Debian packages it needs
	Env      map[string]string // extra environment of its start script
	Prefix   string            // URL prefix the app is served under ("" or "/dokuwiki")
	Ready    string            // a path that answers 200 once the app is up
}

// LegacyApp is one running application, owned by one test.
type LegacyApp struct {
	LegacySpec
	URL   string // http://127.0.0.1:port
	Addr  string // 127.0.0.1:port
	Port  int
	State string
	cmd   *exec.Cmd
	done  chan struct{}
}

// needPackages skips t when one of the Debian packages is not installed,
// unless CI is set: there a missing package is a failure (.ci/run installs
// them through tests/apps/setup.sh).
func needPackages(t testing.TB, pkgs ...string) {
	t.Helper()
	var missing []string
	for _, p := range pkgs {
		out, err := exec.Command("dpkg-query", "-W", "-f=${Status}", p).Output()
		if err != nil || !strings.Contains(string(out), "install ok installed") {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("Debian packages missing in CI: %s (tests/apps/setup.sh installs them)", strings.Join(missing, " "))
	}
	t.Skipf("Debian packages not installed: %s (run tests/apps/setup.sh)", strings.Join(missing, " "))
}

// StartLegacyApp starts tests/apps/<Dir>/start on a free port with a fresh
// state directory and waits until Ready answers 200. It is stopped by its
// PID when t ends (lib/supervise takes its group down).
func StartLegacyApp(t testing.TB, spec LegacySpec) *LegacyApp {
	t.Helper()
	if testing.Short() {
		t.Skip("real third-party apps: skipped under -short")
	}
	needPackages(t, spec.Packages...)
	start, err := filepath.Abs(filepath.Join("apps", spec.Dir, "start"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	port := FreePort(t)
	a := &LegacyApp{LegacySpec: spec, Port: port, Addr: "127.0.0.1:" + strconv.Itoa(port), State: filepath.Join(dir, "state")}
	a.URL = "http://" + a.Addr
	if err := os.MkdirAll(a.State, 0o755); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(),
		"APP_STATE_DIR="+a.State,
		"IDLEGATE_APPS_CACHE="+filepath.Join(os.TempDir(), "idlegate-test-apps"),
	)
	for k, v := range spec.Env {
		env = append(env, k+"="+v)
	}
	logf, err := os.Create(filepath.Join(dir, "app.log"))
	if err != nil {
		t.Fatal(err)
	}
	a.cmd = exec.Command(start, strconv.Itoa(port))
	a.cmd.Env = env
	a.cmd.Stdout, a.cmd.Stderr = logf, logf
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	began := time.Now()
	if err := a.cmd.Start(); err != nil {
		t.Fatalf("%s: start: %v", spec.Name, err)
	}
	a.done = make(chan struct{})
	go func() { a.cmd.Wait(); close(a.done) }()
	t.Cleanup(func() {
		a.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-a.done:
		case <-time.After(15 * time.Second):
			a.cmd.Process.Kill()
			<-a.done
		}
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("%s app log (%s):\n%s", spec.Name, logf.Name(), tail(string(b), 40))
		}
		logf.Close()
	})
	c := NewClient(a.URL)
	deadline := time.Now().Add(legacyStartTimeout)
	for {
		select {
		case <-a.done:
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("%s app exited during start-up:\n%s", spec.Name, tail(string(b), 30))
		default:
		}
		if r, err := c.Try(http.MethodGet, spec.Prefix+spec.Ready); err == nil && r.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s app not answering GET %s after %s", spec.Name, spec.Ready, legacyStartTimeout)
		}
		time.Sleep(100 * time.Millisecond) // polling with a deadline
	}
	t.Logf("%s app up on %s in %s", spec.Name, a.Addr, time.Since(began).Round(10*time.Millisecond))
	return a
}

// Browser is a user agent with a real cookie jar (net/http/cookiejar, RFC
// 6265: Path and Domain are honoured, as in a browser), so a cookie set with
// Path=/wp-admin is sent to /wp-admin only and a clearing with the wrong
// Path does not remove it. It never follows redirects by itself; Visit
// follows them hop by hop. Every Set-Cookie line it receives is recorded.
type Browser struct {
	Base   string // site root, e.g. http://127.0.0.1:8080 (no prefix)
	Prefix string // the app's URL prefix ("" or "/dokuwiki")
	hc     *http.Client
	jar    *cookiejar.Jar

	mu  sync.Mutex
	log []CookieEvent
}

// CookieEvent is one Set-Cookie line a response carried.
type CookieEvent struct {
	Method, Path string
	Status       int
	Line         string
	Cookie       *http.Cookie
}

// NewBrowser returns a Browser for base with an empty jar.
func NewBrowser(base, prefix string) *Browser {
	jar, _ := cookiejar.New(nil)
	return &Browser{
		Base:   strings.TrimRight(base, "/"),
		Prefix: prefix,
		jar:    jar,
		hc: &http.Client{
			Timeout:       60 * time.Second,
			Jar:           nil, // applied by hand, so each hop is visible
			Transport:     &http.Transport{Proxy: nil, DisableKeepAlives: true},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

// URL is the absolute URL of an app path ("/wp-login.php") or of a URL the
// app produced (absolute, or relative to the site).
func (b *Browser) URL(ref string) string {
	if strings.HasPrefix(ref, "http://") || strings.HasPrefix(ref, "https://") {
		return ref
	}
	return b.Base + ref
}

// AppURL is the URL of path inside the app (prefixed).
func (b *Browser) AppURL(path string) string { return b.Base + b.Prefix + path }

// Page is a response with the URL it answers.
type Page struct {
	*Response
	URL *url.URL
}

// Body is the response body as a string.
func (p *Page) Text() string { return string(p.Body) }

// Location is the absolute URL of the redirect target ("" when none).
func (p *Page) Location() string {
	l := p.Header.Get("Location")
	if l == "" {
		return ""
	}
	u, err := p.URL.Parse(l)
	if err != nil {
		return l
	}
	return u.String()
}

// Do sends one request with the jar's cookies for its URL (plus extra
// request options) and stores the response's cookies.
func (b *Browser) Do(method, rawURL string, form url.Values, opts ...ReqOption) (*Page, error) {
	return b.do(method, rawURL, form, true, true, opts...)
}

// DoWithout sends one request with exactly the Cookie header the options
// give (none from the jar), and keeps the jar as it was: a replay.
func (b *Browser) DoWithout(method, rawURL string, opts ...ReqOption) (*Page, error) {
	return b.do(method, rawURL, nil, false, false, opts...)
}

func (b *Browser) do(method, rawURL string, form url.Values, useJar, keep bool, opts ...ReqOption) (*Page, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u.String(), body)
	if err != nil {
		return nil, err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) idlegate-legacy-test")
	if useJar {
		for _, c := range b.jar.Cookies(u) {
			req.AddCookie(c)
		}
	}
	for _, o := range opts {
		o(req)
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	p := &Page{Response: &Response{StatusCode: resp.StatusCode, Header: resp.Header, Body: data, At: time.Now()}, URL: u}
	b.mu.Lock()
	for _, c := range resp.Cookies() {
		b.log = append(b.log, CookieEvent{Method: method, Path: u.RequestURI(), Status: resp.StatusCode, Line: c.Raw, Cookie: c})
	}
	b.mu.Unlock()
	if keep {
		b.jar.SetCookies(u, resp.Cookies())
	}
	return p, nil
}

// Get is Do with GET that fails t on a transport error.
func (b *Browser) Get(t testing.TB, ref string, opts ...ReqOption) *Page {
	t.Helper()
	p, err := b.Do(http.MethodGet, b.URL(ref), nil, append([]ReqOption{Navigation()}, opts...)...)
	if err != nil {
		t.Fatalf("GET %s: %v", ref, err)
	}
	return p
}

// Post posts a form and fails t on a transport error.
func (b *Browser) Post(t testing.TB, ref string, form url.Values, opts ...ReqOption) *Page {
	t.Helper()
	p, err := b.Do(http.MethodPost, b.URL(ref), form, append([]ReqOption{Navigation()}, opts...)...)
	if err != nil {
		t.Fatalf("POST %s: %v", ref, err)
	}
	return p
}

// Follow follows p's redirects (GET, as a browser does after 302/303) and
// returns the last page.
func (b *Browser) Follow(t testing.TB, p *Page) *Page {
	t.Helper()
	for i := 0; i < 10 && p.StatusCode >= 300 && p.StatusCode < 400 && p.Location() != ""; i++ {
		p = b.Get(t, p.Location())
	}
	if p.StatusCode >= 300 && p.StatusCode < 400 {
		t.Fatalf("redirect loop: still %d to %s after 10 hops", p.StatusCode, p.Location())
	}
	return p
}

// Visit is Get and Follow.
func (b *Browser) Visit(t testing.TB, ref string) *Page {
	t.Helper()
	return b.Follow(t, b.Get(t, ref))
}

// Cookies are the jar's cookies for an app path (what a browser would send).
func (b *Browser) Cookies(path string) []*http.Cookie {
	u, _ := url.Parse(b.AppURL(path))
	return b.jar.Cookies(u)
}

// CookieHeader is the Cookie header the browser would send to an app path.
func (b *Browser) CookieHeader(path string) string {
	var parts []string
	for _, c := range b.Cookies(path) {
		parts = append(parts, c.Name+"="+c.Value)
	}
	return strings.Join(parts, "; ")
}

// CookieValue is the value of the jar's cookie name for path ("" if none).
func (b *Browser) CookieValue(path, name string) string {
	for _, c := range b.Cookies(path) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

// Log is every Set-Cookie line received so far, and a mark to pass to
// LogSince.
func (b *Browser) Log() []CookieEvent {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]CookieEvent(nil), b.log...)
}

// LogSince is the Set-Cookie lines received after mark (len of an earlier Log).
func (b *Browser) LogSince(mark int) []CookieEvent {
	l := b.Log()
	if mark > len(l) {
		return nil
	}
	return l[mark:]
}

// Form is one HTML form: where it posts and the fields a browser would send
// without the user touching it (hidden and prefilled inputs, checked boxes,
// selected options, textareas).
type Form struct {
	Action string
	Method string
	Fields url.Values
}

var (
	reForm     = regexp.MustCompile(`(?is)<form\b[^>]*>.*?</form>`)
	reFormOpen = regexp.MustCompile(`(?is)^<form\b[^>]*>`)
	reInput    = regexp.MustCompile(`(?is)<input\b[^>]*>`)
	reTextarea = regexp.MustCompile(`(?is)<textarea\b([^>]*)>(.*?)</textarea>`)
	reSelect   = regexp.MustCompile(`(?is)<select\b([^>]*)>(.*?)</select>`)
	reOption   = regexp.MustCompile(`(?is)<option\b[^>]*>`)
	reAttr     = regexp.MustCompile(`(?s)([a-zA-Z_:][-a-zA-Z0-9_:.]*)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>` + "`" + `]+)))?`)
)

func attrs(tag string) map[string]string {
	tag = strings.TrimSuffix(strings.TrimSuffix(strings.TrimPrefix(tag, "<"), ">"), "/")
	out := map[string]string{}
	for i, m := range reAttr.FindAllStringSubmatch(tag, -1) {
		if i == 0 {
			continue // the tag name
		}
		k := strings.ToLower(m[1])
		if _, dup := out[k]; dup {
			continue
		}
		out[k] = html.UnescapeString(m[2] + m[3] + m[4])
	}
	return out
}

// FindForm returns the first form of page whose opening tag contains marker
// (e.g. `id="dw__login"`, `name="userlogin"`).
func FindForm(page, marker string) (*Form, error) {
	for _, f := range reForm.FindAllString(page, -1) {
		open := reFormOpen.FindString(f)
		if !strings.Contains(open, marker) {
			continue
		}
		a := attrs(open)
		form := &Form{Action: a["action"], Method: strings.ToUpper(a["method"]), Fields: url.Values{}}
		if form.Method == "" {
			form.Method = http.MethodGet
		}
		for _, in := range reInput.FindAllString(f, -1) {
			ia := attrs(in)
			name, typ := ia["name"], strings.ToLower(ia["type"])
			if name == "" {
				continue
			}
			switch typ {
			case "submit", "button", "image", "reset", "file":
				continue
			case "checkbox", "radio":
				if _, on := ia["checked"]; !on {
					continue
				}
				if _, ok := ia["value"]; !ok {
					ia["value"] = "on"
				}
			}
			form.Fields.Add(name, ia["value"])
		}
		for _, m := range reTextarea.FindAllStringSubmatch(f, -1) {
			if name := attrs("<textarea " + m[1] + ">")["name"]; name != "" {
				form.Fields.Add(name, html.UnescapeString(strings.TrimPrefix(m[2], "\n")))
			}
		}
		for _, m := range reSelect.FindAllStringSubmatch(f, -1) {
			name := attrs("<select " + m[1] + ">")["name"]
			if name == "" {
				continue
			}
			opts := reOption.FindAllString(m[2], -1)
			for i, o := range opts {
				oa := attrs(o)
				if _, sel := oa["selected"]; sel || i == len(opts)-1 && !strings.Contains(m[2], "selected") {
					form.Fields.Add(name, oa["value"])
					break
				}
			}
		}
		return form, nil
	}
	return nil, fmt.Errorf("no form with %q in the page", marker)
}

// Submit posts (or gets) the form with its fields, overridden by set.
func (b *Browser) Submit(t testing.TB, from *Page, f *Form, set url.Values) *Page {
	t.Helper()
	vals := url.Values{}
	for k, v := range f.Fields {
		vals[k] = append([]string(nil), v...)
	}
	for k, v := range set {
		vals[k] = v
	}
	action := f.Action
	if action == "" {
		action = from.URL.String()
	}
	u, err := from.URL.Parse(action)
	if err != nil {
		t.Fatalf("form action %q: %v", action, err)
	}
	if f.Method == http.MethodGet {
		q := u.Query()
		for k, v := range vals {
			q[k] = v
		}
		u.RawQuery = q.Encode()
		return b.Get(t, u.String())
	}
	return b.Post(t, u.String(), vals)
}

// firstMatch is the first submatch of re in s, HTML-unescaped ("" if none).
func firstMatch(re *regexp.Regexp, s string) string {
	m := re.FindStringSubmatch(s)
	if m == nil {
		return ""
	}
	return html.UnescapeString(m[1])
}

var errSignedOut = errors.New("signed out")
