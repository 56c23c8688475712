package caddymodule

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
)

func TestFormField(t *testing.T) {
	for _, tt := range []struct {
		body, field, want string
	}{
		{"username=alice&password=x", "username", "alice"},
		{"password=x&username=al%20ice", "username", "al ice"},
		{"username=al+ice", "username", "al ice"},
		{"password=x", "username", ""},
		{"username=", "username", ""},
		{"username=alice&username=alice", "username", "alice"}, // the same twice names the same user
		// PHP, Rails and Django read the last of duplicates, Go's
		// FormValue the first: no guess.
		{"username=alice&username=bob", "username", ""},
		// PHP reads user.name and "user name" as user_name.
		{"user_name=alice&user.name=bob", "user_name", ""},
		{"user%2Ename=bob", "user_name", "bob"}, // decoded first, as every parser does
		{"user.name=bob", "user_name", "bob"},
		{"username[]=alice", "username", ""}, // an array in PHP
		{"username=%zz", "username", ""},
		{"us%zzername=bob&username=alice", "username", ""}, // undecodable: may be it
		{"username=al%0Aice", "username", ""},              // control characters name no one
		{"log=alice&pwd=x&wp-submit=Log+In", "log", "alice"},
		{"u=alice&p=x&do=login", "u", "alice"},
		{"uu=alice", "u", ""},
	} {
		got, ok := formField(tt.body, tt.field)
		if got != tt.want || ok != (tt.want != "") {
			t.Errorf("formField(%q, %q) = %q, %t; want %q", tt.body, tt.field, got, ok, tt.want)
		}
	}
}

func FuzzFormField(f *testing.F) {
	f.Add("username=alice&password=x", "username")
	f.Add("user.name=a&user_name=b", "user_name")
	f.Fuzz(func(t *testing.T, body, field string) {
		if field == "" || strings.ContainsAny(field, "&=") {
			return
		}
		u, ok := formField(body, field)
		if ok != (u != "") {
			t.Fatalf("ok %t with user %q", ok, u)
		}
		if ok {
			if _, clean := cleanUser(u); !clean {
				t.Fatalf("unclean user %q", u)
			}
			// What a parser that takes the last (PHP) reads must be it.
			if v, err := url.ParseQuery(body); err == nil {
				if vals := v[field]; len(vals) > 0 && strings.TrimSpace(vals[len(vals)-1]) != u {
					t.Fatalf("%q: user %q, the last %s is %q", body, u, field, vals[len(vals)-1])
				}
			}
		}
	})
}

// loginFormApp is a Redmine-like upstream: a session before the login, a
// failed login answered 200 with a new value, an accepted one 302 with a
// new value, and every page re-setting the session under a new value (a
// cookie store re-encrypting it). It records each login body as received.
type loginFormApp struct {
	*httptest.Server
	n      atomic.Int64
	mu     sync.Mutex
	bodies []string
}

func newLoginFormApp(t *testing.T) *loginFormApp {
	a := &loginFormApp{}
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fresh := fmt.Sprintf("sid=v%d; Path=/", a.n.Add(1))
		switch r.URL.Path {
		case "/login":
			b, _ := io.ReadAll(r.Body)
			a.mu.Lock()
			a.bodies = append(a.bodies, string(b))
			a.mu.Unlock()
			form, _ := url.ParseQuery(string(b))
			w.Header().Add("Set-Cookie", fresh)
			if form.Get("password") == "right" {
				w.Header().Set("Location", "/")
				w.WriteHeader(http.StatusFound)
				return
			}
			w.WriteHeader(http.StatusOK)
			io.WriteString(w, "wrong password")
			return
		case "/logout":
			w.Header().Add("Set-Cookie", "sid=; Path=/; Max-Age=0")
		default:
			w.Header().Add("Set-Cookie", fresh)
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(a.Close)
	return a
}

// formClient keeps the sid cookie as a browser would.
type formClient struct {
	t   *testing.T
	sid string
}

func (c *formClient) send(method, path, form string) *http.Response {
	c.t.Helper()
	var body io.Reader
	if form != "" {
		body = strings.NewReader(form)
	}
	req, _ := http.NewRequest(method, "http://localhost:9080"+path, body)
	if form != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if c.sid != "" {
		req.Header.Set("Cookie", "sid="+c.sid)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	for _, k := range resp.Cookies() {
		if k.Name == "sid" {
			c.sid = k.Value
			if k.MaxAge < 0 {
				c.sid = ""
			}
		}
	}
	return resp
}

// sessionUsers lists the users of the zone's live sessions ("-" for none).
func sessionUsers(t *testing.T) []string {
	t.Helper()
	resp, err := http.Get("http://localhost:2999/idle-sessions/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var all listResp
	if err := json.NewDecoder(resp.Body).Decode(&all); err != nil {
		t.Fatal(err)
	}
	var users []string
	for _, s := range all.Sessions {
		if s.User == nil {
			users = append(users, "-")
		} else {
			users = append(users, *s.User)
		}
	}
	return users
}

// TestUserFormOnlyFromAcceptedLogin: user_form names the user only on the
// answer that accepted the login and moved the session to a new value: a
// failed login (200, a new value all the same) names no one, nor does a
// form that names the user twice; the body reaches the upstream
// unchanged; the cookie store's re-encryption on later pages keeps the
// session and its user; a login as bob after alice is two sessions.
func TestUserFormOnlyFromAcceptedLogin(t *testing.T) {
	clk := useFakeClock(t)
	app, rc := newLoginFormApp(t), newReceiver(t)
	cfg := strings.Replace(caddyfileFor(t, app.URL, rc.URL, "login {\n\t\t\tmethod POST\n\t\t\tpath /login\n\t\t}\n\t\tuser_form username"), "user_header X-Idle-User", "", 1)
	tc := caddytest.NewTester(t)
	tc.InitServer(cfg, "caddyfile")

	c := &formClient{t: t}
	c.send("GET", "/", "") // a session before the login, as Redmine's
	wrong := "username=mallory&password=wrong&authenticity_token=a%2Bb%3D"
	if resp := c.send("POST", "/login", wrong); resp.StatusCode != http.StatusOK {
		t.Fatalf("failed login: %d", resp.StatusCode)
	}
	if u := sessionUsers(t); len(u) != 1 || u[0] != "-" {
		t.Fatalf("after a failed login (200): users %v, want one session naming no one", u)
	}
	c.send("POST", "/login", "username=alice&password=right")
	for range 3 {
		c.send("GET", "/page", "") // re-encrypted on each response: the same session
	}
	if u := sessionUsers(t); len(u) != 1 || u[0] != "alice" {
		t.Fatalf("after alice's login and three pages: users %v, want [alice]", u)
	}
	app.mu.Lock()
	if app.bodies[0] != wrong {
		t.Errorf("the login body reached the upstream as %q, want %q", app.bodies[0], wrong)
	}
	app.mu.Unlock()

	// bob signs in on the same browser: alice's session ends, bob's starts.
	c.send("POST", "/login", "username=bob&password=right")
	c.send("GET", "/page", "")
	evs := rc.wait(t, 1)
	if d, _ := evs[0]["data"].(map[string]any); d["user"] != "alice" || d["reason"] != "logout" {
		t.Fatalf("bob's login after alice's: first end %v, want alice's (logout)", evs[0]["data"])
	}
	if u := sessionUsers(t); len(u) != 1 || u[0] != "bob" {
		t.Fatalf("after bob's login: users %v, want [bob]", u)
	}
	c.send("POST", "/logout", "")

	// A form naming two users names none, though the app accepts it.
	c2 := &formClient{t: t}
	c2.send("POST", "/login", "username=alice&username=bob&password=right")
	if u := sessionUsers(t); len(u) != 1 || u[0] != "-" {
		t.Fatalf("a form naming two users: sessions %v, want one naming no one", u)
	}
	clk.advance(31 * time.Minute)
	evs = rc.wait(t, 2)
	if d, _ := evs[1]["data"].(map[string]any); d["user"] != "bob" || d["reason"] != "logout" {
		t.Fatalf("second end %v, want bob's logout", evs[1]["data"])
	}
}

// TestUserPlaceholder: the user from a Caddy placeholder, believed on the
// response that starts the session, not on later ones.
func TestUserPlaceholder(t *testing.T) {
	useFakeClock(t)
	app, rc := newLoginFormApp(t), newReceiver(t)
	cfg := strings.Replace(caddyfileFor(t, app.URL, rc.URL, "user_placeholder {http.request.header.X-Forwarded-User}"), "user_header X-Idle-User", "", 1)
	tc := caddytest.NewTester(t)
	tc.InitServer(cfg, "caddyfile")
	c := &formClient{t: t}
	req := func(path, user string) {
		r, _ := http.NewRequest("GET", "http://localhost:9080"+path, nil)
		r.Header.Set("X-Forwarded-User", user)
		if c.sid != "" {
			r.Header.Set("Cookie", "sid="+c.sid)
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		for _, k := range resp.Cookies() {
			if k.Name == "sid" {
				c.sid = k.Value
			}
		}
	}
	req("/", "carol")
	if u := sessionUsers(t); len(u) != 1 || u[0] != "carol" {
		t.Fatalf("users %v, want [carol]", u)
	}
}

func TestUserFormConfig(t *testing.T) {
	up := newApp(t)
	for _, tt := range []struct{ extra, want string }{
		{"user_form username", "user_form: needs a login block"},
		{"login {\n path /login\n}\nuser_form username 30x", `user_form: status "30x"`},
		{"login {\n path /login\n}\nuser_form a=b", "user_form"},
		{"login {\n path /login\n}", "login: says which requests are logins"},
		{"user_placeholder alice", "user_placeholder"},
	} {
		cfg := fmt.Sprintf("{\n\tadmin localhost:2999\n}\nhttp://localhost:9080 {\n\tidle_session {\n\t\tcookie sid\n\t\t%s\n\t}\n\treverse_proxy %s\n}\n",
			tt.extra, strings.TrimPrefix(up.URL, "http://"))
		if err := loadError(cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: error %v, want it to contain %q", tt.extra, err, tt.want)
		}
	}
}
