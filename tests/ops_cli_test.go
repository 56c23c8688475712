package tests

// `caddy idle-sessions` against a running binary, and the who-is-online
// page in headless Chromium.

import (
	"encoding/json"
	"fmt"
	"net/http"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestOpsCLI(t *testing.T) {
	o := startOps(t, "idle 30m")
	a1, _ := o.login("42")
	a2, _ := o.login("42")
	b, _ := o.login("7")
	cli := func(args ...string) CLIResult {
		t.Helper()
		return CaddyCLI(t, append([]string{"idle-sessions"}, append(args, "--address", o.Caddy.AdminAddr)...)...)
	}

	// Who is online right now: one command.
	res := cli("list")
	if res.ExitCode != 0 {
		t.Fatalf("list: %d\n%s", res.ExitCode, res.Output)
	}
	t.Logf("caddy idle-sessions list:\n%s", res.Output)
	if !strings.Contains(res.Output, "SESSION") || !strings.Contains(res.Output, "3 sessions") ||
		strings.Count(res.Output, " 42 ") != 2 || strings.Count(res.Output, " 7 ") != 1 {
		t.Errorf("list table:\n%s", res.Output)
	}
	for _, raw := range []string{a1, a2, b} {
		if strings.Contains(res.Output, raw) {
			t.Errorf("list shows a raw session ID")
		}
	}
	res = cli("list", "--user", "42", "--json")
	var l adminList
	if res.ExitCode != 0 || json.Unmarshal([]byte(res.Output), &l) != nil || l.Count != 2 {
		t.Fatalf("list --user 42 --json: %d\n%s", res.ExitCode, res.Output)
	}
	res = cli("stats")
	if res.ExitCode != 0 || !regexp.MustCompile(`active sessions\s+3`).MatchString(res.Output) ||
		!regexp.MustCompile(`users online\s+2`).MatchString(res.Output) {
		t.Errorf("stats:\n%s", res.Output)
	}

	// Log user 42 out everywhere: one command.
	res = cli("revoke", "--user", "42")
	if res.ExitCode != 0 || !strings.Contains(res.Output, "revoked 2 session(s) of user 42") {
		t.Fatalf("revoke --user 42: %d\n%s", res.ExitCode, res.Output)
	}
	evs := o.Recv.WaitEvents(t, 2, 10*time.Second)
	for _, ev := range evs {
		if ev.Data.User != "42" || ev.Data.Reason != "revoked" {
			t.Errorf("event: %s", ev.Raw)
		}
	}
	for _, sid := range []string{a1, a2} {
		if r := o.C.Get(t, "/", WithCookie(UpstreamCookie, sid)); r.StatusCode != http.StatusUnauthorized {
			t.Errorf("revoked session's request: %d", r.StatusCode)
		}
	}

	// One session, by the ID list shows.
	l = adminList{}
	res = cli("list", "--json")
	json.Unmarshal([]byte(res.Output), &l)
	if l.Count != 1 {
		t.Fatalf("after revoking 42: %s", res.Output)
	}
	res = cli("revoke", l.Sessions[0].Session, "--json")
	if res.ExitCode != 0 || strings.TrimSpace(res.Output) != `{"revoked":1}` {
		t.Errorf("revoke <session> --json: %d\n%s", res.ExitCode, res.Output)
	}
	res = cli("revoke", l.Sessions[0].Session)
	if res.ExitCode == 0 || !strings.Contains(res.Output, "HTTP 404") || !strings.Contains(res.Output, "no active session") {
		t.Errorf("revoking it again: %d\n%s", res.ExitCode, res.Output)
	}
	res = cli("revoke")
	if res.ExitCode == 0 || !strings.Contains(res.Output, "name either a user") {
		t.Errorf("revoke without a target: %d\n%s", res.ExitCode, res.Output)
	}
	res = cli("dead-letters")
	if res.ExitCode != 0 || !strings.Contains(res.Output, "0 dead letter(s)") {
		t.Errorf("dead-letters: %d\n%s", res.ExitCode, res.Output)
	}
}

// TestOpsOnlinePageInChromium opens GET /idle-sessions/ui in headless
// Chromium, checks what its script rendered, and saves a screenshot under
// tests/artifacts/.
func TestOpsOnlinePageInChromium(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		chromium = "/usr/bin/chromium"
		if _, err := os.Stat(chromium); err != nil {
			t.Skip("no chromium")
		}
	}
	o := startOps(t, "idle 30m")
	o.login("42")
	o.login("42")
	o.login(neturl.QueryEscape("alice <b>"))
	sid, _ := o.login("7")
	o.page(sid)

	// Caddy's admin endpoint refuses browser navigations (no Origin) by
	// design; `caddy idle-sessions ui` relays the page to a local address.
	uiAddr := "127.0.0.1:" + strconv.Itoa(FreePort(t))
	relay := exec.Command(caddyBin, "idle-sessions", "ui", "--listen", uiAddr, "--address", o.Caddy.AdminAddr)
	relay.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	var relayOut strings.Builder
	relay.Stdout, relay.Stderr = &relayOut, &relayOut
	if err := relay.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-relay.Process.Pid, syscall.SIGKILL)
		relay.Wait()
	})
	url := "http://" + uiAddr + "/"
	Eventually(t, 20*time.Second, 50*time.Millisecond, func() error {
		resp, err := http.Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("ui relay: %d", resp.StatusCode)
		}
		return nil
	})
	// The relay is read-only.
	req, _ := http.NewRequest(http.MethodDelete, "http://"+uiAddr+"/idle-sessions/?user=42", nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("DELETE through the ui relay: %v %v", resp, err)
	}
	profile := t.TempDir()
	run := func(args ...string) string {
		t.Helper()
		args = append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--no-proxy-server",
			"--disable-dev-shm-usage", "--user-data-dir=" + profile, "--virtual-time-budget=4000",
			"--window-size=1000,420"}, append(args, url)...)
		cmd := exec.Command(chromium, args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		var out, errOut strings.Builder
		cmd.Stdout = &out
		cmd.Stderr = &errOut
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("chromium %v: %v\n%s", args, err, errOut.String())
			}
		case <-time.After(90 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
			t.Fatalf("chromium still running after 90s")
		}
		return out.String()
	}

	dom := run("--dump-dom")
	if !strings.Contains(dom, `data-loaded="1"`) {
		t.Fatalf("the page's script did not load the sessions:\n%s", dom)
	}
	for _, want := range []string{`data-user="42"`, `data-user="7"`, "3 users online, 4 active sessions", "alice &lt;b&gt;"} {
		if !strings.Contains(dom, want) {
			t.Errorf("rendered page lacks %q:\n%s", want, dom)
		}
	}
	if strings.Contains(dom, "<b>") {
		t.Errorf("a user name was rendered as HTML")
	}
	// User 42 has two sessions: one row, "2" sessions.
	if !regexp.MustCompile(`data-user="42"><td>42</td><td>sid</td><td class="num">2</td>`).MatchString(dom) {
		t.Errorf("user 42's row:\n%s", dom)
	}

	shot, err := filepath.Abs(filepath.Join("artifacts", "online-page.png"))
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Dir(shot), 0o755)
	os.Remove(shot)
	run("--screenshot=" + shot)
	if fi, err := os.Stat(shot); err != nil || fi.Size() < 1000 {
		t.Fatalf("no screenshot at %s: %v", shot, err)
	}
	t.Logf("screenshot: %s", shot)
}
