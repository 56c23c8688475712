package tests

// The real applications of tests/apps behind idlegate: starting one, reading
// what its own webhook receiver recorded, and a cookie-jar user agent that
// signs in through Caddy the way a browser does.

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// appStartTimeout covers Django's imports and Laravel's migrate on a loaded
// 2-core machine (tests/apps/README.md: well under 5 s, about double loaded).
const appStartTimeout = 40 * time.Second

// Framework describes one application of tests/apps and how idlegate is
// configured in front of it.
type Framework struct {
	Name       string // subtest name
	Dir        string // tests/apps/<Dir>
	Cookie     string // the app's session cookie
	LaravelKey bool   // configure laravel_key with the app's APP_KEY
}

// App is one running application, owned by one test.
type App struct {
	Framework
	URL    string // http://127.0.0.1:port
	Addr   string // 127.0.0.1:port
	State  string // APP_STATE_DIR
	AppKey string // Laravel's APP_KEY
	cmd    *exec.Cmd
	done   chan struct{}
	log    *os.File
}

// StartApp starts tests/apps/<fw.Dir>/start on a free port with a fresh
// state directory and waits until GET /login answers 200. The process is
// stopped by its PID when t ends (lib/supervise takes its group down).
func StartApp(t testing.TB, fw Framework) *App {
	t.Helper()
	start, err := filepath.Abs(filepath.Join("apps", fw.Dir, "start"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(start); err != nil {
		t.Fatalf("%s: %v", fw.Name, err)
	}
	dir := t.TempDir()
	port := FreePort(t)
	a := &App{Framework: fw, Addr: "127.0.0.1:" + strconv.Itoa(port), State: filepath.Join(dir, "state")}
	a.URL = "http://" + a.Addr
	if err := os.MkdirAll(a.State, 0o755); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(),
		"APP_STATE_DIR="+a.State,
		"IDLEGATE_WEBHOOK_SECRET="+TestSecret,
		"IDLEGATE_APPS_CACHE="+filepath.Join(os.TempDir(), "idlegate-test-apps"),
	)
	if fw.Dir == "laravel" || fw.LaravelKey {
		key := make([]byte, 32)
		rand.Read(key)
		a.AppKey = "base64:" + base64.StdEncoding.EncodeToString(key)
		env = append(env, "APP_KEY="+a.AppKey)
	}
	log, err := os.Create(filepath.Join(dir, "app.log"))
	if err != nil {
		t.Fatal(err)
	}
	a.log = log
	a.cmd = exec.Command(start, strconv.Itoa(port))
	a.cmd.Env = env
	a.cmd.Stdout, a.cmd.Stderr = log, log
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	began := time.Now()
	if err := a.cmd.Start(); err != nil {
		t.Fatalf("%s: start: %v", fw.Name, err)
	}
	a.done = make(chan struct{})
	go func() { a.cmd.Wait(); close(a.done) }()
	t.Cleanup(func() {
		a.stop()
		if t.Failed() {
			b, _ := os.ReadFile(log.Name())
			t.Logf("%s app log (%s):\n%s", fw.Name, log.Name(), tail(string(b), 40))
		}
		log.Close()
	})

	c := NewClient(a.URL)
	deadline := time.Now().Add(appStartTimeout)
	for {
		select {
		case <-a.done:
			b, _ := os.ReadFile(log.Name())
			t.Fatalf("%s app exited during start-up:\n%s", fw.Name, tail(string(b), 30))
		default:
		}
		if r, err := c.Try(http.MethodGet, "/login"); err == nil && r.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s app not answering GET /login after %s", fw.Name, appStartTimeout)
		}
		time.Sleep(100 * time.Millisecond) // polling with a deadline
	}
	t.Logf("%s app up on %s in %s", fw.Name, a.Addr, time.Since(began).Round(10*time.Millisecond))
	return a
}

// stop sends SIGTERM to the PID the test started (supervise stops the
// server's group), then SIGKILL if it lingers.
func (a *App) stop() {
	if a.cmd == nil || a.cmd.Process == nil {
		return
	}
	a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
	case <-time.After(10 * time.Second):
		a.cmd.Process.Kill()
		<-a.done
	}
}

// AppEvent is one event as the application's receiver recorded it, after
// verifying its signature.
type AppEvent struct {
	ID   string      `json:"id"`
	Type string      `json:"type"`
	Data SessionData `json:"data"`
}

// AppUser is one row of GET /idlegate/users.
type AppUser struct {
	ID            string  `json:"id"`
	Username      string  `json:"username"`
	LastLogoutAt  *string `json:"last_logout_at"`
	OnlineSeconds int64   `json:"online_seconds"`
}

// Events are the verified, de-duplicated events the app has recorded.
func (a *App) Events(t testing.TB) []AppEvent {
	t.Helper()
	r := NewClient(a.URL).Get(t, "/idlegate/events")
	if r.StatusCode != http.StatusOK {
		t.Fatalf("%s GET /idlegate/events: %s", a.Name, r)
	}
	var evs []AppEvent
	r.JSON(t, &evs)
	return evs
}

// Users is GET /idlegate/users.
func (a *App) Users(t testing.TB) map[string]AppUser {
	t.Helper()
	r := NewClient(a.URL).Get(t, "/idlegate/users")
	if r.StatusCode != http.StatusOK {
		t.Fatalf("%s GET /idlegate/users: %s", a.Name, r)
	}
	var users map[string]AppUser
	r.JSON(t, &users)
	return users
}

// Agent is a user agent with a cookie jar, talking to the site through
// Caddy. Like a browser it stores every Set-Cookie and drops deleted cookies;
// unlike one it never follows redirects, so each hop can be checked.
type Agent struct {
	c *Client

	mu    sync.Mutex
	jar   map[string]string
	sent  map[*Response]time.Time
	trace []traceEntry
}

// traceEntry is one exchange of an Agent, for explaining a failure: what
// was sent, when, and what came back.
type traceEntry struct {
	sent         time.Time
	method, path string
	cookie       string // the Cookie header sent
	r            *Response
	kept         bool // the jar took the response's cookies
}

// NewAgent returns an Agent with an empty jar.
func NewAgent(base string) *Agent {
	return &Agent{c: NewClient(base), jar: map[string]string{}, sent: map[*Response]time.Time{}}
}

// Sent is when the request that r answers was sent. idlegate counts
// activity when a request arrives, so a slow response (Django hashing the
// password at login on a loaded machine) must not shift the expected times.
func (a *Agent) Sent(r *Response) time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.sent[r]
}

// Cookie is the jar's value of name ("" when absent).
func (a *Agent) Cookie(name string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.jar[name]
}

// SetCookie puts name=value into the jar (e.g. a remember-me cookie).
func (a *Agent) SetCookie(name, value string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.jar[name] = value
}

func (a *Agent) cookieHeader() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	parts := make([]string, 0, len(a.jar))
	for k, v := range a.jar {
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, "; ")
}

// store applies the response's Set-Cookie lines to the jar, in order.
func (a *Agent) store(r *Response) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, line := range r.Header.Values("Set-Cookie") {
		c, err := http.ParseSetCookie(line)
		if err != nil {
			continue
		}
		if jarDrops(c) {
			delete(a.jar, c.Name)
			continue
		}
		a.jar[c.Name] = c.Value
	}
}

// jarDrops reports whether a browser's jar drops cookie c when a response
// sets it: deleted (Max-Age or Expires in the past) or emptied.
func jarDrops(c *http.Cookie) bool {
	return c.MaxAge < 0 || (!c.Expires.IsZero() && c.Expires.Before(time.Now())) || c.Value == ""
}

// Send sends a request with the jar's cookies (a form body when form is not
// nil) and stores the response's cookies.
func (a *Agent) Send(method, path string, form url.Values, opts ...ReqOption) (*Response, error) {
	return a.send(method, path, form, a.cookieHeader(), true, opts...)
}

// SendWith sends a request with exactly the Cookie header given, as a
// request already in flight with an older cookie would, and leaves the jar
// alone unless keep is set.
func (a *Agent) SendWith(cookie, method, path string, keep bool, opts ...ReqOption) (*Response, error) {
	return a.send(method, path, nil, cookie, keep, opts...)
}

func (a *Agent) send(method, path string, form url.Values, cookie string, keep bool, opts ...ReqOption) (*Response, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, a.c.Base+path, body)
	if err != nil {
		return nil, err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	for _, o := range opts {
		o(req)
	}
	sent := wallNow()
	resp, err := a.c.HC.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	r := &Response{StatusCode: resp.StatusCode, Header: resp.Header, Body: b, At: wallNow()}
	a.mu.Lock()
	a.sent[r] = sent
	a.trace = append(a.trace, traceEntry{sent: sent, method: method, path: path, cookie: cookie, r: r, kept: keep})
	a.mu.Unlock()
	if keep {
		a.store(r)
	}
	return r, nil
}

// Trace describes the agent's exchanges, in the order they were answered,
// with times relative to since and the session cookie's values through
// show (e.g. decrypted, and shortened).
func (a *Agent) Trace(since time.Time, cookie string, show func(string) string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var b strings.Builder
	rel := func(t time.Time) string { return t.Sub(since).Round(time.Millisecond).String() }
	for _, e := range a.trace {
		sent := "-"
		cs, _ := http.ParseCookie(e.cookie)
		for _, c := range cs {
			if c.Name == cookie {
				sent = show(c.Value)
			}
		}
		var set []string
		for _, line := range e.r.Header.Values("Set-Cookie") {
			if c, err := http.ParseSetCookie(line); err == nil && c.Name == cookie {
				if jarDrops(c) {
					set = append(set, "(deleted)")
				} else {
					set = append(set, show(c.Value))
				}
			}
		}
		fmt.Fprintf(&b, "\n  sent %s answered %s %s %s with %s: %d set %v kept=%v", rel(e.sent), rel(e.r.At), e.method, e.path, sent, e.r.StatusCode, set, e.kept)
	}
	return b.String()
}

// Do is Send that fails t on a transport error.
func (a *Agent) Do(t testing.TB, method, path string, form url.Values, opts ...ReqOption) *Response {
	t.Helper()
	r, err := a.Send(method, path, form, opts...)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

// Refused reports whether r is idlegate's refusal of an ended session (not
// the application's own 401): the JSON or text body idlegate writes, or its
// 303 to the login page, always with the session cookie cleared.
func Refused(r *Response, cookie string) bool {
	if !r.ClearsCookie(cookie) {
		return false
	}
	switch r.StatusCode {
	case http.StatusSeeOther:
		return true
	case http.StatusUnauthorized:
		return strings.Contains(string(r.Body), "session_expired") || strings.Contains(string(r.Body), "Your session has expired")
	}
	return false
}

// refusalReason is the "reason" of idlegate's JSON refusal body.
func refusalReason(r *Response) string {
	var b struct {
		Error  string `json:"error"`
		Reason string `json:"reason"`
	}
	if json.Unmarshal(r.Body, &b) != nil || b.Error != "session_expired" {
		return ""
	}
	return b.Reason
}

// locationPath is the path of r's Location (Laravel's are absolute URLs).
func locationPath(r *Response) string {
	u, err := url.Parse(r.Header.Get("Location"))
	if err != nil {
		return r.Header.Get("Location")
	}
	if u.Path == "" {
		return "/"
	}
	return u.Path
}

var errNotYet = errors.New("not yet")

func describe(r *Response) string {
	if r == nil {
		return "<nil>"
	}
	body := string(r.Body)
	if len(body) > 200 {
		body = body[:200] + "..."
	}
	return fmt.Sprintf("%d Location=%q Set-Cookie=%q body=%q", r.StatusCode, r.Header.Get("Location"), r.Header.Values("Set-Cookie"), body)
}
