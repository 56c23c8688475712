package caddymodule

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// Seed corpora live in testdata/fuzz/<FuzzName>/ and run with every
// `go test`; a fuzzing run is for example
//
//	go test -run '^$' -fuzz '^FuzzCaddyfile$' -fuzztime 30s ./caddymodule/
//
// (scripts/fuzz.sh runs every target of the repository for a while.)

// FuzzCaddyfile feeds the idle_session block parser arbitrary option lines.
// It must never panic; whatever it accepts, Validate must judge without
// panicking, and the JSON form must say the same thing (Caddyfile and JSON
// are one configuration).
func FuzzCaddyfile(f *testing.F) {
	for _, s := range []string{
		"cookie sid\nidle 30m",
		"cookie laravel_session\nlaravel_key base64:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\nabsolute 8h",
		"cookie sid\nstore bolt /tmp/x.db\nname app\nuser_header X-User",
		"cookie sid\nstore redis redis://127.0.0.1:6379/0 {\nprefix p:\npassword x\ntls\naddrs a:1 b:2\nmaster_name m\n}",
		"cookie sid\nlogout {\nmethod POST\npath /logout\n}\npassive {\npath /poll\n}",
		"cookie sid\non_expired status 419\nclear_cookies remember_web_* XSRF-TOKEN",
		"cookie sid\non_expired redirect /login\nstatus_path /.idle\nremaining_header X-Left",
		"cookie sid\non_expired strip\nrotation_grace 0s\nremember_ended 14d\nmax_sessions 10",
		"cookie sid\nwebsocket_activity\nwarn_before 2m\ninject_warning\nstatus_path /s",
		"cookie sid\nwebhook https://example.com/h {\nsecret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\ntimeout 5s\nmax_attempts 3\nevents ended started\ninclude_anonymous\n}",
		"cookie sid\nidle -1s\nmax_sessions -5\non_expired status 200",
		"cookie \"a b\"\nidle 1\nwebhook {\n}",
		"cookie sid\nstore\non_expired\nwebhook",
		"cookie sid\nlogout {\n}\npassive {\nnot path /x\n}",
		"cookie sid\nidle 99999999999999999999h",
		"cookie sid\nuser_header \"X-\r\nInjected\"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		tokens, err := caddyfile.Tokenize([]byte("idle_session {\n"+body+"\n}\n"), "Caddyfile")
		if err != nil {
			return // the lexer refused it: Caddy reports that before we see it
		}
		h := new(Handler)
		if err := h.UnmarshalCaddyfile(caddyfile.NewDispenser(tokens)); err != nil {
			if err.Error() == "" {
				t.Fatal("an empty error message")
			}
			return
		}
		verr := h.Validate()
		js, err := json.Marshal(h)
		if err != nil {
			t.Fatalf("accepted config does not marshal: %v", err)
		}
		h2 := new(Handler)
		if err := json.Unmarshal(js, h2); err != nil {
			t.Fatalf("JSON form does not load back: %v\n%s", err, js)
		}
		verr2 := h2.Validate()
		if (verr == nil) != (verr2 == nil) {
			t.Fatalf("Caddyfile and JSON disagree: %v vs %v\n%s", verr, verr2, js)
		}
		// Caddy names the module (http.handlers.idle_session: ...); the
		// error itself starts with the option.
		if verr != nil && !optionFirst.MatchString(verr.Error()) {
			t.Fatalf("validation error does not start with the option: %v", verr)
		}
	})
}

// FuzzCleanUser: whatever the upstream puts in the user header — CR/LF,
// NUL, megabytes, invalid UTF-8 — the accepted user is short, valid UTF-8
// without control characters, so it is safe in a webhook, a log line and
// the admin API; anything else is dropped.
var optionFirst = regexp.MustCompile(`^[a-z_]+( [a-z_]+)?: `)

func FuzzCleanUser(f *testing.F) {
	for _, s := range []string{
		"42", " alice@example.com ", "Zoë Ünïcödé 山田", "a\r\nSet-Cookie: x=1", "a\nb", "\x00", "\x7f",
		"\xff\xfe", "\xc3\x28", strings.Repeat("u", maxUser), strings.Repeat("u", maxUser+1),
		strings.Repeat("é", maxUser/2), "\u2028line sep", "a\u0085NEL", "\u009b[31m", "\u202eRTL", "tab\there", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		got, ok := cleanUser(v)
		if !ok {
			if got != "" {
				t.Fatalf("refused value returned %q", got)
			}
			return
		}
		if len(got) > maxUser || !utf8.ValidString(got) {
			t.Fatalf("accepted %q: too long or not UTF-8", got)
		}
		for _, r := range got {
			// C0, DEL and C1 (U+0085 NEL is a line break to many log
			// viewers), and the Unicode line and paragraph separators.
			if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
				t.Fatalf("accepted a control or line-breaking character: %q", got)
			}
		}
		if got != strings.TrimSpace(got) || !strings.Contains(v, got) {
			t.Fatalf("cleanUser(%q) = %q: not the trimmed input", v, got)
		}
	})
}
