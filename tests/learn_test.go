package tests

// Issue 17 item 5: the learning mode. For each real app, `caddy
// idle-sessions learn` runs in front of it while the app's own driver signs
// alice in, clicks around, calls the app's polling endpoint (WordPress's
// heartbeat) and signs out; the suggestion it prints is asserted line by
// line, then pasted into a Caddyfile in front of the same app and the
// legacy scenarios (keep-alive, idle expiry with one webhook, replay,
// not signed back in, the app's logout, a CSRF form, parallel requests,
// restart) run against it.

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// learnWant are the lines each app's suggestion must have.
var learnWant = map[string][]string{
	"wordpress": {
		"\tcookie wordpress_logged_in_*\n",
		"\tcookie_parser php\n",
		"\tlogout {\n\t\tpath /wp-login.php\n\t\tquery action=logout\n\t}\n",
		learnWPPassive,
		"\tuser_cookie wordpress_logged_in_* |\n",
		"\t# on_expired redirect /wp-login.php\n",
	},
	"redmine": {
		"\tcookie Redmine\n",
		"\tcookie_parser rails\n",
		"\tlogout {\n\t\tmethod POST\n\t\tpath /logout\n\t}\n",
		"\tlogin {\n\t\tmethod POST\n\t\tpath /login\n\t}\n\tuser_form username 3xx\n",
		"\t# on_expired redirect /login\n",
	},
	"mediawiki": {
		"\tcookie my_wiki_session\n",
		"\tcookie_parser php\n",
		"\tlogout {\n\t\tmethod POST\n",
		"UserLogout\n\t}\n",
		"\tuser_cookie my_wikiUserName\n",
		"\t# on_expired redirect /index.php?title=Special:UserLogin\n",
	},
	"dokuwiki":         dokuwikiLearned(""),
	"dokuwiki_subpath": dokuwikiLearned("/dokuwiki"),
}

const learnWPPassive = "\tpassive {\n\t\tpath /wp-admin/admin-ajax.php\n\t\theader X-Requested-With XMLHttpRequest\n\t}\n"

func TestLearnWordPress(t *testing.T)       { runLearn(t, wordpressDriver) }
func TestLearnRedmine(t *testing.T)         { runLearn(t, redmineDriver) }
func TestLearnMediaWiki(t *testing.T)       { runLearn(t, mediawikiDriver) }
func TestLearnDokuWiki(t *testing.T)        { runLearn(t, dokuwikiDriver("")) }
func TestLearnDokuWikiSubpath(t *testing.T) { runLearn(t, dokuwikiDriver("/dokuwiki")) }

func dokuwikiLearned(prefix string) []string {
	return []string{
		"\tcookie DW*\n",
		"\tcookie_parser php\n",
		"\tlogout {\n\t\tpath " + prefix + "/doku.php\n\t\tquery do=logout\n\t}\n",
		"\tlogin {\n\t\tmethod POST\n\t\tpath " + prefix + "/doku.php\n\t}\n\tuser_form u 3xx\n",
		"\t# on_expired redirect " + prefix + "/doku.php?do=login\n",
	}
}

// learner is a running `caddy idle-sessions learn`.
type learner struct {
	Addr   string
	cmd    *exec.Cmd
	exited chan struct{}
	err    error
	stderr lockedBuffer // read while the learner runs
}

// lockedBuffer is a bytes.Buffer that may be read while a process's output
// is copied into it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startLearner runs `caddy idle-sessions learn` in front of upstream (with
// args after the defaults), its standard output going to stdout, and waits
// until it listens.
func startLearner(t *testing.T, upstream, user string, stdout io.Writer, args ...string) *learner {
	t.Helper()
	l := &learner{Addr: "127.0.0.1:" + strconv.Itoa(FreePort(t)), exited: make(chan struct{})}
	l.cmd = exec.Command(caddyBin, append([]string{"idle-sessions", "learn", "--upstream", upstream, "--listen", l.Addr, "--user", user}, args...)...)
	l.cmd.Stdout, l.cmd.Stderr = stdout, &l.stderr
	l.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := l.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { l.err = l.cmd.Wait(); close(l.exited) }()
	t.Cleanup(func() {
		select {
		case <-l.exited:
		default:
			syscall.Kill(-l.cmd.Process.Pid, syscall.SIGKILL)
			<-l.exited
		}
	})
	Eventually(t, 15*time.Second, 50*time.Millisecond, func() error {
		c, err := net.Dial("tcp", l.Addr)
		if err != nil {
			return fmt.Errorf("learner not listening on %s: %v; stderr %s", l.Addr, err, l.stderr.String())
		}
		return c.Close()
	})
	return l
}

// wait fails t unless the learner exits cleanly within 15 s (after why).
func (l *learner) wait(t *testing.T, why string) {
	t.Helper()
	select {
	case <-l.exited:
		if l.err != nil {
			t.Fatalf("learner exited with %v: %s", l.err, l.stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("the learner did not stop after %s", why)
	}
}

// checkSuggestion asserts want's lines, no notes, and no cookie value of
// log in the learner's output.
func checkSuggestion(t *testing.T, suggestion string, want []string, log []CookieEvent, output string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(suggestion, w) {
			t.Errorf("the suggestion lacks %q", w)
		}
	}
	if strings.Contains(suggestion, "# NOTE:") {
		t.Errorf("the suggestion has a note (something not found)")
	}
	for _, c := range log {
		if len(c.Cookie.Value) >= 8 && strings.Contains(suggestion+output, c.Cookie.Value) {
			t.Errorf("the value of the app's cookie %s is in the learner's output", c.Cookie.Name)
		}
	}
}

var reWPHeartbeatNonce = regexp.MustCompile(`heartbeatSettings = \{"nonce":"([0-9a-f]+)"`)

func runLearn(t *testing.T, d LegacyDriver) {
	needCaddy(t)
	app := StartLegacyApp(t, d.Spec)
	user := d.LoginUser("alice")
	var stdout bytes.Buffer
	l := startLearner(t, app.URL, user, &stdout)
	addr := l.Addr

	// a person uses the app through it
	b := NewBrowser("http://"+addr, d.Spec.Prefix)
	d.signIn(t, b, "alice", true)
	for i := 0; i < 2; i++ {
		if u := d.whoami(t, b); u != user {
			t.Fatalf("through the learner the app shows %q, want %s", u, user)
		}
	}
	if d.Spec.Name == "wordpress" {
		// The dashboard's Heartbeat, as its script sends it: action and
		// nonce in the body.
		p := b.Get(t, "/wp-admin/index.php")
		nonce := firstMatch(reWPHeartbeatNonce, p.Text())
		if nonce == "" {
			t.Fatalf("no heartbeat nonce on the dashboard: %s", describe(p.Response))
		}
		for i := 0; i < 2; i++ {
			if hb := wordpressHeartbeat(t, b, nonce); hb.StatusCode != 200 {
				t.Fatalf("heartbeat: %s", describe(hb.Response))
			}
		}
	}
	p := d.Logout(t, b)
	if p.StatusCode >= 400 {
		t.Fatalf("the app's logout through the learner: %s", describe(p.Response))
	}
	b.Follow(t, p)

	// done
	resp, err := http.Get("http://" + addr + "/.idlegate/learn/done")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("done: %d %s", resp.StatusCode, body)
	}
	l.wait(t, "done")
	suggestion := string(body)
	t.Logf("%s: the learner suggests:\n%s", d.Spec.Name, suggestion)
	if stdout.String() != suggestion {
		t.Errorf("stdout differs from the done answer:\n%s", stdout.String())
	}
	checkSuggestion(t, suggestion, learnWant[d.Spec.Name], b.Log(), stdout.String()+l.stderr.String())
	if t.Failed() {
		return
	}

	// pasted in front of the same app
	block, userKnown := learnedBlock(suggestion)
	if !userKnown {
		t.Fatal("the suggestion names no user source")
	}
	// The recipe gives only the session cookie's concrete name, which the
	// scenarios look for in the browser; the Caddyfile is the suggestion's.
	s := &legacyStack{D: d, R: legacyRecipes[d.Spec.Name], App: app, Rcv: NewReceiver(t), Sites: map[string]string{}}
	for _, m := range legacyModes {
		s.Sites[m] = "http://127.0.0.1:" + strconv.Itoa(FreePort(t))
	}
	cf := learnedCaddyfile(s, block, suggestion)
	t.Logf("Caddyfile with the suggestion:\n%s", cf)
	s.Caddy = StartCaddy(t, cf)
	runLegacyScenarios(t, s)
	if d.Spec.Name == "wordpress" {
		t.Run("passive_heartbeat", func(t *testing.T) { learnedHeartbeatScenario(t, s) })
	}
}

// wordpressHeartbeat posts one Heartbeat as the dashboard's script does:
// action and nonce in the body, X-Requested-With set.
func wordpressHeartbeat(t *testing.T, b *Browser, nonce string) *Page {
	t.Helper()
	p, err := b.Do(http.MethodPost, b.AppURL("/wp-admin/admin-ajax.php"), url.Values{
		"action": {"heartbeat"}, "_nonce": {nonce}, "interval": {"60"}, "screen_id": {"dashboard"}, "has_focus": {"false"},
	}, XHR())
	if err != nil {
		t.Fatalf("heartbeat: %v", err)
	}
	return p
}

// The learned passive block works: a dashboard left open, whose Heartbeat
// keeps calling admin-ajax.php, does not keep the session alive — it ends
// idle, one idle period after the last navigation.
func learnedHeartbeatScenario(t *testing.T, s *legacyStack) {
	const mode = "strip" // no live session of another scenario is left in this zone
	d, zone := s.D, s.zone(mode)
	b := s.browser(mode)
	before := len(s.ended(zone))
	d.signIn(t, b, "bob", false)
	p := b.Get(t, "/wp-admin/index.php")
	nonce := firstMatch(reWPHeartbeatNonce, p.Text())
	if nonce == "" {
		t.Fatalf("no heartbeat nonce on the dashboard: %s", describe(p.Response))
	}
	lastNavigation := time.Now()
	var lastBeat time.Time
	for time.Since(lastNavigation) < legacyIdle*3/2 {
		time.Sleep(legacyIdle / 4)
		if p := wordpressHeartbeat(t, b, nonce); p.StatusCode == 200 {
			lastBeat = time.Now()
		}
	}
	if lastBeat.Before(lastNavigation.Add(legacyIdle / 2)) {
		t.Fatalf("no heartbeat answered 200 while the session was live (last at %s)", lastBeat)
	}
	ev := s.waitEnded(t, zone, before, legacyIdle+25*time.Second)
	if ev.Data.Reason != "idle" {
		t.Errorf("session.ended reason %q, want idle", ev.Data.Reason)
	}
	if ev.Data.User != d.LoginUser("bob") {
		t.Errorf("session.ended user %q, want bob", ev.Data.User)
	}
	if !ev.Data.EndedAt.Before(lastNavigation.Add(legacyIdle + 2*time.Second)) {
		t.Errorf("ended_at %s: the heartbeat kept the session alive (last navigation %s, last answered heartbeat %s)",
			ev.Data.EndedAt, lastNavigation.Format(time.RFC3339), lastBeat.Format(time.RFC3339))
	}
}

// learnedBlock is the suggestion's idle_session body, and whether it
// names a user source.
func learnedBlock(suggestion string) (body []string, userKnown bool) {
	in := false
	for _, l := range strings.Split(suggestion, "\n") {
		switch {
		case l == "idle_session {":
			in = true
			continue
		case l == "}" && in:
			in = false
			continue
		case !in:
			continue
		}
		for _, opt := range []string{"user_cookie ", "user_form ", "user_header "} {
			if strings.HasPrefix(l, "\t"+opt) {
				userKnown = true
			}
		}
		body = append(body, "\t"+l)
	}
	return body, userKnown
}

var reLearnedRedirect = regexp.MustCompile(`(?m)^\t# on_expired redirect (\S+)$`)

// learnedCaddyfile is the legacy harness' three sites (one per on_expired
// mode, each its own zone, short idle, a verified webhook) with the
// suggested block's lines as the idle_session body.
func learnedCaddyfile(s *legacyStack, block []string, suggestion string) string {
	redirect := s.R.Redirect
	if m := reLearnedRedirect.FindStringSubmatch(suggestion); m != nil {
		redirect = m[1]
	}
	var sb strings.Builder
	sb.WriteString("{\n\tadmin 127.0.0.1:{ADMIN}\n\tdefault_bind 127.0.0.1\n\tgrace_period 3s\n}\n")
	for _, mode := range legacyModes {
		onExpired := map[string]string{"status": "status 401", "redirect": "redirect " + redirect, "strip": "strip"}[mode]
		fmt.Fprintf(&sb, `%s {
	idle_session {
%s
		name %s
		idle %s
		rotation_grace %s
		on_expired %s
		webhook %s {
			secret %s
			events ended
			include_anonymous
		}
	}
	reverse_proxy %s
}
`, s.Sites[mode], strings.Join(block, "\n"), s.zone(mode), legacyIdle, legacyGrace, onExpired, s.Rcv.Hook(), TestSecret, s.App.Addr)
	}
	return sb.String()
}

// SIGTERM ends a learning run too, and --out receives the suggestion.
func TestLearnSignalOut(t *testing.T) {
	needCaddy(t)
	app := http.NewServeMux()
	app.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			http.SetCookie(w, &http.Cookie{Name: "sid", Value: "s3cr3t-" + randomHex(8), Path: "/", HttpOnly: true})
			http.Redirect(w, r, "/home", http.StatusSeeOther)
			return
		}
		io.WriteString(w, "<form method=post>")
	})
	app.HandleFunc("/home", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "home") })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: app}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	out := t.TempDir() + "/suggestion.caddy"
	l := startLearner(t, "http://"+ln.Addr().String(), "alice", io.Discard, "--out", out)
	addr := l.Addr
	b := NewBrowser("http://"+addr, "")
	b.Get(t, "/login")
	b.Follow(t, b.Post(t, "/login", url.Values{"user": {"alice"}, "password": {"pw"}}))
	b.Get(t, "/home")
	l.cmd.Process.Signal(syscall.SIGTERM)
	l.wait(t, "SIGTERM")
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"idle_session {", "\tcookie sid\n", "\tuser_form user 3xx\n"} {
		if !strings.Contains(string(got), w) {
			t.Errorf("--out lacks %q:\n%s", w, got)
		}
	}
	if strings.Contains(string(got), "s3cr3t") {
		t.Errorf("the cookie's value is in the suggestion:\n%s", got)
	}
}
