package tests

// Issue 15, from outside: every attack of the table, sent through the
// built Caddy binary to the real application, with the cookie S of a session
// that idlegate has ended (idle expiry, idle expiry and a restart, or an
// admin revoke; the application's own session is alive in every case). Each
// case asserts what the application answered: never alice. Afterwards the
// plain S must still be refused, the admin API must not list alice live, and
// the app's receiver must have exactly one session.ended for the session —
// none from a spelling idlegate adopted.
//
// Subtests are TestAttack<App>/<row>/<mode>/<end>, mode one of status,
// redirect, strip and end one of idle, restart, revoke. Each row also sends
// its spelling straight to the app while the session is live; a row the app
// itself does not read is logged as proving nothing there (php -S joins two
// Cookie lines with ", ", so two_lines is such a row for PHP and Laravel).
//
// The harness is attack_harness_test.go; attack_reissue_test.go has an
// upstream that re-issues an ended cookie, attack_forward_test.go checks the
// Cookie lines the upstream receives. Run:
//
//	nice -n 10 go test ./tests/ -run 'TestAttack' -count=1 -v

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
)

func oneLine(f func(c *atkCase, anon string) string) func(*atkCase, string) []string {
	return func(c *atkCase, anon string) []string { return []string{f(c, anon)} }
}

func randomLower(n int) string {
	const letters = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	rand.Read(b)
	for i := range b {
		b[i] = letters[int(b[i])%len(letters)]
	}
	return string(b)
}

// PHP percent-decodes cookie values: %39 is '9'.
var phpRows = []*atkRow{
	{Name: "pct_first", Lines: oneLine(func(c *atkCase, _ string) string {
		return "PHPSESSID=" + pctAt(c.Value, 0, true)
	})},
	{Name: "pct_middle", Lines: oneLine(func(c *atkCase, _ string) string {
		return "PHPSESSID=" + pctAt(c.Value, len(c.Value)/2, false)
	})},
	// The session pair on a second Cookie line (php -S joins lines with ", ").
	{Name: "two_lines", Lines: func(c *atkCase, _ string) []string {
		return []string{"theme=dark", "PHPSESSID=" + pctAt(c.Value, 0, true)}
	}},
}

func TestAttackPHP(t *testing.T) {
	needCaddy(t)
	t.Parallel()
	startAttack(t, Framework{Name: "php", Dir: "php", Cookie: "PHPSESSID"}, phpRows).run()
}

// Express: the cookie package decodes values with decodeURIComponent; S is
// s%3A<id>.<sig> as express-session sets it.
var expressRows = []*atkRow{
	{Name: "pct_prefix", Lines: oneLine(func(c *atkCase, _ string) string {
		return "connect.sid=" + pctAt(c.Value, 0, false) // %73%3A<id>.<sig>
	})},
	{Name: "raw", Lines: oneLine(func(c *atkCase, _ string) string {
		v, err := url.PathUnescape(c.Value)
		if err != nil {
			v = c.Value
		}
		return "connect.sid=" + v // s:<id>.<sig>
	})},
	// The cookie package trims names; browsers send back the %3A they got.
	{Name: "space_eq", Lines: oneLine(func(c *atkCase, _ string) string {
		return "connect.sid =" + c.Value
	})},
	{Name: "pct_lower", Lines: oneLine(func(c *atkCase, _ string) string {
		return "connect.sid=" + strings.ReplaceAll(c.Value, "%3A", "%3a")
	})},
	// The cookie package un-quotes, then decodes; it trims tabs as well.
	{Name: "quoted", Lines: oneLine(func(c *atkCase, _ string) string {
		return `connect.sid="` + pctAt(c.Value, 0, false) + `"`
	})},
	{Name: "tab_eq", Lines: oneLine(func(c *atkCase, _ string) string {
		return "connect.sid\t=\t" + c.Value
	})},
	// Node joins Cookie lines with "; ".
	{Name: "two_lines", Lines: func(c *atkCase, _ string) []string {
		return []string{"theme=dark", "connect.sid=" + pctAt(c.Value, 0, false)}
	}},
}

func TestAttackExpress(t *testing.T) {
	needCaddy(t)
	t.Parallel()
	startAttack(t, Framework{Name: "express", Dir: "express", Cookie: "connect.sid"}, expressRows).run()
}

// Django keeps the last pair of a name, un-quotes quoted values with their
// octal escapes, and trims names.
var djangoRows = []*atkRow{
	{Name: "dup_last", Lines: oneLine(func(c *atkCase, _ string) string {
		return "sessionid=" + randomLower(32) + "; sessionid=" + c.Value
	})},
	{Name: "quoted_octal", Lines: oneLine(func(c *atkCase, _ string) string {
		return fmt.Sprintf(`sessionid="\%03o%s"`, c.Value[0], c.Value[1:])
	})},
	// http.cookies._unquote drops a backslash before any character (before
	// a letter, so that it never reads as an octal escape).
	{Name: "quoted_backslash", Lines: oneLine(func(c *atkCase, _ string) string {
		i := strings.IndexAny(c.Value, "abcdefghijklmnopqrstuvwxyz")
		if i < 0 {
			i = 0
		}
		return `sessionid="` + c.Value[:i] + `\` + c.Value[i:] + `"`
	})},
	{Name: "space_eq", Lines: oneLine(func(c *atkCase, _ string) string {
		return "sessionid =" + c.Value
	})},
	// RFC 2109 attributes are ordinary cookies to Django.
	{Name: "version_attrs", Lines: oneLine(func(c *atkCase, _ string) string {
		return `$Version="1"; sessionid=` + c.Value + `; $Path="/"`
	})},
	// Python's str.strip() (Django's parse_cookie) removes Unicode spaces
	// too: U+00A0 and U+3000, sent as UTF-8.
	{Name: "nbsp_name", Lines: oneLine(func(c *atkCase, _ string) string {
		return "sessionid\u00a0=" + c.Value
	})},
	{Name: "ideo_space_name", Lines: oneLine(func(c *atkCase, _ string) string {
		return "\u3000sessionid=" + c.Value
	})},
	{Name: "ideo_space_value", Lines: oneLine(func(c *atkCase, _ string) string {
		return "sessionid=" + c.Value + "\u3000"
	})},
	// Django's server joins Cookie lines with ",": the second line's last
	// pair is the one Django keeps.
	{Name: "two_lines", Lines: func(c *atkCase, _ string) []string {
		return []string{"sessionid=" + randomLower(32), "theme=dark; sessionid=" + c.Value}
	}},
}

func TestAttackDjango(t *testing.T) {
	needCaddy(t)
	t.Parallel()
	startAttack(t, Framework{Name: "django", Dir: "django", Cookie: "sessionid"}, djangoRows).run()
}

// Laravel (with laravel_key): PHP turns '.', ' ' and '[' in cookie names
// into '_', percent-decodes values, and Laravel's base64_decode skips bytes
// outside the alphabet.
var laravelRows = []*atkRow{
	{Name: "b64_dot", Lines: oneLine(func(c *atkCase, _ string) string {
		return "laravel_session=" + c.Value[:8] + "." + c.Value[8:]
	})},
	{Name: "pct_first", Lines: oneLine(func(c *atkCase, _ string) string {
		return "laravel_session=" + pctAt(c.Value, 0, true)
	})},
	// PHP percent-decodes the value first: a newline for base64_decode to skip.
	{Name: "b64_pct_newline", Lines: oneLine(func(c *atkCase, _ string) string {
		return "laravel_session=" + c.Value[:8] + "%0A" + c.Value[8:]
	})},
	{Name: "b64_nopad", Lines: oneLine(func(c *atkCase, _ string) string {
		return "laravel_session=" + strings.TrimRight(strings.ReplaceAll(c.Value, "%3D", "="), "=")
	})},
	// Non-strict base64_decode skips '=' anywhere.
	{Name: "b64_mid_pad", Lines: oneLine(func(c *atkCase, _ string) string {
		return "laravel_session=" + c.Value[:8] + "%3D" + c.Value[8:]
	})},
	// The payload's JSON re-written as PHP's json_decode still reads it.
	{Name: "json_respaced", Lines: oneLine(func(c *atkCase, _ string) string {
		return "laravel_session=" + laravelRewrite(c.Value, func(m map[string]json.RawMessage) string {
			return fmt.Sprintf("\n\t{ \"mac\" : %s , \"value\" : %s , \"iv\" : %s , \"tag\" : \"\" }\r\n", m["mac"], m["value"], m["iv"])
		})
	})},
	// PHP's keys are case-sensitive (Go's encoding/json matches any case).
	{Name: "json_case_dup", Lines: oneLine(func(c *atkCase, _ string) string {
		return "laravel_session=" + laravelRewrite(c.Value, func(m map[string]json.RawMessage) string {
			return fmt.Sprintf(`{"iv":%s,"value":%s,"mac":%s,"IV":"AAAAAAAAAAAAAAAAAAAAAA==","MAC":"00"}`, m["iv"], m["value"], m["mac"])
		})
	})},
	// The MAC covers iv.value: the iv's "==" moved to the front of value
	// keeps it, the iv still decodes strictly to 16 bytes, and openssl's
	// base64 skips the '='s.
	{Name: "json_shift_pad", Lines: oneLine(func(c *atkCase, _ string) string {
		return "laravel_session=" + laravelRewrite(c.Value, func(m map[string]json.RawMessage) string {
			var iv, value string
			json.Unmarshal(m["iv"], &iv)
			json.Unmarshal(m["value"], &value)
			pad := iv[len(strings.TrimRight(iv, "=")):]
			ivJS, _ := json.Marshal(strings.TrimRight(iv, "="))
			valueJS, _ := json.Marshal(pad + value)
			return fmt.Sprintf(`{"iv":%s,"value":%s,"mac":%s,"tag":""}`, ivJS, valueJS, m["mac"])
		})
	})},
	// json_decode keeps the last of a duplicate key.
	{Name: "json_dup_key", Lines: oneLine(func(c *atkCase, _ string) string {
		return "laravel_session=" + laravelRewrite(c.Value, func(m map[string]json.RawMessage) string {
			return fmt.Sprintf(`{"iv":"AAAAAAAAAAAAAAAAAAAAAA==","value":"AA==","mac":"00","iv":%s,"value":%s,"mac":%s}`, m["iv"], m["value"], m["mac"])
		})
	})},
	// Laravel takes an empty() tag as none: 0, false, "0", [].
	{Name: "json_tag_zero", Lines: oneLine(func(c *atkCase, _ string) string {
		return "laravel_session=" + laravelRewrite(c.Value, func(m map[string]json.RawMessage) string {
			return fmt.Sprintf(`{"iv":%s,"value":%s,"mac":%s,"tag":0}`, m["iv"], m["value"], m["mac"])
		})
	})},
	{Name: "json_unicode_escape", Lines: oneLine(func(c *atkCase, _ string) string {
		return "laravel_session=" + laravelRewrite(c.Value, func(m map[string]json.RawMessage) string {
			iv := string(m["iv"])
			return fmt.Sprintf(`{"iv":"\u%04x%s,"value":%s,"mac":%s}`, iv[1], iv[2:], m["value"], m["mac"])
		})
	})},
	{Name: "name_dot", Lines: oneLine(func(c *atkCase, _ string) string { return "laravel.session=" + c.Value })},
	{Name: "name_space", Lines: oneLine(func(c *atkCase, _ string) string { return "laravel session=" + c.Value })},
	{Name: "name_bracket", Lines: oneLine(func(c *atkCase, _ string) string { return "laravel[session=" + c.Value })},
	// PHP keeps the first pair of a name: S, read as laravel_session; A is
	// the live anonymous session idlegate sees.
	{Name: "name_dot_and_anon", Anon: true, Lines: oneLine(func(c *atkCase, anon string) string {
		return "laravel.session=" + c.Value + "; laravel_session=" + anon
	})},
	{Name: "two_lines", Lines: func(c *atkCase, _ string) []string {
		return []string{"theme=dark", "laravel.session=" + c.Value}
	}},
	// Strip must remove the remember cookie from the request and clear it
	// in the response, or it signs alice back in.
	{Name: "remember", Remember: true, Lines: oneLine(func(c *atkCase, _ string) string {
		return strings.Join([]string{"laravel_session=" + c.Value, rememberCookie + "=" + c.RememberCookie}, "; ")
	})},
}

// laravelRewrite decodes a laravel_session value to its JSON payload, lets
// f write the JSON anew, and encodes it as Laravel does.
func laravelRewrite(value string, f func(map[string]json.RawMessage) string) string {
	raw, err := url.QueryUnescape(value)
	if err != nil {
		return value
	}
	js, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		return value
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(js, &m) != nil || m["iv"] == nil || m["value"] == nil || m["mac"] == nil {
		return value
	}
	return url.QueryEscape(base64.StdEncoding.EncodeToString([]byte(f(m))))
}

func TestAttackLaravel(t *testing.T) {
	needCaddy(t)
	t.Parallel()
	startAttack(t, Framework{Name: "laravel", Dir: "laravel", Cookie: "laravel_session", LaravelKey: true}, laravelRows).run()
}
