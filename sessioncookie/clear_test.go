package sessioncookie

import (
	"net/http"
	"slices"
	"strings"
	"testing"
)

func TestClear(t *testing.T) {
	tests := []struct {
		name, path, domain, want string
	}{
		{"sid", "/", "", "sid=; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT"},
		{"sid", "", "", "sid=; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT"},
		{"sid", "/app", ".example.com", "sid=; Path=/app; Domain=example.com; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT"},
		{"__Host-sid", "/", "", "__Host-sid=; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Secure"},
		{"__Secure-sid", "/", "a.com", "__Secure-sid=; Path=/; Domain=a.com; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Secure"},
		{"sid", "/x; Domain=evil.com", "a.com\r\nX: y", "sid=; Path=/x Domain=evil.com; Domain=a.comX: y; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT"},
		{"bad name", "/", "", ""},
		{"", "/", "", ""},
	}
	for _, tt := range tests {
		if got := Clear(tt.name, tt.path, tt.domain); got != tt.want {
			t.Errorf("Clear(%q, %q, %q)\n got %q\nwant %q", tt.name, tt.path, tt.domain, got, tt.want)
		}
	}
}

// TestClearParsesAsDeletion closes the loop: what Clear writes, both
// ParseSetCookie and net/http read as a deletion of the same cookie.
func TestClearParsesAsDeletion(t *testing.T) {
	line := Clear("laravel_session", "/", "example.com")
	c, ok := ParseSetCookie(line, now)
	if !ok || !c.Deleted || c.Name != "laravel_session" || c.Path != "/" || c.Domain != "example.com" {
		t.Errorf("ParseSetCookie(Clear(...)) = %+v, %v", c, ok)
	}
	std, err := http.ParseSetCookie(line)
	if err != nil || std.MaxAge >= 0 || std.Name != "laravel_session" {
		t.Errorf("http.ParseSetCookie(Clear(...)) = %+v, %v; want MaxAge<0", std, err)
	}
}

func TestMatcher(t *testing.T) {
	m, err := NewMatcher([]string{"laravel_session", "remember_web_*", "XSRF-TOKEN"})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{
		"laravel_session":                       true,
		"laravel_session2":                      false,
		"remember_web_59ba36addc2b2f9401580f01": true,
		"remember_web_":                         true,
		"remember_we":                           false,
		"XSRF-TOKEN":                            true,
		"xsrf-token":                            false,
		"":                                      false,
	} {
		if got := m.Match(name); got != want {
			t.Errorf("Match(%q) = %v, want %v", name, got, want)
		}
	}
	if (Matcher{}).Match("anything") {
		t.Error("the zero Matcher matched")
	}
}

func TestNewMatcherErrors(t *testing.T) {
	for _, patterns := range [][]string{
		nil,
		{},
		{""},
		{"*"},
		{"a*b"},
		{"a**"},
		{"*a"},
		{"bad name"},
		{"bad;name*"},
		{"ok", ""},
	} {
		_, err := NewMatcher(patterns)
		if err == nil {
			t.Errorf("NewMatcher(%q) succeeded, want an error", patterns)
			continue
		}
		// The message names the offending pattern when there is one.
		for _, p := range patterns {
			if p != "" && p != "ok" && !strings.Contains(err.Error(), p) {
				t.Errorf("NewMatcher(%q) error %q does not name %q", patterns, err, p)
			}
		}
	}
}

func TestMatcherPresent(t *testing.T) {
	m, err := NewMatcher([]string{"remember_web_*", "sid"})
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{"Cookie": {"a=1; remember_web_1=x; sid=2", "remember_web_1=y; remember_web_2=z"}}
	got := m.Present(h)
	want := []string{"remember_web_1", "sid", "remember_web_2"}
	if !slices.Equal(got, want) {
		t.Errorf("Present = %q, want %q", got, want)
	}

	// A forged header with thousands of matching names stays bounded.
	var b strings.Builder
	for i := range 5000 {
		b.WriteString("remember_web_")
		b.WriteString(strings.Repeat("x", i%50))
		b.WriteString(string(rune('a' + i%26)))
		b.WriteString("=1; ")
	}
	if n := len(m.Present(http.Header{"Cookie": {b.String()}})); n != maxPresent {
		t.Errorf("Present returned %d names, want the bound %d", n, maxPresent)
	}
}
