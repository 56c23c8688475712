package tests

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

func TestMalformedCookiesDoNotCrash(t *testing.T) {
	s := startStack(t, "idle 1m")
	live, _ := s.login("42")

	cookies := malformedCookies(live)
	for name, raw := range cookies {
		for _, path := range []string{"/", statusPath} {
			r, err := s.C.Try(http.MethodGet, path, WithRawCookie(raw))
			if err != nil {
				t.Errorf("%s %s: %v", name, path, err)
				continue
			}
			if r.StatusCode >= 500 {
				t.Errorf("%s %s: %d %q", name, path, r.StatusCode, r.Body)
			}
		}
	}

	// Bytes no Go client sends: NUL, DEL, bare CR. The server may refuse
	// them (400) but must not fail.
	raws := []string{
		"sid=\x00\x01\x02",
		"sid=\x7f\xff\xfe",
		"sid=a\rb",
		"sid=" + live + "\x00",
	}
	for _, c := range raws {
		for _, path := range []string{"/", statusPath} {
			req := "GET " + path + " HTTP/1.1\r\nHost: " + s.Addr + "\r\nCookie: " + c + "\r\nConnection: close\r\n\r\n"
			resp, body, err := RawHTTP(s.Addr, []byte(req))
			if err != nil {
				// Closing the connection on a malformed request is fine;
				// the process staying up is checked below.
				t.Logf("raw %q %s: %v", c, path, err)
				continue
			}
			if resp.StatusCode >= 500 {
				t.Errorf("raw %q %s: %d %q", c, path, resp.StatusCode, body)
			}
		}
	}

	if !s.Caddy.Running() {
		t.Fatal("caddy died")
	}
	if logs := s.Caddy.Logs(); strings.Contains(logs, "panic") {
		t.Errorf("caddy logged a panic:\n%s", tail(logs, 40))
	}
	// Still serving real sessions.
	s.page(live)
	fresh, _ := s.login("43")
	s.page(fresh)
	if st := s.status(live); !st.Active {
		t.Errorf("the live session suffered: %+v", st)
	}
}

// malformedCookies are Cookie headers that the Go client will send, built
// around one live session ID.
func malformedCookies(live string) map[string]string {
	// obs-text and separators: everything the Go client lets through.
	var junk strings.Builder
	for i := range 8 << 10 {
		junk.WriteByte(byte(0x80 + i%0x80))
		if i%97 == 0 {
			junk.WriteString(`;=",\ `)
		}
	}
	many := make([]string, 300)
	for i := range many {
		many[i] = fmt.Sprintf("c%d=%d", i, i)
	}
	return map[string]string{
		"empty value":         "sid=",
		"no equals":           "sid",
		"only separators":     ";;; ;=;= ;",
		"duplicated unknown":  "sid=aaaa; sid=bbbb",
		"live then junk":      "sid=" + live + "; sid=junk",
		"junk then live":      "sid=junk; sid=" + live,
		"8 KiB":               "sid=" + strings.Repeat("A", 8<<10),
		"8 KiB binary junk":   "sid=" + junk.String(),
		"quoted":              `sid="` + live + `"`,
		"percent-encoded":     "sid=%00%ff%0d%0a",
		"unicode":             "sid=✓☃💥",
		"300 cookies":         strings.Join(many, "; ") + "; sid=" + live,
		"huge name":           strings.Repeat("s", 4<<10) + "=1; sid=x",
		"empty name":          "=sid; sid",
		"sid with spaces":     "sid = " + live + " ; x=1",
		"base64 laravel-like": "sid=eyJpdiI6IiIsInZhbHVlIjoiIiwibWFjIjoiIn0%3D",
	}
}

// TestMalformedCookieCorpusSendable checks the corpus itself: every header
// leaves the Go client and reaches a plain server, so a pass of
// TestMalformedCookiesDoNotCrash means the requests were really sent.
func TestMalformedCookieCorpusSendable(t *testing.T) {
	up := NewUpstream(t)
	c := NewClient(up.URL)
	for name, raw := range malformedCookies("0123456789abcdef") {
		opt, probe := Probe()
		if _, err := c.Try(http.MethodGet, "/", WithRawCookie(raw), opt); err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if seen := up.Probed(probe); len(seen) != 1 || seen[0].Header.Get("Cookie") != raw {
			t.Errorf("%s: the upstream got another Cookie header", name)
		}
	}
}
