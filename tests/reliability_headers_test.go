package tests

// Hostile headers (issue #7, item 5), through the binary: oversized and
// duplicated request headers, and user-header values from the upstream
// that are duplicated, huge, non-UTF-8 or carry control characters. No
// 5xx, no crash, live sessions unharmed, the user header never reaches the
// client, and only a clean user name is ever recorded.

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

const headersCaddyfile = `{
	admin 127.0.0.1:{ADMIN}
	default_bind 127.0.0.1
	grace_period 3s
}
http://127.0.0.1:{PORT} {
	idle_session {
		cookie sid
		user_header X-Idle-User
		idle 1s
		webhook {HOOK} {
			secret {SECRET}
			include_anonymous
		}
	}
	reverse_proxy {UP}
}
`

func TestReliabilityHostileHeaders(t *testing.T) {
	needCaddy(t)
	// An upstream that issues a session and names its user with whatever
	// the test asks for, raw.
	users := map[string][]string{
		"dup":      {"alice", "mallory"},
		"huge":     {strings.Repeat("u", 300)},
		"notutf8":  {"\xff\xfe\xfd"},
		"nel":      {"bob\u0085admin"},
		"csi":      {"\u009b31mred"},
		"ok":       {"carol"},
		"tabspace": {"  dave\t"},
	}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/login" {
			http.SetCookie(w, &http.Cookie{Name: "sid", Value: randomHex(20), Path: "/"})
			for _, v := range users[r.URL.Query().Get("as")] {
				w.Header()["X-Idle-User"] = append(w.Header()["X-Idle-User"], v) // raw, unvalidated
			}
		}
		fmt.Fprint(w, "ok")
	}))
	defer up.Close()
	recv := NewReceiver(t)
	port := strconv.Itoa(FreePort(t))
	caddy := StartCaddy(t, Render(t, headersCaddyfile, map[string]string{
		"PORT": port, "UP": strings.TrimPrefix(up.URL, "http://"), "HOOK": recv.Hook(), "SECRET": TestSecret,
	}))
	addr := "127.0.0.1:" + port
	c := NewClient("http://" + addr)

	sids := map[string]string{}
	for as := range users {
		r := c.Post(t, "/login?as="+as)
		if v := r.Header.Values("X-Idle-User"); len(v) != 0 {
			t.Errorf("%s: the user header reached the client: %q", as, v)
		}
		ck := r.SetCookie("sid")
		if r.StatusCode != http.StatusOK || ck == nil {
			t.Fatalf("%s: login %s", as, r)
		}
		sids[as] = ck.Value
	}
	live := sids["ok"]

	// Request side: oversized and duplicated headers.
	big := strings.Repeat("x", 2<<20)
	if r, err := c.Try(http.MethodGet, "/", WithRawCookie("sid="+big)); err == nil && r.StatusCode >= 500 {
		t.Errorf("2 MiB cookie header: %d", r.StatusCode)
	}
	if r, err := c.Try(http.MethodGet, "/", WithRawCookie("sid="+strings.Repeat("y", 8000))); err != nil || r.StatusCode != http.StatusOK {
		t.Errorf("an 8 KB cookie value is not a session, the request goes on: %v %v", r, err)
	}
	var raw strings.Builder
	fmt.Fprintf(&raw, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", addr)
	for i := range 500 {
		fmt.Fprintf(&raw, "Cookie: sid=%s; other%d=%d\r\n", randomHex(8), i, i)
	}
	raw.WriteString("Cookie: sid=" + live + "\r\n\r\n")
	if resp, _, err := RawHTTP(addr, []byte(raw.String())); err == nil && resp.StatusCode >= 500 {
		t.Errorf("500 Cookie headers: %d", resp.StatusCode)
	}
	dup := "sid=" + live + "; sid=" + randomHex(8) + "; sid=" + live
	if r, err := c.Try(http.MethodGet, "/", WithRawCookie(dup)); err != nil || r.StatusCode >= 500 {
		t.Errorf("duplicated sid cookies: %v %v", r, err)
	}
	for i := range 3 {
		r, _, err := RawHTTP(addr, []byte("GET / HTTP/1.1\r\nHost: "+addr+"\r\nX-Idle-User: forged\r\nX-Idle-User: "+strings.Repeat("f", 100000)+
			"\r\nCookie: sid="+sids["ok"]+"\r\nConnection: close\r\n\r\n"))
		if err != nil || r.StatusCode >= 500 {
			t.Errorf("request %d with a forged user header: %v %v", i, r, err)
		}
	}

	// Every session ends (idle 1s); the webhooks show only clean users:
	// the first of duplicated values, trimmed, and none for the rest.
	want := map[string]string{"dup": "alice", "ok": "carol", "tabspace": "dave", "huge": "", "notutf8": "", "nel": "", "csi": ""}
	evs := recv.WaitEvents(t, len(users), 30*time.Second)
	gotUsers := map[string]int{}
	for _, ev := range evs {
		gotUsers[ev.Data.User]++
	}
	for _, u := range []string{"alice", "carol", "dave"} {
		if gotUsers[u] != 1 {
			t.Errorf("user %q reported %d times: %s", u, gotUsers[u], recv.Summary())
		}
	}
	if gotUsers[""] != 4 {
		t.Errorf("the four bad user values must leave their sessions anonymous: %v", gotUsers)
	}
	for u := range gotUsers {
		if u != "" && u != "alice" && u != "carol" && u != "dave" {
			t.Errorf("a bad user value was recorded: %q", u)
		}
	}
	if !caddy.Running() || strings.Contains(caddy.Logs(), "panic") {
		t.Fatalf("caddy crashed or panicked:\n%s", tail(caddy.Logs(), 30))
	}
	t.Logf("hostile headers: %d user-header cases (%v), 2 MiB and 8 KB cookies, 500 Cookie lines, duplicated sids, forged request user headers; users recorded %v", len(users), want, gotUsers)
}
