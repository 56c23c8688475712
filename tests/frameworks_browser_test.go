package tests

// One real browser: Debian's Chromium driven by playwright-core
// (tests/browser/idle.mjs) signs in to the Laravel app through idlegate,
// goes idle, reloads, and lands on the login page.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

func TestFrameworksBrowser(t *testing.T) {
	needCaddy(t)
	chromium := "/usr/bin/chromium"
	if v := os.Getenv("CHROMIUM"); v != "" {
		chromium = v
	}
	script, _ := filepath.Abs(filepath.Join("browser", "idle.mjs"))
	if _, err := os.Stat(filepath.Join("browser", "node_modules", "playwright-core", "package.json")); err != nil {
		t.Skip("playwright-core missing: run tests/browser/setup.sh")
	}
	if _, err := os.Stat(chromium); err != nil {
		t.Skipf("%s missing: run tests/browser/setup.sh", chromium)
	}
	s := startFramework(t, Framework{Name: "laravel", Dir: "laravel", Cookie: "laravel_session", LaravelKey: true})
	before := len(s.App.Events(t))

	cmd := exec.Command("node", script, s.Base)
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
	lines := make(chan map[string]any)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				lines <- m
			}
		}
		close(lines)
	}()
	next := func(step string) map[string]any {
		t.Helper()
		select {
		case m, ok := <-lines:
			if !ok {
				t.Fatalf("browser script ended before %q", step)
			}
			if m["step"] != step {
				t.Fatalf("browser: want step %q, got %v", step, m)
			}
			return m
		case <-time.After(60 * time.Second):
			t.Fatalf("browser: no %q within 60s", step)
		}
		return nil
	}

	in := next("signed_in")
	t.Logf("browser: %v", in)
	if in["path"] != "/" || in["hello"] != true || in["script"] != true {
		t.Fatalf("signing in with Chromium: %v", in)
	}
	// The tab stays open and silent: the session must end by itself.
	evs := s.newEvents(t, before, 1, fwIdle+20*time.Second)
	s.checkAppEnded(t, ofType(evs, "session.ended")[0], "alice", "idle")

	io.WriteString(stdin, "reload\n")
	out := next("reloaded")
	t.Logf("browser: %v", out)
	if out["path"] != "/login" || out["signIn"] != true {
		t.Errorf("reload after the idle timeout: want the login page, got %v", out)
	}
	if fmt.Sprint(out["statuses"]) != "[303 200]" {
		t.Errorf("navigation statuses = %v, want [303 200] (idlegate's redirect, then the login page)", out["statuses"])
	}
}
