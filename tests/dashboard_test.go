package tests

// Issue #19: the operator's dashboard (integrations/grafana/idlegate.json)
// and alert rules (integrations/prometheus/idlegate-rules.yml) against a
// real Prometheus (Debian's `prometheus` package) scraping the built
// idlegate: promtool accepts the rules and their unit tests, Prometheus
// loads them, every dashboard query returns data once sessions have
// started, ended and been refused and webhooks have been delivered and
// dead-lettered, and the dead-letter alert fires.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const dashboardCaddyfile = `{
	admin 127.0.0.1:{ADMIN}
	default_bind 127.0.0.1
	grace_period 3s
}
http://127.0.0.1:{PORT_A} {
	idle_session {
		cookie sid
		name shop
		idle 2s
		user_header X-Idle-User
		logout {
			method POST
			path /logout
		}
		webhook {HOOK} {
			secret {SECRET}
			events ended started
		}
	}
	reverse_proxy {UP}
}
http://127.0.0.1:{PORT_B} {
	idle_session {
		cookie sid
		name admin
		idle 2s
		user_header X-Idle-User
		logout {
			method POST
			path /logout
		}
		webhook http://127.0.0.1:{DEAD}/hook {
			secret {SECRET}
			timeout 1s
			max_attempts 1
		}
	}
	reverse_proxy {UP}
}
`

// needBinary finds a command (prometheus, promtool, composer, npm); outside
// CI a missing one skips the test, in CI it fails it.
func needBinary(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	missing(t, fmt.Sprintf("%s not found in PATH: tests/apps/setup.sh installs it (Debian packages)", name))
	return ""
}

// missing skips t outside CI and fails it in CI (env CI set), where every
// tool the tests need is installed by .ci/run.
func missing(t *testing.T, msg string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

func integrationsDir(t *testing.T, sub string) string {
	t.Helper()
	d, err := filepath.Abs(filepath.Join("..", "integrations", sub))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestPrometheusRules runs promtool on the rules and their unit tests.
func TestPrometheusRules(t *testing.T) {
	promtool := needBinary(t, "promtool")
	dir := integrationsDir(t, "prometheus")
	for _, args := range [][]string{
		{"check", "rules", "idlegate-rules.yml"},
		{"test", "rules", "idlegate-rules.test.yml"},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "SUCCESS") {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// Prometheus is one prometheus process owned by one test.
type Prometheus struct {
	URL  string
	cmd  *exec.Cmd
	done chan struct{}
	log  string
}

// StartPrometheus runs prometheus on a free 127.0.0.1 port with its own
// data directory, scraping target's /metrics every second and evaluating
// the rule files every second.
func StartPrometheus(t *testing.T, target string, rules ...string) *Prometheus {
	t.Helper()
	bin := needBinary(t, "prometheus")
	dir := t.TempDir()
	quoted := make([]string, len(rules))
	for i, r := range rules {
		quoted[i] = strconv.Quote(r)
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 900ms
  evaluation_interval: 1s
rule_files: [%s]
scrape_configs:
  - job_name: idlegate
    metrics_path: /metrics
    static_configs:
      - targets: [%q]
`, strings.Join(quoted, ", "), target)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(FreePort(t))
	p := &Prometheus{URL: "http://" + addr, log: filepath.Join(dir, "prometheus.log"), done: make(chan struct{})}
	logf, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(bin, "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--storage.tsdb.retention.time=1h", "--log.level=warn")
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(15 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
		}
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(p.log)
			t.Logf("prometheus log:\n%s", tail(string(b), 40))
		}
	})
	Eventually(t, startTimeout, 100*time.Millisecond, func() error {
		select {
		case <-p.done:
			b, _ := os.ReadFile(p.log)
			t.Fatalf("prometheus exited during start-up:\n%s", tail(string(b), 30))
		default:
		}
		resp, err := http.Get(p.URL + "/-/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/-/ready: %d", resp.StatusCode)
		}
		return nil
	})
	return p
}

// promSample is one element of an instant vector.
type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

func (s promSample) float() float64 {
	v, _ := s.Value[1].(string)
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return math.NaN()
	}
	return f
}

// api GETs a Prometheus HTTP API path and decodes its "data".
func (p *Prometheus) api(path string, q url.Values, data any) error {
	u := p.URL + path
	if q != nil {
		u += "?" + q.Encode()
	}
	resp, err := http.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var env struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		return fmt.Errorf("%s: %d %s", path, resp.StatusCode, b)
	}
	if env.Status != "success" {
		return fmt.Errorf("%s: %s", path, env.Error)
	}
	return json.Unmarshal(env.Data, data)
}

// Query runs an instant query now.
func (p *Prometheus) Query(expr string) ([]promSample, error) {
	var d struct {
		ResultType string       `json:"resultType"`
		Result     []promSample `json:"result"`
	}
	if err := p.api("/api/v1/query", url.Values{"query": {expr}}, &d); err != nil {
		return nil, err
	}
	if d.ResultType != "vector" {
		return nil, fmt.Errorf("result type %s", d.ResultType)
	}
	return d.Result, nil
}

type dashboardQuery struct {
	Panel, Legend, Expr string
}

// dashboardQueries are the PromQL expressions of every panel, with
// Grafana's variables replaced the way Grafana would for "All" zones.
func dashboardQueries(t *testing.T) []dashboardQuery {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(integrationsDir(t, "grafana"), "idlegate.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr   string `json:"expr"`
				Legend string `json:"legendFormat"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("idlegate.json: %v", err)
	}
	vars := strings.NewReplacer("$zone", ".*", "$__rate_interval", "2m", "$__range", "15m")
	var out []dashboardQuery
	for _, p := range d.Panels {
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			out = append(out, dashboardQuery{Panel: p.Title, Legend: tg.Legend, Expr: vars.Replace(tg.Expr)})
		}
	}
	if len(out) < 10 {
		t.Fatalf("only %d dashboard queries", len(out))
	}
	return out
}

func TestDashboardAgainstPrometheus(t *testing.T) {
	needCaddy(t)
	needBinary(t, "prometheus")
	queries := dashboardQueries(t)
	up, recv := NewUpstream(t), NewReceiver(t)
	portA, portB := strconv.Itoa(FreePort(t)), strconv.Itoa(FreePort(t))
	c := StartCaddy(t, Render(t, dashboardCaddyfile, map[string]string{
		"PORT_A": portA, "PORT_B": portB, "UP": up.Addr, "HOOK": recv.Hook(),
		"SECRET": TestSecret, "DEAD": strconv.Itoa(FreePort(t)), // nothing listens there
	}))
	prom := StartPrometheus(t, c.AdminAddr, filepath.Join(integrationsDir(t, "prometheus"), "idlegate-rules.yml"))

	// Prometheus scrapes idlegate.
	Eventually(t, 30*time.Second, 250*time.Millisecond, func() error {
		s, err := prom.Query(`up{job="idlegate"}`)
		if err != nil {
			return err
		}
		if len(s) != 1 || s[0].float() != 1 {
			return fmt.Errorf("up = %+v", s)
		}
		return nil
	})

	shop, admin := NewClient("http://127.0.0.1:"+portA), NewClient("http://127.0.0.1:"+portB)
	login := func(c *Client, user string) string {
		r := c.Post(t, "/login?user="+user)
		ck := r.SetCookie(UpstreamCookie)
		if r.StatusCode != http.StatusOK || ck == nil {
			t.Fatalf("login %s: %s", user, r)
		}
		return ck.Value
	}
	// shop: one session logs out, one goes idle and is replayed (a
	// refusal), one stays active until the end of the test.
	out := login(shop, "42")
	if r := shop.Post(t, "/logout", WithCookie(UpstreamCookie, out)); r.StatusCode != http.StatusNoContent {
		t.Fatalf("logout: %s", r)
	}
	idle := login(shop, "43")
	live := login(shop, "44")
	// admin: its webhook goes nowhere, so the end becomes a dead letter.
	gone := login(admin, "7")
	if r := admin.Post(t, "/logout", WithCookie(UpstreamCookie, gone)); r.StatusCode != http.StatusNoContent {
		t.Fatalf("logout (admin zone): %s", r)
	}
	// live stays active (idle 2s) for the rest of the test.
	stop := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(400 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				shop.Try(http.MethodGet, "/", WithCookie(UpstreamCookie, live))
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-stopped })
	recv.WaitEvents(t, 5, 30*time.Second) // 3 started, the logout and the idle end
	Eventually(t, 30*time.Second, 250*time.Millisecond, func() error {
		r := shop.Get(t, "/", WithCookie(UpstreamCookie, idle))
		if r.StatusCode != http.StatusUnauthorized {
			return fmt.Errorf("idle session not refused yet: %s", r)
		}
		return nil
	})

	// Every panel's query returns data through Prometheus's API.
	var last map[string]string
	Eventually(t, 90*time.Second, time.Second, func() error {
		last = map[string]string{}
		var missing []string
		for _, q := range queries {
			s, err := prom.Query(q.Expr)
			switch {
			case err != nil:
				return fmt.Errorf("%s: %q: %w", q.Panel, q.Expr, err) // a bad query: report it
			case len(s) == 0:
				missing = append(missing, fmt.Sprintf("%s [%s]: no data", q.Panel, q.Legend))
			case math.IsNaN(s[0].float()):
				missing = append(missing, fmt.Sprintf("%s [%s]: NaN", q.Panel, q.Legend))
			default:
				var vals []string
				for _, x := range s {
					vals = append(vals, fmt.Sprintf("%v=%g", x.Metric, x.float()))
				}
				last[q.Panel+" ["+q.Legend+"]"] = strings.Join(vals, " ")
			}
		}
		if len(missing) > 0 {
			return errors.New(strings.Join(missing, "; "))
		}
		return nil
	})
	for k, v := range last {
		t.Logf("%s: %s", k, v)
	}

	// The values say what happened, not just that something is there.
	for _, w := range []struct {
		expr   string
		series []string // fmt.Sprint of each label set that must be >= 1
	}{
		{`sum by (zone, reason) (caddy_idle_session_ended_total)`,
			[]string{"map[reason:logout zone:shop]", "map[reason:idle zone:shop]", "map[reason:logout zone:admin]"}},
		{`sum by (reason) (caddy_idle_session_rejected_total{zone="shop"})`, []string{"map[reason:idle]"}},
		{`sum by (outcome) (caddy_idle_session_webhook_deliveries_total)`, []string{"map[outcome:success]", "map[outcome:dead]"}},
		{`sum(caddy_idle_session_active{zone="shop"})`, []string{"map[]"}},
		{`sum(caddy_idle_session_webhook_lag_seconds_count)`, []string{"map[]"}},
	} {
		s, err := prom.Query(w.expr)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range w.series {
			found := false
			for _, x := range s {
				found = found || (fmt.Sprint(x.Metric) == want && x.float() >= 1)
			}
			if !found {
				t.Errorf("%s: no series %s >= 1 in %+v", w.expr, want, s)
			}
		}
	}

	// The dashboard's own "in range" counts see the first event of each
	// label set (see the panel descriptions).
	for _, q := range queries {
		min, ok := map[string]float64{"Session ends (range)": 3, "Refused requests (range)": 1, "Dead letters (range)": 1}[q.Panel]
		if !ok {
			continue
		}
		s, err := prom.Query(q.Expr)
		if err != nil || len(s) != 1 || s[0].float() < min {
			t.Errorf("%s: %+v %v, want a value >= %g", q.Panel, s, err, min)
		}
	}

	// The rules are loaded and evaluate; the dead letter fires its alert
	// and nothing else does.
	Eventually(t, 60*time.Second, time.Second, func() error {
		var rules struct {
			Groups []struct {
				Rules []struct {
					Name      string `json:"name"`
					Health    string `json:"health"`
					LastError string `json:"lastError"`
					State     string `json:"state"`
				} `json:"rules"`
			} `json:"groups"`
		}
		if err := prom.api("/api/v1/rules", nil, &rules); err != nil {
			return err
		}
		states := map[string]string{}
		for _, g := range rules.Groups {
			for _, r := range g.Rules {
				if r.Health != "ok" {
					return fmt.Errorf("rule %s: health %q %s", r.Name, r.Health, r.LastError)
				}
				states[r.Name] = r.State
			}
		}
		wantStates := map[string]string{
			"IdlegateWebhookDeadLetters":     "firing",
			"IdlegateWebhooksPendingGrowing": "inactive",
			"IdlegateStoreErrors":            "inactive",
		}
		if fmt.Sprint(states) != fmt.Sprint(wantStates) {
			return fmt.Errorf("rule states %v, want %v", states, wantStates)
		}
		return nil
	})
}
