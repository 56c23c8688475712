package caddymodule

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"

	"github.com/idlegate/idlegate/engine"
)

// zoneSites is a config with one site per body, each proxying to up.
func zoneSites(up string, bodies ...string) string {
	hosts := []string{"localhost", "127.0.0.1"}
	var b strings.Builder
	b.WriteString("{\n\tadmin localhost:2999\n\thttp_port 9080\n\tskip_install_trust\n}\n")
	for i, body := range bodies {
		b.WriteString("http://" + hosts[i] + ":9080 {\n\tidle_session {\n" + body + "\n\t}\n\treverse_proxy " + strings.TrimPrefix(up, "http://") + "\n}\n")
	}
	return b.String()
}

// loadCaddyfile posts cfg to the admin endpoint as a reload does and
// returns Caddy's answer when it refuses it.
func loadCaddyfile(t *testing.T, cfg string) (int, string) {
	t.Helper()
	resp, err := http.Post("http://localhost:2999/load", "text/caddyfile", strings.NewReader(cfg))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var e struct{ Error string }
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		return resp.StatusCode, e.Error
	}
	return resp.StatusCode, string(body)
}

// runningZone returns zone name of the engine of bolt file db.
func runningZone(t *testing.T, db, name string) (*sharedEngine, *engine.Zone, bool) {
	t.Helper()
	var se *sharedEngine
	engines.Range(func(k, v any) bool {
		if k == "bolt:"+db {
			se = v.(*sharedEngine)
		}
		return true
	})
	if se == nil {
		t.Fatalf("no engine for %s", db)
	}
	z, ok := se.engine.Zone(name)
	return se, z, ok
}

func TestOneConfigCannotGiveOneZoneTwoSettings(t *testing.T) {
	useFakeClock(t)
	up := newApp(t)
	db := filepath.Join(t.TempDir(), "s.db")
	site := func(idle, hook string) string {
		return "\t\tcookie sid\n\t\tidle " + idle + "\n\t\tstore bolt " + db + "\n" + hook
	}
	tc := caddytest.NewTester(t)
	tc.InitServer(zoneSites(up.URL, site("30m", "")), "caddyfile")

	// In a Caddyfile, both directives are named by file and line.
	code, body := loadCaddyfile(t, zoneSites(up.URL, site("5m", ""), site("10m", "\t\twebhook http://127.0.0.1:1/b {\n\t\t\tsecret "+testSecret+"\n\t\t}\n")))
	if code == http.StatusOK {
		t.Fatal("two sites giving zone sid different settings must fail at load")
	}
	for _, want := range []string{`zone "sid" is configured twice`, "the idle_session at Caddyfile:7 (idle 5m0s", "the idle_session at Caddyfile:16 (idle 10m0s", "no webhook", "webhook http://127.0.0.1:1/b"} {
		if !strings.Contains(body, want) {
			t.Errorf("load error %q should contain %q", body, want)
		}
	}
	if strings.Contains(body, strings.TrimPrefix(testSecret, "whsec_")) {
		t.Errorf("the load error must not show the secret: %q", body)
	}
	// In JSON, Provision finds it, naming the handlers by cookie, server
	// and settings.
	handler := func(idle string) string {
		return fmt.Sprintf(`{"handler": "idle_session", "cookie": "sid", "idle": %q, "store": {"type": "bolt", "path": %q}}`, idle, db)
	}
	js := fmt.Sprintf(`{"admin": {"listen": "localhost:2999"}, "apps": {"http": {"servers": {"srv0": {"listen": [":9080"], "routes": [
		{"match": [{"host": ["localhost"]}], "handle": [%s]},
		{"match": [{"host": ["127.0.0.1"]}], "handle": [%s]}]}}}}}`, handler("5m"), handler("10m"))
	resp, err := http.Post("http://localhost:2999/load", "application/json", strings.NewReader(js))
	if err != nil {
		t.Fatal(err)
	}
	jbody, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`http.handlers.idle_session: zone \"sid\" is configured twice`, "the idle_session with cookie sid on the server listening on :9080 (idle 5m0s", "(idle 10m0s"} {
		if resp.StatusCode == http.StatusOK || !strings.Contains(string(jbody), want) {
			t.Errorf("JSON load: %d %s, want %q", resp.StatusCode, jbody, want)
		}
	}
	// The refused config leaves the running one's settings in force.
	if _, z, ok := runningZone(t, db, "sid"); !ok || z.Config().Policy.Idle != 30*time.Minute {
		t.Fatalf("after a refused reload zone sid keeps idle 30m: %v %v", ok, z.Config().Policy.Idle)
	}

	// Alike settings share the zone; their own zones separate them.
	if code, body := loadCaddyfile(t, zoneSites(up.URL, site("5m", ""), site("5m", ""))); code != http.StatusOK {
		t.Fatalf("alike settings share a zone: %d %s", code, body)
	}
	if code, body := loadCaddyfile(t, zoneSites(up.URL, site("5m", "\t\tzone shop\n"), site("10m", "\t\tname blog\n"))); code != http.StatusOK {
		t.Fatalf("their own zones (zone, or its alias name): %d %s", code, body)
	}
	for _, name := range []string{"shop", "blog"} {
		if _, _, ok := runningZone(t, db, name); !ok {
			t.Fatalf("zone %s runs", name)
		}
	}
	if _, _, ok := runningZone(t, db, "sid"); ok {
		t.Fatal("zone sid, which no config names any more, is released")
	}
}

func TestZoneDroppedByReloadWaitsAndDeliversWhenBack(t *testing.T) {
	clk := useFakeClock(t)
	up, rc := newApp(t), newReceiver(t)
	var refused atomic.Int32
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		refused.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(down.Close)
	db := filepath.Join(t.TempDir(), "s.db")
	site := func(zone, hook string) string {
		return "\t\tcookie sid\n\t\tzone " + zone + "\n\t\tuser_header X-Idle-User\n\t\tlogout {\n\t\t\tpath /logout\n\t\t}\n\t\tstore bolt " + db +
			"\n\t\twebhook " + hook + " {\n\t\t\tsecret " + testSecret + "\n\t\t}\n"
	}
	tc := caddytest.NewTester(t)
	tc.InitServer(zoneSites(up.URL, site("a", down.URL)), "caddyfile")
	sid := login(t, tc, "42")
	do(t, tc, "POST", "/logout", sid)
	deadline := time.Now().Add(10 * time.Second)
	for refused.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the logout's webhook was never attempted")
		}
		time.Sleep(10 * time.Millisecond)
	}

	// A reload names only zone b: zone a stops, and its event has no
	// target while it waits in the outbox.
	tc.InitServer(zoneSites(up.URL, site("b", rc.URL)), "caddyfile")
	se, _, ok := runningZone(t, db, "a")
	if ok {
		t.Fatal("zone a, which no config names, is released")
	}
	if _, ok := se.targets("a"); ok {
		t.Fatal("a released zone has no webhook target")
	}
	if p, _, _ := se.store.OutboxStats(t.Context()); p != 1 {
		t.Fatalf("its event waits in the outbox: %d pending", p)
	}
	if _, kept := families.Load("bolt:" + db + "\x00a"); kept {
		t.Fatal("the released zone's cookie family is still held")
	}
	if _, held := families.Load("bolt:" + db + "\x00b"); !held {
		t.Fatal("the running zone b has no cookie family")
	}

	// Zone a is back, with a working receiver: the event that waited is
	// delivered there once due.
	tc.InitServer(zoneSites(up.URL, site("a", rc.URL)), "caddyfile")
	clk.advance(time.Hour)
	evs := rc.wait(t, 1)
	if data := evs[0]["data"].(map[string]any); data["zone"] != "a" || data["reason"] != "logout" {
		t.Fatalf("the waiting event: %v", evs[0])
	}
}

func TestStoreKeyCoversEveryConnectionSetting(t *testing.T) {
	base := StoreConfig{Type: "redis", URL: "redis://127.0.0.1:6379/0", Prefix: "p:", Password: "hunter2"}
	k0, _ := storeKey(&base)
	if strings.Contains(k0, "hunter2") || strings.Contains(k0, "127.0.0.1") {
		t.Fatalf("the pool key is a hash: %q", k0)
	}
	for name, change := range map[string]func(*StoreConfig){
		"url":         func(c *StoreConfig) { c.URL = "redis://127.0.0.1:6380/0" },
		"prefix":      func(c *StoreConfig) { c.Prefix = "q:" },
		"password":    func(c *StoreConfig) { c.Password = "hunter3" },
		"tls":         func(c *StoreConfig) { c.TLS = true },
		"addrs":       func(c *StoreConfig) { c.Addrs = []string{"127.0.0.1:7000"} },
		"master_name": func(c *StoreConfig) { c.MasterName = "m" },
	} {
		c := base
		change(&c)
		if k, _ := storeKey(&c); k == k0 {
			t.Errorf("changing %s must change the pool key", name)
		}
	}
	same := base
	if k, _ := storeKey(&same); k != k0 {
		t.Error("the same settings share the pool key")
	}
}
