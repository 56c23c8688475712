package sessioncookie

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 11, 21, 9, 30, 0, 0, time.UTC)

func TestParseSetCookie(t *testing.T) {
	tests := []struct {
		line string
		want SetCookie
		ok   bool
	}{
		{"sid=abc", SetCookie{Name: "sid", Value: "abc"}, true},
		{"sid=abc; Path=/; Domain=.Example.COM; HttpOnly; Secure; SameSite=Lax",
			SetCookie{Name: "sid", Value: "abc", Path: "/", Domain: "example.com", HttpOnly: true}, true},
		{`sid="abc"`, SetCookie{Name: "sid", Value: "abc"}, true},
		{" sid = abc ", SetCookie{Name: "sid", Value: "abc"}, true},

		// Deletion.
		{"sid=abc; Max-Age=0", SetCookie{Name: "sid", Value: "abc", Deleted: true}, true},
		{"sid=abc; Max-Age=-1", SetCookie{Name: "sid", Value: "abc", Deleted: true}, true},
		{"sid=abc; max-age=-99999999999999999999999", SetCookie{Name: "sid", Value: "abc", Deleted: true}, true},
		{"sid=abc; MAX-AGE=60", SetCookie{Name: "sid", Value: "abc"}, true},
		{"sid=abc; Max-Age=99999999999999999999999", SetCookie{Name: "sid", Value: "abc"}, true},
		{"sid=; Path=/", SetCookie{Name: "sid", Path: "/", Deleted: true}, true},
		{`sid=""`, SetCookie{Name: "sid", Deleted: true}, true},
		{"sid=abc; Expires=Thu, 01 Jan 1970 00:00:00 GMT", SetCookie{Name: "sid", Value: "abc", Deleted: true}, true},
		{"sid=abc; Expires=Sat, 21 Nov 2026 09:30:00 GMT", SetCookie{Name: "sid", Value: "abc", Deleted: true}, true},
		{"sid=abc; Expires=Sat, 21 Nov 2026 09:30:01 GMT", SetCookie{Name: "sid", Value: "abc"}, true},
		{"sid=abc; expires=Sun, 21-Nov-2027 09:30:00 GMT", SetCookie{Name: "sid", Value: "abc"}, true},
		// PHP's and Symfony's form of a deletion.
		{"laravel_session=deleted; expires=Thu, 01-Jan-1970 00:00:01 GMT; Max-Age=0; path=/; httponly",
			SetCookie{Name: "laravel_session", Value: "deleted", Path: "/", Deleted: true, HttpOnly: true}, true},
		// Django's.
		{`sessionid=""; expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; Path=/; SameSite=Lax`,
			SetCookie{Name: "sessionid", Path: "/", Deleted: true}, true},
		// Express's res.clearCookie.
		{"connect.sid=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
			SetCookie{Name: "connect.sid", Path: "/", Deleted: true}, true},
		// Two-digit year and other formats browsers accept.
		{"sid=abc; expires=Thursday, 01-Jan-70 00:00:00 GMT", SetCookie{Name: "sid", Value: "abc", Deleted: true}, true},
		{"sid=abc; expires=Thu Jan  1 00:00:00 1970", SetCookie{Name: "sid", Value: "abc", Deleted: true}, true},
		{"sid=abc; expires=Fri, 01 Jan 2100 00:00:00 -0000", SetCookie{Name: "sid", Value: "abc"}, true},
		// Max-Age wins over Expires, whatever the order.
		{"sid=abc; Max-Age=60; Expires=Thu, 01 Jan 1970 00:00:00 GMT", SetCookie{Name: "sid", Value: "abc"}, true},
		{"sid=abc; Expires=Fri, 01 Jan 2100 00:00:00 GMT; Max-Age=0", SetCookie{Name: "sid", Value: "abc", Deleted: true}, true},
		// The last attribute of a kind counts.
		{"sid=abc; Max-Age=0; Max-Age=60", SetCookie{Name: "sid", Value: "abc"}, true},
		{"sid=abc; Path=/a; Path=/b", SetCookie{Name: "sid", Value: "abc", Path: "/b"}, true},
		{"sid=abc; Path=/a; Path=relative", SetCookie{Name: "sid", Value: "abc"}, true},
		// Unparsable attribute values are ignored.
		{"sid=abc; Max-Age=0x10", SetCookie{Name: "sid", Value: "abc"}, true},
		{"sid=abc; Max-Age=", SetCookie{Name: "sid", Value: "abc"}, true},
		{"sid=abc; Max-Age=-", SetCookie{Name: "sid", Value: "abc"}, true},
		{"sid=abc; Max-Age= 1 0", SetCookie{Name: "sid", Value: "abc"}, true},
		{"sid=abc; Expires=yesterday", SetCookie{Name: "sid", Value: "abc"}, true},
		{"sid=abc; Expires=Thu, 31 Feb 1999 00:00:00 GMT", SetCookie{Name: "sid", Value: "abc"}, true},
		{"sid=abc; Expires=Thu, 01 Jan 1600 00:00:00 GMT", SetCookie{Name: "sid", Value: "abc"}, true},
		{"sid=abc; Expires=Thu, 01 Jan 1970 24:00:00 GMT", SetCookie{Name: "sid", Value: "abc"}, true},
		{"sid=abc; Domain=", SetCookie{Name: "sid", Value: "abc"}, true},
		{"sid=abc; Domain=a.com; Domain=", SetCookie{Name: "sid", Value: "abc", Domain: "a.com"}, true},
		{"sid=abc; =; ;;; Unknown=1", SetCookie{Name: "sid", Value: "abc"}, true},

		// Malformed.
		{"", SetCookie{}, false},
		{";", SetCookie{}, false},
		{"sid", SetCookie{}, false},
		{"=abc", SetCookie{}, false},
		{"s d=abc", SetCookie{}, false},
		{"sid=a\"b", SetCookie{}, false},
		{"sid=a\x00b", SetCookie{}, false},
		{"\xff\xfe=\x00", SetCookie{}, false},
	}
	for _, tt := range tests {
		got, ok := ParseSetCookie(tt.line, now)
		pair, _, _ := strings.Cut(tt.line, ";")
		_, raw, _ := strings.Cut(pair, "=")
		if wantRaw := strings.Trim(raw, " \t"); ok && got.Raw != wantRaw {
			t.Errorf("ParseSetCookie(%q).Raw = %q; want %q (as the browser sends it back)", tt.line, got.Raw, wantRaw)
		}
		got.Raw = ""
		if ok != tt.ok || got != tt.want {
			t.Errorf("ParseSetCookie(%q)\n got %+v, %v\nwant %+v, %v", tt.line, got, ok, tt.want, tt.ok)
		}
	}
}

func TestParseCookieDate(t *testing.T) {
	want := time.Date(1994, 11, 6, 8, 49, 37, 0, time.UTC)
	for _, s := range []string{
		"Sun, 06 Nov 1994 08:49:37 GMT",
		"Sunday, 06-Nov-94 08:49:37 GMT",
		"Sun Nov  6 08:49:37 1994",
		"Sun, 06-Nov-1994 08:49:37 GMT",
		"6 november 1994 8:49:37",
		"Sun, 06 Nov 1994 08:49:37 +0100", // zones are ignored, as browsers ignore them
	} {
		got, ok := parseCookieDate(s)
		if !ok || !got.Equal(want) {
			t.Errorf("parseCookieDate(%q) = %v, %v; want %v", s, got, ok, want)
		}
	}
	for _, s := range []string{"", "GMT", "06 Nov 1994", "08:49:37 1994 Nov", "Sun, 06 Nov 1994 08:49 GMT", "Sun, 006 Nov 1994 08:49:37 GMT", "Sun, 06 Nov 19945 08:49:37 GMT"} {
		if got, ok := parseCookieDate(s); ok {
			t.Errorf("parseCookieDate(%q) = %v, want failure", s, got)
		}
	}
}

func TestFromResponse(t *testing.T) {
	h := http.Header{}
	h.Add("Set-Cookie", "XSRF-TOKEN=tok; Path=/")
	h.Add("Set-Cookie", "sid=first; Path=/")
	h.Add("Set-Cookie", "sidx=other; Path=/")
	h.Add("Set-Cookie", "sid=; Max-Age=0; Path=/")
	h.Add("Set-Cookie", "sid=broken\"value")

	got, ok := FromResponse(h, "sid", now)
	want := SetCookie{Name: "sid", Path: "/", Deleted: true}
	if !ok || got != want {
		t.Errorf("FromResponse = %+v, %v; want %+v (the last valid line)", got, ok, want)
	}
	if _, ok := FromResponse(h, "nope", now); ok {
		t.Error("FromResponse found a cookie the response does not set")
	}
	if _, ok := FromResponse(http.Header{}, "sid", now); ok {
		t.Error("FromResponse found a cookie in an empty header")
	}
}
