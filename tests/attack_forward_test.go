package tests

// Issue 15, item 1, from outside: what the upstream receives. A request
// forwarded for a live session carries exactly one session pair, so a
// first-wins and a last-wins parser behind idlegate cannot disagree; in strip
// mode a refused session's request reaches the upstream with none of its
// session pairs and none of the clear_cookies.

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const forwardSite = `http://127.0.0.1:%d {
	idle_session {
		cookie sid
		name fwd_%s
		idle 1m
		user_header X-Idle-User
		on_expired %s
		clear_cookies remember_web_*
	}
	reverse_proxy %s
}
`

// upstreamPairs are the pairs of every Cookie line the upstream got, split
// as any parser would (on ';' and, for php -S and Django's server which
// join lines with ',', on ',').
func upstreamPairs(r UpRequest) (names, values []string) {
	for _, line := range r.Header.Values("Cookie") {
		for _, part := range strings.FieldsFunc(line, func(c rune) bool { return c == ';' || c == ',' }) {
			n, v, _ := strings.Cut(part, "=")
			names = append(names, strings.TrimSpace(n))
			values = append(values, strings.TrimSpace(v))
		}
	}
	return names, values
}

func TestAttackForwardedPairs(t *testing.T) {
	needCaddy(t)
	t.Parallel()
	u := NewUpstream(t)
	var cf strings.Builder
	cf.WriteString("{\n\tadmin 127.0.0.1:{ADMIN}\n\tdefault_bind 127.0.0.1\n}\n")
	bases := map[string]string{}
	for _, mode := range []string{"status", "strip"} {
		port := FreePort(t)
		bases[mode] = "http://127.0.0.1:" + strconv.Itoa(port)
		fmt.Fprintf(&cf, forwardSite, port, mode, map[string]string{"status": "status 401", "strip": "strip"}[mode], u.Addr)
	}
	c := StartCaddy(t, cf.String())

	login := func(base, user string) string {
		t.Helper()
		r := NewClient(base).Post(t, "/login?user="+user)
		sc := r.SetCookie(UpstreamCookie)
		if r.StatusCode != http.StatusOK || sc == nil {
			t.Fatalf("login as %s: %s", user, brief(r))
		}
		return sc.Value
	}
	send := func(base string, lines []string) (*Response, []UpRequest) {
		t.Helper()
		probe, id := Probe()
		req, _ := http.NewRequest(http.MethodGet, base+"/", nil)
		req.Header["Cookie"] = lines
		probe(req)
		XHR()(req)
		resp, err := NewClient(base).HC.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return &Response{StatusCode: resp.StatusCode, Header: resp.Header, Body: body}, u.Probed(id)
	}

	// A live session: whatever spelling is forwarded carries one sid pair,
	// A, and the other cookies.
	t.Run("live", func(t *testing.T) {
		a := login(bases["status"], "7")
		for _, lines := range [][]string{
			{"theme=dark; sid=" + a + "; lang=en"},
			{"theme=dark; sid=" + a + "; sid=" + a},
			{"sid=" + a + "; theme=dark", "sid=" + a},
			{"theme=dark", "sid=" + a},
			{`theme=dark; sid="` + a + `"`},
		} {
			r, got := send(bases["status"], lines)
			if len(got) == 0 {
				if !Refused(r, UpstreamCookie) {
					t.Errorf("%q: not forwarded and not refused: %s", lines, brief(r))
				} else {
					t.Logf("%q: refused (%s)", lines, refusalReason(r))
				}
				continue
			}
			names, values := upstreamPairs(got[0])
			var sids []string
			for i, n := range names {
				if n == UpstreamCookie {
					sids = append(sids, values[i])
				}
			}
			if len(sids) != 1 || strings.Trim(sids[0], `"`) != a {
				t.Errorf("%q: the upstream got sid pairs %q, want exactly one, the live session's (lines %q)", lines, sids, got[0].Header.Values("Cookie"))
			}
			if !slices.Contains(names, "theme") {
				t.Errorf("%q: the upstream lost theme (lines %q)", lines, got[0].Header.Values("Cookie"))
			}
		}
	})

	// Strip mode, a revoked session: the upstream gets no sid pair and no
	// remember_web_ pair, whatever the spelling, and keeps the others.
	t.Run("strip", func(t *testing.T) {
		s := login(bases["strip"], "8")
		if st, body := c.Admin(t, http.MethodDelete, "/idle-sessions/?user=8", nil); st != http.StatusOK || !strings.Contains(string(body), `"revoked":1`) {
			t.Fatalf("revoke user 8: %d %s", st, body)
		}
		for _, lines := range [][]string{
			{"sid=" + s + "; theme=dark"},
			{"theme=dark; sid=x" + s[1:] + "; sid=" + s},
			{"sid =" + s + "; theme=dark"},
			{"theme=dark", "sid=" + s},
			{"sid=" + s + "; theme=dark", "sid=" + s},
			{"sid=" + s + "; theme=dark; " + rememberCookie + "=tok"},
			{"theme=dark; " + rememberCookie + "=tok", "sid=" + s},
		} {
			r, got := send(bases["strip"], lines)
			if len(got) != 1 {
				t.Errorf("%q: strip mode did not forward the request once (%d): %s", lines, len(got), brief(r))
				continue
			}
			names, _ := upstreamPairs(got[0])
			for _, n := range names {
				if n == UpstreamCookie || strings.HasPrefix(n, "remember_web_") {
					t.Errorf("%q: the upstream got %s (lines %q)", lines, n, got[0].Header.Values("Cookie"))
				}
			}
			if !slices.Contains(names, "theme") {
				t.Errorf("%q: the upstream lost theme (lines %q)", lines, got[0].Header.Values("Cookie"))
			}
			if !clearsAny(r, UpstreamCookie) {
				t.Errorf("%q: the answer does not clear sid: %s", lines, brief(r))
			}
			if strings.Contains(strings.Join(lines, ";"), rememberCookie) && !clearsAny(r, rememberCookie) {
				t.Errorf("%q: the answer does not clear %s: %s", lines, rememberCookie, brief(r))
			}
		}
	})
}
