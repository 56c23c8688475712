package tests

// The learning mode with a real browser: Debian's Chromium uses each app
// through `caddy idle-sessions learn` — every script, stylesheet, image
// and background call its pages make passes the learner too — and the
// suggestion must name the same cookie, logout and user source as with the
// Go client (tests/learn_test.go), and no polling that is not there.

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// learnBrowserSteps are the pages and the logout Chromium uses per app.
var learnBrowserSteps = map[string]struct{ Other, LogoutLink, LogoutClick, LogoutSubmit string }{
	"wordpress":        {Other: "/wp-admin/index.php", LogoutLink: `a[href*="action=logout"]`},
	"redmine":          {Other: "/my/page", LogoutClick: "a.logout"},
	"mediawiki":        {Other: "/index.php?title=Main_Page", LogoutLink: "#pt-logout a", LogoutSubmit: `form[action*="UserLogout"] [type="submit"]`},
	"dokuwiki":         {Other: "/doku.php?id=playground", LogoutLink: `a[href*="do=logout"]`},
	"dokuwiki_subpath": {Other: "/dokuwiki/doku.php?id=playground", LogoutLink: `a[href*="do=logout"]`},
}

func TestLearnBrowser(t *testing.T) {
	chromium, script := needBrowser(t, "learn.mjs")
	for _, d := range []LegacyDriver{wordpressDriver, redmineDriver, mediawikiDriver, dokuwikiDriver(""), dokuwikiDriver("/dokuwiki")} {
		t.Run(d.Spec.Name, func(t *testing.T) { learnBrowser(t, d, chromium, script) })
	}
}

func learnBrowser(t *testing.T, d LegacyDriver, chromium, script string) {
	app := StartLegacyApp(t, d.Spec)
	var stdout bytes.Buffer
	l := startLearner(t, app.URL, d.LoginUser("alice"), &stdout)
	addr := l.Addr
	f, st := legacyBrowserForm[d.Spec.Name], learnBrowserSteps[d.Spec.Name]
	cfg, _ := json.Marshal(map[string]string{
		"base": "http://" + addr, "login": f.Login, "user": d.LoginUser("alice"), "password": alicePassword,
		"userField": f.UserField, "passwordField": f.PasswordField, "submit": f.Submit,
		"protected": d.Protected, "other": st.Other,
		"logoutLink": st.LogoutLink, "logoutClick": st.LogoutClick, "logoutSubmit": st.LogoutSubmit,
	})
	cmd := exec.Command("node", script, string(cfg))
	cmd.Dir = filepath.Dir(script)
	cmd.Env = append(os.Environ(), "CHROMIUM="+chromium)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("node %s: %v", script, err)
	}
	ran := make(chan error, 1)
	go func() { ran <- cmd.Wait() }()
	select {
	case err := <-ran:
		if err != nil {
			t.Fatalf("browser script: %v\n%s", err, errOut.String())
		}
	case <-time.After(120 * time.Second):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-ran
		t.Fatalf("browser script still running after 120s: %s", errOut.String())
	}
	var res struct {
		Status     int    `json:"status"`
		Suggestion string `json:"suggestion"`
	}
	if err := json.Unmarshal(bytes.TrimSpace(out.Bytes()), &res); err != nil || res.Status != 200 {
		t.Fatalf("browser script's answer: %v %q", err, out.String())
	}
	l.wait(t, "done")
	t.Logf("%s in Chromium: the learner suggests:\n%s", d.Spec.Name, res.Suggestion)
	var want []string
	for _, w := range learnWant[d.Spec.Name] {
		if w != learnWPPassive { // the Heartbeat ticks every 60 s; the visit is shorter
			want = append(want, w)
		}
	}
	checkSuggestion(t, res.Suggestion, want, nil, stdout.String()+l.stderr.String())
	if d.Spec.Name != "wordpress" && strings.Contains(res.Suggestion, "\tpassive {") {
		t.Errorf("a passive block for an app that does not poll")
	}
}
