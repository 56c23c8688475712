package tests

// Secrets and exposure (issue #7, item 6):
//
//   - no raw session value in any log line, metric, admin response, webhook
//     (body and headers), or in the store file at rest;
//   - the store file, which holds the HMAC key, is 0600 in a 0700 directory;
//   - the admin routes answer only on the admin endpoint: on the site the
//     same paths go to the application like any other request;
//   - signatures and MACs are compared in constant time (a source check:
//     timing is not something a test on a shared machine can measure).

import (
	"bytes"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// adminRoutes are the admin API of docs/design.md, read-only calls first. {S}
// is a session's short hash, {U} a user.
var adminRoutes = []struct{ method, path string }{
	{http.MethodGet, "/idle-sessions/"},
	{http.MethodGet, "/idle-sessions/?user={U}"},
	{http.MethodGet, "/idle-sessions/?zone=sid&limit=5"},
	{http.MethodGet, "/idle-sessions/stats"},
	{http.MethodGet, "/idle-sessions/dead-letters"},
	{http.MethodPost, "/idle-sessions/dead-letters/retry"},
	{http.MethodDelete, "/idle-sessions/{S}"},
	{http.MethodDelete, "/idle-sessions/?user={U}"},
}

func TestReliabilityNoRawSessionValues(t *testing.T) {
	s := startStack(t, "idle 2s", "remaining_header X-Idle-Remaining")
	var raw []string // every cookie value a client sent or got

	// Sessions in every state: active, logged out, expired, replayed,
	// revoked, adopted from an unknown value, a failed webhook.
	active, _ := s.login("1")
	loggedOut, _ := s.login("2")
	expiring, _ := s.login("3")
	revokeMe, _ := s.login("4")
	raw = append(raw, active, loggedOut, expiring, revokeMe)
	adopted := "adopted-" + randomHex(16)
	raw = append(raw, adopted)
	for range 2 {
		s.C.Get(t, "/", WithCookie(UpstreamCookie, adopted))
	}
	s.page(active)
	s.status(active)
	s.C.Post(t, "/logout", WithCookie(UpstreamCookie, loggedOut))
	s.C.Get(t, "/", WithCookie(UpstreamCookie, loggedOut)) // a refused replay
	s.Recv.Fail(http.StatusInternalServerError, "")        // a failed attempt: LastError, a log line
	Eventually(t, 20*time.Second, 100*time.Millisecond, func() error {
		s.page(active)
		s.page(revokeMe) // stays active for the admin API's revoke below
		if st := s.status(expiring); st.Active {
			return fmt.Errorf("session 3 not expired yet")
		}
		return nil
	})
	s.Recv.WaitAttempts(t, 1, 10*time.Second)
	s.Recv.Succeed()
	s.C.Get(t, "/", WithCookie(UpstreamCookie, expiring)) // replay after expiry
	// Junk that is not a session: oversized, duplicated, malformed.
	for _, junk := range []string{strings.Repeat("J", 5000), "dup-" + randomHex(8)} {
		raw = append(raw, junk)
		s.C.Get(t, "/", WithRawCookie("sid="+junk+"; sid="+junk))
	}

	var seen []struct{ where, text string }
	add := func(where string, b []byte) { seen = append(seen, struct{ where, text string }{where, string(b)}) }
	adminChecked := 0

	// Admin API, when this build has it.
	status, _ := s.Caddy.Admin(t, http.MethodGet, "/idle-sessions/", nil)
	adminPresent := status != http.StatusNotFound
	if adminPresent {
		var list struct {
			Sessions []struct {
				Session string `json:"session"`
				User    string `json:"user"`
			} `json:"sessions"`
		}
		_, body := s.Caddy.Admin(t, http.MethodGet, "/idle-sessions/?user=4", nil)
		if err := json.Unmarshal(body, &list); err != nil || len(list.Sessions) != 1 {
			t.Fatalf("admin list of user 4: %s (%v)", body, err)
		}
		short := list.Sessions[0].Session
		for _, r := range adminRoutes {
			path := strings.NewReplacer("{S}", short, "{U}", "4").Replace(r.path)
			st, body := s.Caddy.Admin(t, r.method, path, nil)
			if r.method == http.MethodGet && st != http.StatusOK {
				t.Errorf("admin %s %s: %d %s", r.method, path, st, body)
			}
			if st >= 500 {
				t.Errorf("admin %s %s: %d %s", r.method, path, st, body)
			}
			add("admin "+r.method+" "+path, body)
			adminChecked++
		}
	} else {
		t.Logf("the admin API (/idle-sessions/) is not in this build: its responses are checked once it is")
	}

	// Admin routes are not on the site: the application gets those paths.
	for _, r := range adminRoutes {
		path := strings.NewReplacer("{S}", "0000000000000000", "{U}", "1").Replace(r.path)
		opt, probe := Probe()
		resp, err := s.C.Try(r.method, path, WithCookie(UpstreamCookie, active), opt)
		if err != nil {
			t.Fatal(err)
		}
		if len(s.Up.Probed(probe)) != 1 {
			t.Errorf("site %s %s was answered by Caddy (%d %s), not passed to the application", r.method, path, resp.StatusCode, resp.Body)
		}
		if bytes.Contains(resp.Body, []byte(`"sessions"`)) || bytes.Contains(resp.Body, []byte(`"dead_letters"`)) {
			t.Errorf("site %s %s shows admin data: %s", r.method, path, resp.Body)
		}
	}
	if st := s.status(active); !st.Active {
		t.Errorf("a DELETE on the site revoked a session")
	}

	// Metrics, webhooks (bodies and every header), logs, and the store
	// file at rest.
	_, metrics := s.Caddy.Admin(t, http.MethodGet, "/metrics", nil)
	add("metrics", metrics)
	s.Recv.WaitEvents(t, 2, 20*time.Second)
	for _, ev := range s.Recv.Events() {
		add("webhook "+ev.ID, ev.Raw)
	}
	for _, a := range s.Recv.Attempts() {
		add("webhook headers "+a.ID, []byte(a.ID+" "+a.Timestamp))
	}
	db := filepath.Join(s.Caddy.DataDir(), "idlegate", "sessions.db")
	// The activity journal beside the file, while Caddy runs (a clean stop
	// moves it into the file).
	journal, err := os.ReadFile(db + "-activity")
	if err != nil {
		t.Fatal(err)
	}
	add("activity journal", journal)
	s.Caddy.Stop() // flush everything to the store first
	file, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	add("store file", file)
	add("caddy log", []byte(s.Caddy.Logs()))
	if got := s.Caddy.Logs(); !strings.Contains(got, "session ended") {
		t.Errorf("the log has no session lines to check")
	}

	for _, v := range raw {
		for _, w := range seen {
			if strings.Contains(w.text, v) {
				i := strings.Index(w.text, v)
				t.Errorf("raw session value %.20q… appears in %s: …%s…", v, w.where, w.text[max(0, i-80):min(len(w.text), i+len(v)+20)])
			}
		}
	}
	lines := strings.Count(s.Caddy.Logs(), "\n")
	t.Logf("checked %d raw values against %d log lines, %d bytes of metrics, %d webhooks, the %d-byte store file and %d admin responses",
		len(raw), lines, len(metrics), len(s.Recv.Events()), len(file), adminChecked)

	// The store holds the HMAC key: private file, private directory.
	for path, want := range map[string]os.FileMode{db: 0o600, db + "-activity": 0o600, filepath.Dir(db): 0o700} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode().Perm(), want)
		}
	}
}

// TestReliabilityConstantTimeCompare checks the source: every comparison
// of a MAC, signature, hash or digest in non-test code goes through
// hmac.Equal or subtle.ConstantTimeCompare, never == or bytes.Equal.
func TestReliabilityConstantTimeCompare(t *testing.T) {
	secretish := regexp.MustCompile(`(?i)(mac|sig|digest|hash|tag|want|sum)`)
	root := ".."
	fset := token.NewFileSet()
	checked, constantTime := 0, 0
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "tests" || d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".") || d.Name() == "node_modules") && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		checked++
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CallExpr:
				if sel, ok := n.Fun.(*ast.SelectorExpr); ok {
					if x, ok := sel.X.(*ast.Ident); ok {
						switch x.Name + "." + sel.Sel.Name {
						case "hmac.Equal", "subtle.ConstantTimeCompare":
							constantTime++
						case "bytes.Equal", "bytes.Compare":
							for _, a := range n.Args {
								if secretish.MatchString(exprString(a)) {
									t.Errorf("%s: %s.%s on %s: use hmac.Equal", fset.Position(n.Pos()), x.Name, sel.Sel.Name, exprString(a))
								}
							}
						}
					}
				}
			case *ast.BinaryExpr:
				if n.Op == token.EQL || n.Op == token.NEQ {
					l, r := exprString(n.X), exprString(n.Y)
					if (secretish.MatchString(l) && secretish.MatchString(r)) && !isLenOrNil(n.X) && !isLenOrNil(n.Y) {
						t.Logf("%s: %s %s %s (review: not a secret comparison?)", fset.Position(n.Pos()), l, n.Op, r)
					}
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if constantTime < 2 {
		t.Errorf("found %d constant-time comparisons in %d files; webhook.Verify and the Laravel MAC check must use them", constantTime, checked)
	}
}

func exprString(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.Ident:
		return e.Name
	case *ast.SelectorExpr:
		return exprString(e.X) + "." + e.Sel.Name
	case *ast.SliceExpr:
		return exprString(e.X) + "[:]"
	case *ast.IndexExpr:
		return exprString(e.X) + "[i]"
	case *ast.CallExpr:
		return exprString(e.Fun) + "()"
	case *ast.StarExpr:
		return "*" + exprString(e.X)
	case *ast.BasicLit:
		return e.Value
	}
	return fmt.Sprintf("%T", e)
}

func isLenOrNil(e ast.Expr) bool {
	s := exprString(e)
	return s == "nil" || s == "len()" || strings.HasPrefix(s, "len")
}
