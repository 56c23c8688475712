package tests

import (
	"fmt"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// basicAuth adds HTTP basic credentials to every request, as a browser
// does once the user has answered Caddy's basic_auth prompt.
type basicAuth struct {
	user, password string
	next           http.RoundTripper
}

func (a basicAuth) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.SetBasicAuth(a.user, a.password)
	return a.next.RoundTrip(r)
}

// TestLegacyUserPlaceholder: the user from a Caddy placeholder, combined
// with what Caddy already offers. An intranet DokuWiki behind Caddy's
// basic_auth: user_placeholder {http.auth.user.id} names the user Caddy
// authenticated, believed on the response that starts the DokuWiki session
// (the login), evaluated after basic_auth ran even though idle_session
// comes first in the chain. The basic_auth names are not DokuWiki's, so
// the webhook shows which source named the user.
func TestLegacyUserPlaceholder(t *testing.T) {
	needCaddy(t)
	d := dokuwikiDriver("")
	s := &legacyStack{D: d, R: legacyRecipes["dokuwiki"], Sites: map[string]string{}}
	s.App = StartLegacyApp(t, d.Spec)
	s.Rcv = NewReceiver(t)
	out, err := exec.Command(caddyBin, "hash-password", "--plaintext", "intranet-pw").Output()
	if err != nil {
		t.Fatalf("caddy hash-password: %v", err)
	}
	hash := strings.TrimSpace(string(out))
	site := "http://127.0.0.1:" + strconv.Itoa(FreePort(t))
	s.Sites["status"] = site
	s.Caddy = StartCaddy(t, fmt.Sprintf(`{
	admin 127.0.0.1:{ADMIN}
	default_bind 127.0.0.1
	grace_period 3s
}
%s {
	basic_auth {
		intranet-alice %s
		intranet-bob %s
	}
	idle_session {
		cookie DW*
		cookie_parser php
		user_placeholder {http.auth.user.id}
		zone dokuwiki_placeholder
		idle %s
		logout {
			path /doku.php
			query do=logout
		}
		webhook %s {
			secret %s
			include_anonymous
		}
	}
	reverse_proxy %s
}
`, site, hash, hash, legacyIdle, s.Rcv.Hook(), TestSecret, s.App.Addr))

	const zone = "dokuwiki_placeholder"
	for i, who := range []string{"alice", "bob"} {
		b := s.browser("status")
		b.hc.Transport = basicAuth{"intranet-" + who, "intranet-pw", b.hc.Transport}
		if p := d.Login(t, b, who, "wrong-password", false); d.LoggedIn(p) {
			t.Fatalf("a wrong password was accepted: %s", describe(p.Response))
		}
		d.signIn(t, b, who, false)
		b.Follow(t, d.Logout(t, b))
		ev := s.waitEnded(t, zone, i, 15*time.Second)
		if ev.Data.Reason != "logout" || ev.Data.User != "intranet-"+who {
			t.Fatalf("%s's session ended with reason %q, user %q; want logout, intranet-%s", who, ev.Data.Reason, ev.Data.User, who)
		}
	}
}
