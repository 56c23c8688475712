package tests

// Operating idlegate (issue #4): the admin API and CLI, Prometheus metrics
// across reloads, WebSockets, reloads under load, graceful stop, and the
// "who is online" page — against the real binary.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// opsCaddyfile is idleCaddyfile with an explicit store file and a WebSocket
// echo upstream on /ws.
const opsCaddyfile = `{
	admin 127.0.0.1:{ADMIN}
	default_bind 127.0.0.1
	grace_period 3s
}
http://127.0.0.1:{PORT} {
	idle_session {
		cookie sid
		user_header X-Idle-User
		status_path /.idlegate/status
		store bolt {STORE}
{OPTIONS}
		webhook {HOOK} {
			secret {SECRET}
		}
	}
	reverse_proxy /ws {WS}
	reverse_proxy {UP}
}
`

type opsStack struct {
	*stack
	store string
	ws    string // the echo upstream's address
	port  string
}

func startOps(t *testing.T, options ...string) *opsStack {
	t.Helper()
	needCaddy(t)
	o := &opsStack{stack: &stack{t: t, Up: NewUpstream(t), Recv: NewReceiver(t)}}
	o.store = filepath.Join(t.TempDir(), "sessions.db")
	echo := httptest.NewServer(http.HandlerFunc(wsEcho))
	t.Cleanup(echo.Close)
	o.ws = strings.TrimPrefix(echo.URL, "http://")
	o.port = strconv.Itoa(FreePort(t))
	o.Addr = "127.0.0.1:" + o.port
	o.Caddy = StartCaddy(t, o.config(options...))
	o.C = NewClient("http://" + o.Addr)
	return o
}

func (o *opsStack) config(options ...string) string {
	lines := make([]string, len(options))
	for i, l := range options {
		lines[i] = "\t\t" + l
	}
	return Render(o.t, opsCaddyfile, map[string]string{
		"PORT": o.port, "UP": o.Up.Addr, "WS": o.ws, "HOOK": o.Recv.Hook(), "SECRET": TestSecret,
		"STORE": o.store, "OPTIONS": strings.Join(lines, "\n"),
	})
}

// wsEcho is the WebSocket application: it echoes every message.
func wsEcho(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer c.CloseNow()
	for {
		typ, b, err := c.Read(r.Context())
		if err != nil {
			return
		}
		if err := c.Write(r.Context(), typ, b); err != nil {
			return
		}
	}
}

// wsClient is an open WebSocket through Caddy whose reads run in the
// background: closed receives the error that ended it.
type wsClient struct {
	c      *websocket.Conn
	echoes atomic.Int64
	closed chan error
}

func (o *opsStack) dialWS(sid string) *wsClient {
	o.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws://"+o.Addr+"/ws", &websocket.DialOptions{
		HTTPHeader: http.Header{"Cookie": {UpstreamCookie + "=" + sid}},
		HTTPClient: &http.Client{Transport: &http.Transport{Proxy: nil}},
	})
	if err != nil {
		o.t.Fatalf("websocket through caddy: %v (%v)", err, resp)
	}
	w := &wsClient{c: c, closed: make(chan error, 1)}
	go func() {
		for {
			_, _, err := c.Read(context.Background())
			if err != nil {
				w.closed <- err
				return
			}
			w.echoes.Add(1)
		}
	}()
	o.t.Cleanup(func() { c.CloseNow() })
	return w
}

func (w *wsClient) send(t *testing.T, msg string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return w.c.Write(ctx, websocket.MessageText, []byte(msg))
}

// waitClosed waits for the server to close the WebSocket and returns the
// close status (-1 when it was not a close frame).
func (w *wsClient) waitClosed(t *testing.T, d time.Duration) (websocket.StatusCode, time.Time) {
	t.Helper()
	select {
	case err := <-w.closed:
		return websocket.CloseStatus(err), time.Now()
	case <-time.After(d):
		t.Fatalf("the WebSocket is still open after %s", d)
	}
	return 0, time.Time{}
}

func (w *wsClient) isOpen() bool {
	select {
	case err := <-w.closed:
		w.closed <- err
		return false
	default:
		return true
	}
}

// listSessions calls GET /idle-sessions/ with query q.
func (o *opsStack) listSessions(q string) adminList {
	o.t.Helper()
	code, body := o.Caddy.Admin(o.t, http.MethodGet, "/idle-sessions/"+q, nil)
	if code != http.StatusOK {
		o.t.Fatalf("GET /idle-sessions/%s: %d %s", q, code, body)
	}
	var l adminList
	if err := json.Unmarshal(body, &l); err != nil {
		o.t.Fatalf("list: %v: %s", err, body)
	}
	return l
}

type adminList struct {
	Sessions []struct {
		Session          string    `json:"session"`
		Zone             string    `json:"zone"`
		User             *string   `json:"user"`
		StartedAt        time.Time `json:"started_at"`
		LastActivityAt   time.Time `json:"last_activity_at"`
		ExpiresAt        time.Time `json:"expires_at"`
		RemainingSeconds int64     `json:"remaining_seconds"`
		Requests         int       `json:"requests"`
	} `json:"sessions"`
	Count int `json:"count"`
}

func (o *opsStack) revokeUser(user string) int {
	o.t.Helper()
	code, body := o.Caddy.Admin(o.t, http.MethodDelete, "/idle-sessions/?user="+user, nil)
	var r struct{ Revoked int }
	if code != http.StatusOK || json.Unmarshal(body, &r) != nil {
		o.t.Fatalf("revoke user %s: %d %s", user, code, body)
	}
	return r.Revoked
}

func TestOpsWebSocketClosedOnRevoke(t *testing.T) {
	o := startOps(t, "idle 1m")
	sid, _ := o.login("42")
	other, _ := o.login("7")
	ws := o.dialWS(sid)
	kept := o.dialWS(other)
	if err := ws.send(t, "hello"); err != nil {
		t.Fatal(err)
	}
	Eventually(t, 5*time.Second, 20*time.Millisecond, func() error {
		if ws.echoes.Load() != 1 {
			return fmt.Errorf("no echo through caddy yet")
		}
		return nil
	})

	if n := o.revokeUser("42"); n != 1 {
		t.Fatalf("revoked %d sessions, want 1", n)
	}
	code, _ := ws.waitClosed(t, 5*time.Second)
	if code != websocket.StatusPolicyViolation {
		t.Errorf("close status %d, want 1008 (policy violation)", code)
	}
	checkEnded(t, o.Recv.WaitEvents(t, 1, 10*time.Second)[0], sid, "42", "revoked")
	if r := o.C.Get(t, "/ws", WithCookie(UpstreamCookie, sid), WithHeader("Connection", "Upgrade"), WithHeader("Upgrade", "websocket")); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("upgrade with the revoked cookie: %d, want 401", r.StatusCode)
	}
	// The other user's WebSocket is untouched.
	if err := kept.send(t, "still here"); err != nil || !kept.isOpen() {
		t.Fatalf("user 7's WebSocket: %v", err)
	}
	Eventually(t, 5*time.Second, 20*time.Millisecond, func() error {
		if kept.echoes.Load() != 1 {
			return fmt.Errorf("no echo on user 7's WebSocket")
		}
		return nil
	})

	// One structured line per end, with the hashed session, and no raw
	// cookie value anywhere in the log.
	Eventually(t, 5*time.Second, 50*time.Millisecond, func() error {
		for _, line := range strings.Split(o.Caddy.Logs(), "\n") {
			if !strings.Contains(line, `"msg":"session ended"`) {
				continue
			}
			var l map[string]any
			if err := json.Unmarshal([]byte(line), &l); err != nil {
				return fmt.Errorf("session end log is not JSON: %s", line)
			}
			if l["reason"] != "revoked" || l["user"] != "42" || l["zone"] != UpstreamCookie || l["duration_seconds"] == nil ||
				len(fmt.Sprint(l["session"])) != 16 {
				return fmt.Errorf("session end log: %s", line)
			}
			return nil
		}
		return fmt.Errorf("no session ended line in the log")
	})
	for _, v := range []string{sid, other} {
		if strings.Contains(o.Caddy.Logs(), v) {
			t.Errorf("the log carries a raw session ID")
		}
	}
}

func TestOpsWebSocketActivity(t *testing.T) {
	t.Run("counted", func(t *testing.T) {
		o := startOps(t, "idle 2s", "websocket_activity")
		sid, _ := o.login("42")
		ws := o.dialWS(sid)
		// 4 s of client frames, twice the idle timeout.
		tick := time.NewTicker(300 * time.Millisecond)
		defer tick.Stop()
		var last time.Time
		for end := time.Now().Add(4 * time.Second); time.Now().Before(end); <-tick.C {
			if err := ws.send(t, "ping"); err != nil {
				t.Fatalf("the WebSocket broke while in use: %v", err)
			}
			last = time.Now()
		}
		tick.Stop()
		if !ws.isOpen() || !o.status(sid).Active {
			t.Fatal("frames did not keep the session alive with websocket_activity")
		}
		// Silence: the session idles out and the WebSocket is closed.
		code, closedAt := ws.waitClosed(t, 10*time.Second)
		if code != websocket.StatusPolicyViolation {
			t.Errorf("close status %d, want 1008", code)
		}
		ev := o.Recv.WaitEvents(t, 1, 10*time.Second)[0]
		checkEnded(t, ev, sid, "42", "idle")
		near(t, "last_activity_at", ev.Data.LastActivityAt, last, tsTol)
		t.Logf("closed %s after the last frame", closedAt.Sub(last).Round(time.Millisecond))
	})
	t.Run("not counted", func(t *testing.T) {
		o := startOps(t, "idle 2s")
		sid, loginAt := o.login("42")
		ws := o.dialWS(sid)
		opened := time.Now()
		tick := time.NewTicker(300 * time.Millisecond)
		defer tick.Stop()
		for ws.isOpen() && time.Since(opened) < 8*time.Second {
			ws.send(t, "ping") // may fail once the server closed
			<-tick.C
		}
		code, closedAt := ws.waitClosed(t, time.Second)
		if code != websocket.StatusPolicyViolation {
			t.Errorf("close status %d, want 1008", code)
		}
		if closedAt.Sub(opened) > 2*time.Second+tsTol {
			t.Errorf("closed %s after opening: frames were counted as activity", closedAt.Sub(opened))
		}
		ev := o.Recv.WaitEvents(t, 1, 10*time.Second)[0]
		checkEnded(t, ev, sid, "42", "idle")
		near(t, "last_activity_at", ev.Data.LastActivityAt, loginAt, tsTol)
	})
}

// metricValue finds name{labels} in a Prometheus text exposition.
func metricValue(body, name string, labels ...string) (float64, bool) {
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
next:
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		for _, l := range labels {
			if !strings.Contains(line[:sp], l) {
				continue next
			}
		}
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		return v, err == nil
	}
	return 0, false
}

func (o *opsStack) scrape() string {
	o.t.Helper()
	code, body := o.Caddy.Admin(o.t, http.MethodGet, "/metrics", nil)
	if code != http.StatusOK {
		o.t.Fatalf("GET /metrics: %d %s", code, body)
	}
	return string(body)
}

func TestOpsMetricsAcrossReload(t *testing.T) {
	o := startOps(t, "idle 1m")
	o.login("42")
	o.login("42")
	o.login("7")
	o.revokeUser("7")
	o.Recv.WaitEvents(t, 1, 10*time.Second)

	want := func(body string, v float64, name string, labels ...string) {
		t.Helper()
		got, ok := metricValue(body, name, labels...)
		if !ok || got != v {
			t.Errorf("%s%v = %v (found %v), want %v", name, labels, got, ok, v)
		}
	}
	var before string
	Eventually(t, 5*time.Second, 50*time.Millisecond, func() error {
		before = o.scrape()
		if v, _ := metricValue(before, "caddy_idle_session_webhook_deliveries_total", `outcome="success"`); v != 1 {
			return fmt.Errorf("deliveries{success} = %v", v)
		}
		return nil
	})
	want(before, 2, "caddy_idle_session_active", `zone="sid"`)
	want(before, 1, "caddy_idle_session_ended_total", `zone="sid"`, `reason="revoked"`)
	want(before, 0, "caddy_idle_session_webhook_pending")
	want(before, 1, "caddy_idle_session_webhook_lag_seconds_count")
	if v, ok := metricValue(before, "caddy_idle_session_memory_bytes"); !ok || v <= 0 {
		t.Errorf("caddy_idle_session_memory_bytes = %v (found %v), want > 0 with sessions tracked", v, ok)
	}

	// Reload with a different idle timeout: no duplicate-registration
	// panic, nothing reset, nothing stuck.
	o.Caddy.Reload(o.config("idle 2m"))
	after := o.scrape()
	want(after, 2, "caddy_idle_session_active", `zone="sid"`)
	want(after, 1, "caddy_idle_session_ended_total", `zone="sid"`, `reason="revoked"`)
	want(after, 1, "caddy_idle_session_webhook_deliveries_total", `outcome="success"`)

	o.revokeUser("42")
	sid, _ := o.login("9")
	opt, _ := Probe()
	o.C.Get(t, "/", WithCookie(UpstreamCookie, "never-issued-"+sid), opt) // adopted, not refused
	o.C.Post(t, "/logout", WithCookie(UpstreamCookie, sid))
	o.C.Get(t, "/", WithCookie(UpstreamCookie, sid)) // refused: logged out
	o.Recv.WaitEvents(t, 4, 10*time.Second)
	Eventually(t, 5*time.Second, 50*time.Millisecond, func() error {
		b := o.scrape()
		for _, c := range []struct {
			v      float64
			name   string
			labels []string
		}{
			{3, "caddy_idle_session_ended_total", []string{`zone="sid"`, `reason="revoked"`}},
			{1, "caddy_idle_session_ended_total", []string{`zone="sid"`, `reason="logout"`}},
			{1, "caddy_idle_session_rejected_total", []string{`zone="sid"`, `reason="logout"`}},
			{4, "caddy_idle_session_webhook_deliveries_total", []string{`outcome="success"`}},
			{0, "caddy_idle_session_active", []string{`zone="sid"`}},
		} {
			if v, ok := metricValue(b, c.name, c.labels...); !ok || v != c.v {
				return fmt.Errorf("after the reload %s%v = %v, want %v", c.name, c.labels, v, c.v)
			}
		}
		return nil
	})
	if !o.Caddy.Running() {
		t.Fatal("caddy died")
	}
}

func TestOpsReloadUnderLoad(t *testing.T) {
	o := startOps(t, "idle 1m")
	var sids []string
	for i := range 12 {
		sid, _ := o.login(strconv.Itoa(100 + i))
		sids = append(sids, sid)
	}
	// Events that wait in the outbox across the reloads.
	o.Recv.Fail(http.StatusServiceUnavailable, "1")
	var queued []string
	for i := range 4 {
		sid, _ := o.login("9" + strconv.Itoa(i))
		queued = append(queued, sid)
		o.revokeUser("9" + strconv.Itoa(i))
	}

	var (
		wg               sync.WaitGroup
		stop             atomic.Bool
		total, bad, errs atomic.Int64
		dropped          atomic.Int64
		firstBad         atomic.Value
	)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; !stop.Load(); i++ {
				r, err := o.C.Try(http.MethodGet, "/", WithCookie(UpstreamCookie, sids[i%len(sids)]))
				if err != nil {
					// A connection the old server accepted as it shut down
					// can be closed unanswered (Caddy's listener handover,
					// not idlegate); a browser retries such a GET. Count it,
					// retry once, and fail only if the retry fails too.
					dropped.Add(1)
					r, err = o.C.Try(http.MethodGet, "/", WithCookie(UpstreamCookie, sids[i%len(sids)]))
				}
				total.Add(1)
				switch {
				case err != nil:
					errs.Add(1)
					firstBad.CompareAndSwap(nil, err.Error())
				case r.StatusCode != http.StatusOK:
					bad.Add(1)
					firstBad.CompareAndSwap(nil, r.String())
				}
			}
		}()
	}
	idles := []string{"idle 2m", "idle 90s", "idle 3m"}
	for _, idle := range idles {
		o.Caddy.Reload(o.config(idle))
	}
	// A little load after the last reload too, so every config served some.
	n := total.Load()
	Eventually(t, 10*time.Second, 20*time.Millisecond, func() error {
		if total.Load() < n+50 {
			return fmt.Errorf("only %d requests since the last reload", total.Load()-n)
		}
		return nil
	})
	stop.Store(true)
	wg.Wait()
	t.Logf("%d requests over %d reloads: %d refused, %d transport errors after a retry (%d connections dropped once)",
		total.Load(), len(idles), bad.Load(), errs.Load(), dropped.Load())
	if bad.Load() != 0 || errs.Load() != 0 {
		t.Fatalf("live sessions refused or dropped during reloads: %d refused, %d errors; first: %v", bad.Load(), errs.Load(), firstBad.Load())
	}

	// Every session and its deadline survived, under the new setting.
	l := o.listSessions("")
	if l.Count != len(sids) {
		t.Fatalf("%d sessions after the reloads, want %d", l.Count, len(sids))
	}
	for _, s := range l.Sessions {
		if d := s.ExpiresAt.Sub(s.LastActivityAt); d != 3*time.Minute {
			t.Errorf("session %s: expires %s after its last activity, want the new idle 3m", s.Session, d)
		}
	}
	if st := o.status(sids[0]); st.IdleTimeoutSeconds != 180 || st.RemainingSeconds < 170 {
		t.Errorf("status after reload: %+v", st)
	}

	// The events queued before the reloads are all delivered, once each.
	o.Recv.Succeed()
	evs := o.Recv.WaitEvents(t, len(queued), 30*time.Second)
	users := map[string]int{}
	for _, ev := range evs {
		users[ev.Data.User]++
		if ev.Data.Reason != "revoked" {
			t.Errorf("event %s: reason %s", ev.ID, ev.Data.Reason)
		}
	}
	for i := range queued {
		if u := "9" + strconv.Itoa(i); users[u] != 1 {
			t.Errorf("user %s: %d session.ended events, want 1 (%s)", u, users[u], o.Recv.Summary())
		}
	}
}

func TestOpsValidateWhileRunning(t *testing.T) {
	o := startOps(t, "idle 1m")
	start := time.Now()
	res := CaddyCLI(t, "validate", "--config", o.Caddy.ConfigPath, "--adapter", "caddyfile")
	took := time.Since(start)
	t.Logf("caddy validate while caddy runs: exit %d after %s:\n%s", res.ExitCode, took.Round(time.Millisecond), lastLine(res.Output))
	if res.ExitCode == 0 || !strings.Contains(res.Output, "locked by another process") || !strings.Contains(res.Output, o.store) {
		t.Errorf("want a clear failure naming the locked store file, got exit %d:\n%s", res.ExitCode, res.Output)
	}
	if took > 20*time.Second {
		t.Errorf("validate took %s", took)
	}
	// The running Caddy is unaffected.
	sid, _ := o.login("42")
	o.page(sid)
}

func TestOpsGracefulStopFlushes(t *testing.T) {
	o := startOps(t, "idle 1m")
	sid, _ := o.login("42")
	o.login("7")
	// A delivery in flight at stop: the receiver hangs.
	o.Recv.Hang()
	o.revokeUser("7")
	o.Recv.WaitAttempts(t, 1, 10*time.Second)
	// Activity that only memory knows of (the flush interval is 1 s).
	last := o.page(sid).At
	stopAt := time.Now()
	o.Caddy.Stop()
	t.Logf("stopped in %s with a webhook attempt in flight", time.Since(stopAt).Round(time.Millisecond))
	if time.Since(stopAt) > 10*time.Second {
		t.Errorf("stop took %s", time.Since(stopAt))
	}

	o.Recv.Succeed()
	o.Caddy.Restart()
	l := o.listSessions("?user=42")
	if l.Count != 1 {
		t.Fatalf("user 42 after restart: %+v", l)
	}
	near(t, "last_activity_at after stop", l.Sessions[0].LastActivityAt, last, 500*time.Millisecond)
	if l.Sessions[0].Requests != 2 {
		t.Errorf("requests = %d after restart, want 2 (login + page)", l.Sessions[0].Requests)
	}
	// The abandoned attempt was handed back and is delivered now.
	ev := o.Recv.WaitEvents(t, 1, 20*time.Second)[0]
	if ev.Data.User != "7" || ev.Data.Reason != "revoked" {
		t.Errorf("event after restart: %s", ev.Raw)
	}
}
