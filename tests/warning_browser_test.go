package tests

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// The idle warning in a real browser: Debian's Chromium, driven by
// playwright-core (tests/warningbrowser/run.mjs), against the Caddy binary
// in front of the plain PHP app of tests/apps. Setup, once:
//
//	tests/warningbrowser/setup.sh        # apt chromium if missing, npm ci
//
// Without node_modules or chromium the test skips, except under CI=1,
// where it fails. Screenshots go to tests/artifacts/warning-*.png.

const (
	warnIdle   = 20 // seconds; short, so the scenarios take about a minute
	warnBefore = 15
)

const warningCaddyfile = `{
	admin 127.0.0.1:{ADMIN}
	default_bind 127.0.0.1
	grace_period 3s
}
http://127.0.0.1:{PORT} {
	encode gzip
	idle_session {
		cookie PHPSESSID
		idle {IDLE}s
		user_header X-Idle-User
		logout {
			method POST
			path /logout
		}
		passive {
			path /poll
		}
		status_path /.idlegate/status
		on_expired redirect /login
		warn_before {WARN}s
		inject_warning
	}
	reverse_proxy {APP}
}
# Customised texts and language: the dialog shows at once (warn_before = idle - 1s).
http://127.0.0.1:{CUSTOM} {
	idle_session {
		cookie PHPSESSID
		name custom
		idle {IDLE}s
		user_header X-Idle-User
		status_path /.idlegate/status
		on_expired redirect /login
		warn_before {WARN1}s
		inject_warning
		warning {
			lang de
			title "Noch da?"
			body "Abmeldung in {time}."
		}
	}
	reverse_proxy {APP}
}
# Events only: the application draws its own warning.
http://127.0.0.1:{EVENTS} {
	idle_session {
		cookie PHPSESSID
		name events
		idle {IDLE}s
		user_header X-Idle-User
		status_path /.idlegate/status
		warn_before {WARN1}s
		inject_warning
		warning {
			events_only
		}
	}
	reverse_proxy {APP}
}
`

func TestWarningInBrowser(t *testing.T) {
	needCaddy(t)
	node, chromium := warningBrowserDeps(t)

	app := startPHPApp(t)
	port, custom, events := strconv.Itoa(FreePort(t)), strconv.Itoa(FreePort(t)), strconv.Itoa(FreePort(t))
	c := StartCaddy(t, Render(t, warningCaddyfile, map[string]string{
		"PORT":   port,
		"CUSTOM": custom,
		"EVENTS": events,
		"APP":    app,
		"IDLE":   strconv.Itoa(warnIdle),
		"WARN":   strconv.Itoa(warnBefore),
		"WARN1":  strconv.Itoa(warnIdle - 1),
	}))

	artifacts, err := filepath.Abs("artifacts")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, filepath.Join("warningbrowser", "run.mjs"))
	cmd.Env = append(os.Environ(),
		"BASE=http://127.0.0.1:"+port,
		"CUSTOM=http://127.0.0.1:"+custom,
		"EVENTS=http://127.0.0.1:"+events,
		"ADMIN="+c.AdminURL,
		"IDLE="+strconv.Itoa(warnIdle),
		"WARN="+strconv.Itoa(warnBefore),
		"ARTIFACTS="+artifacts,
		"CHROMIUM="+chromium,
	)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	out, err := runWithin(cmd, 3*time.Minute)
	t.Logf("run.mjs (%s):\n%s", time.Since(start).Round(100*time.Millisecond), out)
	if err != nil {
		t.Fatalf("browser scenarios failed: %v (screenshots in %s)", err, artifacts)
	}
}

// warningBrowserDeps finds node and chromium and checks that setup.sh ran.
func warningBrowserDeps(t *testing.T) (node, chromium string) {
	t.Helper()
	missing := func(format string, args ...any) {
		t.Helper()
		msg := fmt.Sprintf(format, args...) + "; run tests/warningbrowser/setup.sh"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("node is not installed")
	}
	chromium = os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		missing("no chromium at %s", chromium)
	}
	if _, err := os.Stat(filepath.Join("warningbrowser", "node_modules", "playwright-core")); err != nil {
		missing("playwright-core is not installed in tests/warningbrowser")
	}
	if _, err := exec.LookPath("php"); err != nil {
		missing("php is not installed (tests/apps/setup.sh)")
	}
	return node, chromium
}

// startPHPApp runs tests/apps/php on a free port until t ends and returns
// its address.
func startPHPApp(t *testing.T) string {
	t.Helper()
	port := strconv.Itoa(FreePort(t))
	addr := "127.0.0.1:" + port
	cmd := exec.Command(filepath.Join("apps", "php", "start"), port)
	cmd.Env = append(os.Environ(), "APP_STATE_DIR="+t.TempDir())
	logf, err := os.Create(filepath.Join(t.TempDir(), "php.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the PHP app: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		// lib/supervise takes the server's process group down with it.
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("php app log:\n%s", tail(string(b), 40))
		}
		logf.Close()
	})
	client := &http.Client{Timeout: 2 * time.Second}
	Eventually(t, 15*time.Second, 100*time.Millisecond, func() error {
		select {
		case <-done:
			return fmt.Errorf("the PHP app exited: %v", cmd.ProcessState)
		default:
		}
		r, err := client.Get("http://" + addr + "/login")
		if err != nil {
			return err
		}
		r.Body.Close()
		if r.StatusCode != http.StatusOK {
			return fmt.Errorf("GET /login: %s", r.Status)
		}
		return nil
	})
	return addr
}

// runWithin runs cmd and returns its combined output; after timeout it kills
// cmd's process group (the browser included) and reports the timeout.
func runWithin(cmd *exec.Cmd, timeout time.Duration) ([]byte, error) {
	var buf bytes.Buffer // one writer for both: exec serialises the writes
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	timer := time.AfterFunc(timeout, func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	err := cmd.Wait()
	if !timer.Stop() {
		err = fmt.Errorf("killed after %s: %w", timeout, err)
	}
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // stray browser processes, if any
	return buf.Bytes(), err
}
