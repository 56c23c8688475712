package tests

// The Caddy side of the harness: building the binary once, and running it as
// a child process that each test owns.

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
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

	"github.com/idlegate/idlegate/internal/testnet"
)

// caddyBin is the binary every test runs; set once by TestMain.
var caddyBin string

const (
	startTimeout = 30 * time.Second // a loaded 2-core machine can be slow to start Caddy
	stopTimeout  = 20 * time.Second // SIGTERM to exit; longer is a bug worth reporting
)

func TestMain(m *testing.M) {
	flag.Parse()
	if !testing.Short() {
		bin, err := caddyBinary()
		if err != nil {
			fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
			os.Exit(1)
		}
		caddyBin = bin
	}
	os.Exit(m.Run())
}

// caddyBinary returns IDLEGATE_CADDY_BIN when set, or builds ./cmd/caddy into
// tests/.cache/caddy. Building straight onto the cached file lets go build
// see that it is up to date (its build ID matches) and skip even the link;
// when it does link, go build moves the result into place, so a concurrent
// `go test` never runs a half-written binary.
func caddyBinary() (string, error) {
	if bin := os.Getenv("IDLEGATE_CADDY_BIN"); bin != "" {
		abs, err := filepath.Abs(bin)
		if err != nil {
			return "", err
		}
		if fi, err := os.Stat(abs); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return "", fmt.Errorf("IDLEGATE_CADDY_BIN=%s is not an executable file", bin)
		}
		fmt.Fprintf(os.Stderr, "e2e: using prebuilt %s\n", abs)
		return abs, nil
	}
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside the idlegate module (go env GOMOD is empty)")
	}
	root := filepath.Dir(gomod)
	cache := filepath.Join(root, "tests", ".cache")
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", err
	}
	bin := filepath.Join(cache, "caddy")
	start := time.Now()
	build := exec.Command("go", "build", "-o", bin, "./cmd/caddy")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/caddy: %w\n%s", err, out)
	}
	fmt.Fprintf(os.Stderr, "e2e: built %s in %s\n", bin, time.Since(start).Round(100*time.Millisecond))
	return bin, nil
}

// needCaddy skips t under -short, where no binary is built.
func needCaddy(t testing.TB) {
	t.Helper()
	if testing.Short() || caddyBin == "" {
		t.Skip("e2e: needs the Caddy binary; skipped under -short")
	}
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago
// (internal/testnet: below the ephemeral range, never handed out twice).
func FreePort(t testing.TB) int {
	t.Helper()
	return testnet.FreePort(t)
}

var leftoverVar = regexp.MustCompile(`\{[A-Z][A-Z0-9_]*\}`)

// Render replaces each {KEY} of tmpl with vars[KEY] and fails t if an
// upper-case {KEY} other than {ADMIN} (StartCaddy's) is left over. Caddy's
// own placeholders ({http.request.uri}, {$ENV}) are lower-case or start
// with $, so they pass through.
func Render(t testing.TB, tmpl string, vars map[string]string) string {
	t.Helper()
	pairs := make([]string, 0, 2*len(vars))
	for k, v := range vars {
		pairs = append(pairs, "{"+k+"}", v)
	}
	out := strings.NewReplacer(pairs...).Replace(tmpl)
	for _, m := range leftoverVar.FindAllString(out, -1) {
		if m != "{ADMIN}" {
			t.Fatalf("Render: %s has no value", m)
		}
	}
	return out
}

// Caddy is one Caddy process owned by one test. Its data directory lives as
// long as the test, so Restart finds the same bbolt store.
type Caddy struct {
	t testing.TB

	AdminAddr  string // 127.0.0.1:port
	AdminURL   string // http://127.0.0.1:port
	Dir        string // per-test directory: Caddyfile, log, HOME, XDG dirs
	ConfigPath string
	LogPath    string

	env []string

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{} // closed when cmd has been waited for
	waitErr error
	logFile *os.File
}

// CaddyOption adjusts StartCaddy.
type CaddyOption func(*caddyConfig)

type caddyConfig struct {
	env map[string]string
}

// WithEnv sets an environment variable of the Caddy process (usable in the
// Caddyfile as {$KEY}).
func WithEnv(key, value string) CaddyOption {
	return func(c *caddyConfig) { c.env[key] = value }
}

// StartCaddy writes caddyfile into a fresh directory and runs
// `caddy run --config <file> --adapter caddyfile`. The Caddyfile must carry
// `admin 127.0.0.1:{ADMIN}` and `default_bind 127.0.0.1` in its global
// options; {ADMIN} is filled in here. StartCaddy returns once the
// configuration is fully running (Caddy's own --pingback confirmation, sent
// after every app has started) and the admin endpoint answers.
func StartCaddy(t testing.TB, caddyfile string, opts ...CaddyOption) *Caddy {
	t.Helper()
	needCaddy(t)
	cfg := caddyConfig{env: map[string]string{}}
	for _, o := range opts {
		o(&cfg)
	}
	if !strings.Contains(caddyfile, "admin 127.0.0.1:{ADMIN}") {
		t.Fatal("StartCaddy: the Caddyfile must set `admin 127.0.0.1:{ADMIN}` in its global options")
	}
	if !strings.Contains(caddyfile, "default_bind 127.0.0.1") {
		t.Fatal("StartCaddy: the Caddyfile must set `default_bind 127.0.0.1` so nothing listens beyond loopback")
	}
	dir := t.TempDir()
	port := FreePort(t)
	c := &Caddy{
		t:          t,
		AdminAddr:  "127.0.0.1:" + strconv.Itoa(port),
		Dir:        dir,
		ConfigPath: filepath.Join(dir, "Caddyfile"),
		LogPath:    filepath.Join(dir, "caddy.log"),
	}
	c.AdminURL = "http://" + c.AdminAddr
	c.env = isolatedEnv(dir, cfg.env)
	c.writeConfig(caddyfile)
	t.Cleanup(func() {
		if c.Pid() != 0 && !c.Running() && !t.Failed() {
			// A crash the test did not notice is still a crash.
			t.Errorf("caddy exited by itself during the test: %v", c.exitErr())
		}
		c.kill() // by process group, never by name
		if t.Failed() {
			t.Logf("caddy log (%s), last lines:\n%s", c.LogPath, tail(c.Logs(), 80))
		}
		c.mu.Lock()
		if c.logFile != nil {
			c.logFile.Close()
		}
		c.mu.Unlock()
	})
	c.start()
	return c
}

// isolatedEnv is the parent's environment with HOME and the XDG directories
// moved into dir, so Caddy's data dir (and idlegate's default
// <data dir>/idlegate/sessions.db) belongs to this test alone. Caddy's own
// variables and proxies are dropped so the developer's shell cannot leak in.
func isolatedEnv(dir string, extra map[string]string) []string {
	set := map[string]string{
		"HOME":            filepath.Join(dir, "home"),
		"XDG_DATA_HOME":   filepath.Join(dir, "data"),
		"XDG_CONFIG_HOME": filepath.Join(dir, "config"),
		"NO_PROXY":        "*",
	}
	for k, v := range extra {
		set[k] = v
	}
	for _, k := range []string{"HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME"} {
		os.MkdirAll(set[k], 0o755)
	}
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		up := strings.ToUpper(k)
		if _, ok := set[k]; ok || strings.HasPrefix(up, "CADDY") || strings.HasSuffix(up, "_PROXY") {
			continue
		}
		env = append(env, kv)
	}
	for k, v := range set {
		env = append(env, k+"="+v)
	}
	return env
}

// DataDir is Caddy's data directory for this test ($XDG_DATA_HOME/caddy);
// idlegate's default store is DataDir()/idlegate/sessions.db.
func (c *Caddy) DataDir() string {
	return filepath.Join(c.Dir, "data", "caddy")
}

func (c *Caddy) writeConfig(caddyfile string) {
	c.t.Helper()
	cf := strings.ReplaceAll(caddyfile, "{ADMIN}", strings.TrimPrefix(c.AdminAddr, "127.0.0.1:"))
	if m := leftoverVar.FindString(cf); m != "" {
		c.t.Fatalf("Caddyfile: %s has no value (use Render)", m)
	}
	if err := os.WriteFile(c.ConfigPath, []byte(cf), 0o644); err != nil {
		c.t.Fatal(err)
	}
}

func (c *Caddy) note(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.logFile != nil {
		fmt.Fprintf(c.logFile, "=== harness %s: %s ===\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
	}
}

func (c *Caddy) start() {
	c.t.Helper()
	c.mu.Lock()
	if c.cmd != nil {
		c.mu.Unlock()
		c.t.Fatal("caddy: start while running")
	}
	if c.logFile == nil {
		f, err := os.OpenFile(c.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			c.mu.Unlock()
			c.t.Fatal(err)
		}
		c.logFile = f
	}
	c.mu.Unlock()

	// Caddy's --pingback: once the initial config runs (every app started,
	// so every listener is open), Caddy dials this address and echoes stdin.
	ping, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		c.t.Fatal(err)
	}
	defer ping.Close()
	nonce := randomHex(16)

	cmd := exec.Command(caddyBin, "run",
		"--config", c.ConfigPath, "--adapter", "caddyfile",
		"--pingback", ping.Addr().String())
	cmd.Dir = c.Dir
	cmd.Env = c.env
	cmd.Stdin = strings.NewReader(nonce)
	cmd.Stdout = c.logFile
	cmd.Stderr = c.logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid: true, // own process group: Kill reaches anything Caddy spawns
		// If the test binary dies without running its cleanups (a -timeout
		// panic), the kernel kills Caddy too.
		Pdeathsig: syscall.SIGKILL,
	}
	c.note("start: %s", strings.Join(cmd.Args, " "))
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("caddy: start: %v", err)
	}
	done := make(chan struct{})
	c.mu.Lock()
	c.cmd, c.done = cmd, done
	c.mu.Unlock()
	go func() {
		err := cmd.Wait()
		c.mu.Lock()
		c.waitErr = err
		c.mu.Unlock()
		close(done)
	}()

	confirmed := make(chan error, 1)
	go func() {
		conn, err := ping.Accept()
		if err != nil {
			confirmed <- err
			return
		}
		defer conn.Close()
		conn.SetReadDeadline(time.Now().Add(startTimeout))
		got, err := io.ReadAll(conn)
		if err == nil && string(got) != nonce {
			err = fmt.Errorf("pingback carried %q, want the nonce", got)
		}
		confirmed <- err
	}()
	select {
	case err := <-confirmed:
		if err != nil {
			c.kill()
			c.t.Fatalf("caddy: startup confirmation: %v (caddy log below)", err)
		}
	case <-done:
		c.t.Fatalf("caddy exited during startup (%v): %s", c.exitErr(), lastLine(c.Logs()))
	case <-time.After(startTimeout):
		c.kill()
		c.t.Fatalf("caddy: not running after %s (caddy log below)", startTimeout)
	}
	Eventually(c.t, 10*time.Second, 20*time.Millisecond, func() error {
		status, _, err := c.admin(http.MethodGet, "/config/", nil)
		if err != nil {
			return err
		}
		if status != http.StatusOK {
			return fmt.Errorf("admin GET /config/: %d", status)
		}
		return nil
	})
	c.note("running (pid %d)", cmd.Process.Pid)
}

func (c *Caddy) exitErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.waitErr
}

// Running reports whether the process is alive.
func (c *Caddy) Running() bool {
	c.mu.Lock()
	done := c.done
	c.mu.Unlock()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// Pid is the process id of the running Caddy (0 when stopped).
func (c *Caddy) Pid() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil {
		return 0
	}
	return c.cmd.Process.Pid
}

// signal sends sig to Caddy's process group and waits up to timeout for the
// process to exit. It reports whether it did.
func (c *Caddy) signal(sig syscall.Signal, timeout time.Duration) bool {
	c.mu.Lock()
	cmd, done := c.cmd, c.done
	c.mu.Unlock()
	if cmd == nil {
		return true
	}
	select {
	case <-done:
	default:
		c.note("sending %v to process group %d", sig, cmd.Process.Pid)
	}
	if err := syscall.Kill(-cmd.Process.Pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		c.t.Errorf("caddy: kill -%d -%d: %v", sig, cmd.Process.Pid, err)
	}
	select {
	case <-done:
	case <-time.After(timeout):
		return false
	}
	c.mu.Lock()
	c.cmd, c.done = nil, nil
	err := c.waitErr
	c.mu.Unlock()
	c.note("exited: %v", err)
	return true
}

// Stop sends SIGTERM (a graceful shutdown: the module's Cleanup runs) and
// waits for the exit. Not exiting within stopTimeout fails the test, and
// the process is then killed.
func (c *Caddy) Stop() {
	c.t.Helper()
	if !c.signal(syscall.SIGTERM, stopTimeout) {
		c.t.Errorf("caddy: still running %s after SIGTERM; killing it", stopTimeout)
		c.kill()
	}
}

// Kill sends SIGKILL: a crash, nothing is flushed.
func (c *Caddy) Kill() {
	c.t.Helper()
	c.kill()
}

func (c *Caddy) kill() {
	if !c.signal(syscall.SIGKILL, stopTimeout) {
		c.t.Errorf("caddy: process group survived SIGKILL for %s", stopTimeout)
	}
}

// Restart starts Caddy again with the current Caddyfile, the same admin
// address and the same data directory (stopping it first, gracefully, if it
// still runs).
func (c *Caddy) Restart() {
	c.t.Helper()
	if c.Running() {
		c.Stop()
	}
	c.note("restart")
	c.start()
}

// Reload applies a new Caddyfile to the running process through
// `caddy reload --address`. {ADMIN} is filled in as in StartCaddy; a failed
// reload fails the test and leaves the old Caddyfile in place.
func (c *Caddy) Reload(caddyfile string) {
	c.t.Helper()
	if err := c.TryReload(caddyfile); err != nil {
		c.t.Fatal(err)
	}
}

// TryReload is Reload that returns the error (with Caddy's output) instead.
func (c *Caddy) TryReload(caddyfile string) error {
	c.t.Helper()
	old, err := os.ReadFile(c.ConfigPath)
	if err != nil {
		return err
	}
	c.writeConfig(caddyfile)
	c.note("reload")
	cmd := exec.Command(caddyBin, "reload", "--config", c.ConfigPath, "--adapter", "caddyfile",
		"--address", c.AdminAddr, "--force")
	cmd.Dir = c.Dir
	cmd.Env = c.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		os.WriteFile(c.ConfigPath, old, 0o644)
		return fmt.Errorf("caddy reload: %v\n%s", err, out)
	}
	return nil
}

// Logs is everything Caddy wrote to stdout and stderr in this test, across
// restarts, with the harness's === markers between runs.
func (c *Caddy) Logs() string {
	b, _ := os.ReadFile(c.LogPath)
	return string(b)
}

// Admin calls Caddy's admin endpoint and returns the status and body.
func (c *Caddy) Admin(t testing.TB, method, path string, body []byte) (int, []byte) {
	t.Helper()
	status, b, err := c.admin(method, path, body)
	if err != nil {
		t.Fatalf("admin %s %s: %v", method, path, err)
	}
	return status, b
}

var adminClient = &http.Client{
	Timeout:   10 * time.Second,
	Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
}

func (c *Caddy) admin(method, path string, body []byte) (int, []byte, error) {
	req, err := http.NewRequest(method, c.AdminURL+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := adminClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// CLIResult is the outcome of a one-shot caddy command.
type CLIResult struct {
	ExitCode int
	Output   string // stdout and stderr together
}

// CaddyCLI runs `caddy <args...>` to completion in a fresh directory with
// an isolated environment (validate provisions modules, which may open a
// store under the data dir). {DIR} in args is that directory.
func CaddyCLI(t testing.TB, args ...string) CLIResult {
	t.Helper()
	needCaddy(t)
	dir := t.TempDir()
	for i, a := range args {
		args[i] = strings.ReplaceAll(a, "{DIR}", dir)
	}
	cmd := exec.Command(caddyBin, args...)
	cmd.Dir = dir
	cmd.Env = isolatedEnv(dir, nil)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("caddy %v: %v", args, err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	var err error
	select {
	case err = <-waited:
	case <-time.After(60 * time.Second):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-waited
		t.Fatalf("caddy %v: still running after 60s\n%s", args, out.String())
	}
	res := CLIResult{Output: out.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		res.ExitCode = ee.ExitCode()
	default:
		t.Fatalf("caddy %v: %v", args, err)
	}
	return res
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// lastLine is the last line of s that is not a harness marker.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if !strings.HasPrefix(lines[i], "=== harness") {
			return lines[i]
		}
	}
	return ""
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("[... %d lines before]", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}
