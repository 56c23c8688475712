package tests

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// One Caddy, three sites, one per on_expired mode; each its own zone.
const onExpiredCaddyfile = `{
	admin 127.0.0.1:{ADMIN}
	default_bind 127.0.0.1
	grace_period 3s
}
http://127.0.0.1:{P_DEFAULT} {
	idle_session {
		cookie sid
		name default_zone
		idle 1s
		status_path /.idlegate/status
	}
	reverse_proxy {UP}
}
http://127.0.0.1:{P_REDIRECT} {
	idle_session {
		cookie sid
		name redirect_zone
		idle 1s
		status_path /.idlegate/status
		on_expired redirect /login
	}
	reverse_proxy {UP}
}
http://127.0.0.1:{P_STRIP} {
	idle_session {
		cookie sid
		name strip_zone
		idle 1s
		status_path /.idlegate/status
		on_expired strip
	}
	reverse_proxy {UP}
}
`

func TestOnExpiredModes(t *testing.T) {
	needCaddy(t)
	up := NewUpstream(t)
	ports := map[string]string{}
	for _, k := range []string{"P_DEFAULT", "P_REDIRECT", "P_STRIP"} {
		ports[k] = strconv.Itoa(FreePort(t))
	}
	vars := map[string]string{"UP": up.Addr}
	for k, v := range ports {
		vars[k] = v
	}
	StartCaddy(t, Render(t, onExpiredCaddyfile, vars))

	type site struct {
		name string
		c    *Client
		sid  string
	}
	sites := []*site{
		{name: "default", c: NewClient("http://127.0.0.1:" + ports["P_DEFAULT"])},
		{name: "redirect", c: NewClient("http://127.0.0.1:" + ports["P_REDIRECT"])},
		{name: "strip", c: NewClient("http://127.0.0.1:" + ports["P_STRIP"])},
	}
	for _, s := range sites {
		r := s.c.Post(t, "/login?user=7")
		c := r.SetCookie(UpstreamCookie)
		if r.StatusCode != http.StatusOK || c == nil {
			t.Fatalf("%s: login: %s", s.name, r)
		}
		s.sid = c.Value
	}
	// All three expire together; the status path tells when, without
	// counting as activity.
	Eventually(t, 20*time.Second, 100*time.Millisecond, func() error {
		for _, s := range sites {
			r, err := s.c.Try(http.MethodGet, statusPath, WithCookie(UpstreamCookie, s.sid), WithHeader("Accept", "application/json"))
			if err != nil {
				return err
			}
			var st struct {
				Active *bool `json:"active"`
			}
			if json.Unmarshal(r.Body, &st) != nil || st.Active == nil {
				return fmt.Errorf("%s: status: %s", s.name, r)
			}
			if *st.Active {
				return fmt.Errorf("%s: still active", s.name)
			}
		}
		return nil
	})

	// refused sends a request with the expired sid and checks what every
	// mode shares: the cookie is cleared and the upstream never sees it.
	refused := func(t *testing.T, s *site, opts ...ReqOption) *Response {
		t.Helper()
		opt, probe := Probe()
		r := s.c.Get(t, "/", append([]ReqOption{WithCookie(UpstreamCookie, s.sid), opt}, opts...)...)
		if !r.ClearsCookie(UpstreamCookie) {
			t.Errorf("%s: refusal does not clear %s: %d %v", s.name, UpstreamCookie, r.StatusCode, r.Header.Values("Set-Cookie"))
		}
		if seen := up.Probed(probe); len(seen) != 0 {
			t.Errorf("%s: upstream saw the refused request", s.name)
		}
		return r
	}

	t.Run("default", func(t *testing.T) {
		s := sites[0]
		r := refused(t, s, WithHeader("Accept", "application/json"))
		if r.StatusCode != http.StatusUnauthorized {
			t.Errorf("JSON client: %d, want 401", r.StatusCode)
		}
		if ct := r.Header.Get("Content-Type"); !strings.Contains(ct, "json") {
			t.Errorf("JSON client got Content-Type %q", ct)
		}
		var v any
		if err := json.Unmarshal(r.Body, &v); err != nil {
			t.Errorf("JSON client got a body that is not JSON (%v): %q", err, r.Body)
		}
		if r := refused(t, s, Navigation()); r.StatusCode != http.StatusUnauthorized {
			t.Errorf("navigation without a redirect configured: %d, want 401", r.StatusCode)
		}
	})

	t.Run("redirect", func(t *testing.T) {
		s := sites[1]
		r := refused(t, s, Navigation())
		if r.StatusCode != http.StatusSeeOther || !strings.HasSuffix(r.Header.Get("Location"), "/login") {
			t.Errorf("navigation: %d Location %q, want 303 to /login", r.StatusCode, r.Header.Get("Location"))
		}
		if r := refused(t, s, WithHeader("Accept", "application/json")); r.StatusCode != http.StatusUnauthorized {
			t.Errorf("Accept: application/json: %d, want 401", r.StatusCode)
		}
		if r := refused(t, s, XHR()); r.StatusCode != http.StatusUnauthorized {
			t.Errorf("XHR: %d, want 401", r.StatusCode)
		}
	})

	t.Run("strip", func(t *testing.T) {
		s := sites[2]
		opt, probe := Probe()
		r := s.c.Get(t, "/", WithRawCookie(UpstreamCookie+"="+s.sid+"; theme=dark"), opt, WithHeader("Accept", "application/json"))
		if r.StatusCode != http.StatusOK {
			t.Fatalf("strip: %d, want the upstream's 200: %s", r.StatusCode, r)
		}
		if !r.ClearsCookie(UpstreamCookie) {
			t.Errorf("strip does not clear %s: %v", UpstreamCookie, r.Header.Values("Set-Cookie"))
		}
		seen := up.Probed(probe)
		if len(seen) != 1 {
			t.Fatalf("upstream saw the stripped request %d times", len(seen))
		}
		if seen[0].HasSID {
			t.Errorf("upstream still got %s=%s", UpstreamCookie, seen[0].SID)
		}
		if v, ok := seen[0].Cookie("theme"); !ok || v != "dark" {
			t.Errorf("strip took the other cookies too: Cookie %q", seen[0].Header.Get("Cookie"))
		}
		var page struct {
			HasSID bool `json:"has_sid"`
		}
		r.JSON(t, &page)
		if page.HasSID {
			t.Errorf("the app saw a session: %s", r.Body)
		}
	})
}
