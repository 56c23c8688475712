package caddymodule

import (
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func parseBlock(body string) (*Handler, error) {
	h := new(Handler)
	err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("idle_session {\n" + body + "\n}"))
	return h, err
}

func TestRepeatedOptionIsAnError(t *testing.T) {
	for _, tt := range []struct{ body, want string }{
		{"cookie sid\nidle 5m\nidle 10m", "idle: given twice"},
		{"cookie sid\ncookie other", "cookie: given twice"},
		{"cookie sid\nzone a\nname b", "zone: given twice (name is an alias of zone)"},
		{"cookie sid\nwebsocket_activity\nwebsocket_activity", "websocket_activity: given twice"},
		{"cookie sid\nstore bolt /a\nstore bolt /b", "store: given twice"},
		{"cookie sid\non_expired strip\non_expired status 440", "on_expired: given twice"},
		{"cookie sid\nwebhook http://x/ {\nsecret a\nsecret b\n}", "webhook secret: given twice"},
		{"cookie sid\nstore redis redis://x {\nprefix a:\nprefix b:\n}", "store redis prefix: given twice"},
		{"cookie sid\nwarning {\nlang de\nlang fr\n}", "warning lang: given twice"},
		{"cookie sid\nstore redis redis://x {\ntls off\n}", `store redis tls: takes no value, got "off"`},
	} {
		_, err := parseBlock(tt.body)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: error %v, want %q", tt.body, err, tt.want)
		}
	}
}

func TestOptionsThatRepeatAddUp(t *testing.T) {
	h, err := parseBlock("cookie sid\nlogout {\npath /logout\n}\nlogout {\nmethod DELETE\n}\npassive {\npath /poll\n}\npassive {\npath /ping\n}\n" +
		"clear_cookies a\nclear_cookies b_*\nstore redis redis://x {\naddrs h1:1\naddrs h2:2\n}")
	if err != nil {
		t.Fatal(err)
	}
	if len(h.LogoutMatchRaw) != 2 || len(h.PassiveMatchRaw) != 2 || len(h.ClearCookies) != 2 || len(h.Store.Addrs) != 2 {
		t.Fatalf("logout %d, passive %d, clear_cookies %v, addrs %v", len(h.LogoutMatchRaw), len(h.PassiveMatchRaw), h.ClearCookies, h.Store.Addrs)
	}
}

func TestZoneAndItsAliasName(t *testing.T) {
	for _, body := range []string{"cookie sid\nzone shop", "cookie sid\nname shop"} {
		h, err := parseBlock(body)
		if err != nil || h.Zone != "shop" {
			t.Fatalf("%q: zone %q, %v", body, h.Zone, err)
		}
	}
	h := &Handler{Cookie: "sid", Zone: "a", Name: "b"}
	if err := h.Validate(); err == nil || !strings.Contains(err.Error(), `zone: "a" and its alias name "b" disagree`) {
		t.Fatalf("JSON zone and name disagreeing: %v", err)
	}
	h = &Handler{Cookie: "sid", Zone: "a", Name: "a"}
	if err := h.Validate(); err != nil {
		t.Fatal(err)
	}
}
