package warning

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestBrowser drives warning.js in a real Chromium with playwright-core,
// against a fake session whose deadline the test controls. It is opt-in:
//
//	(cd warning/testdata/browser && npm i --no-save --no-package-lock playwright-core)
//	IDLEGATE_BROWSER=1 go test -run TestBrowser ./warning/
//
// CHROMIUM overrides the browser path (default /usr/bin/chromium).
func TestBrowser(t *testing.T) {
	if os.Getenv("IDLEGATE_BROWSER") == "" {
		t.Skip("set IDLEGATE_BROWSER=1 to run the browser check")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not installed")
	}
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat("testdata/browser/node_modules/playwright-core"); err != nil {
		t.Skip("playwright-core not installed in testdata/browser")
	}
	srv := httptest.NewServer(newFakeApp(t))
	defer srv.Close()
	cmd := exec.Command(node, filepath.Join("testdata", "browser", "check.mjs"), srv.URL)
	cmd.Env = append(os.Environ(), "CHROMIUM="+chromium)
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatal(err)
	}
}

// fakeApp is an application behind a pretend idlegate: one session whose
// deadline moves on every page load and keepalive, an idle timeout of
// 30 s, and a control endpoint for the test.
type fakeApp struct {
	mu       sync.Mutex
	deadline time.Time // zero: the session has ended
	fail     bool      // status answers 500
	touches  int
	page     []byte
}

func newFakeApp(t *testing.T) http.Handler {
	page, err := os.ReadFile("testdata/demo.html")
	if err != nil {
		t.Fatal(err)
	}
	a := &fakeApp{page: page}
	mux := http.NewServeMux()
	mux.HandleFunc("/.idlegate/status/warning.js", ServeScript)
	mux.HandleFunc("/.idlegate/status", a.status)
	mux.HandleFunc("/ctl", a.control)
	mux.HandleFunc("/signed-out", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, "<!doctype html><title>signed out</title><h1>Signed out</h1>")
	})
	mux.HandleFunc("/", a.serve)
	return mux
}

const fakeIdle = 30 * time.Second

func (a *fakeApp) serve(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	a.mu.Lock()
	if !q.Has("anon") {
		ttl := fakeIdle // a page load is activity; ?ttl=N shortens the deadline
		if n, err := strconv.ParseFloat(q.Get("ttl"), 64); err == nil {
			ttl = time.Duration(n * float64(time.Second))
		}
		a.deadline = time.Now().Add(ttl)
	}
	a.mu.Unlock()
	opts := TagOptions{
		Src:        "/.idlegate/status/warning.js",
		Status:     "/.idlegate/status",
		Redirect:   "/signed-out",
		WarnBefore: 5 * time.Second,
		Session:    "demo",
		EventsOnly: q.Get("events") == "1",
		Lang:       q.Get("lang"),
	}
	if q.Has("anon") {
		opts.Session = "anon"
	}
	nonce := strconv.FormatInt(time.Now().UnixNano(), 36)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy",
		"default-src 'none'; script-src 'nonce-"+nonce+"'; style-src 'nonce-"+nonce+"'; connect-src 'self'")
	in := NewInjector(w, func(n string) string { o := opts; o.Nonce = n; return Tag(o) })
	defer in.Close()
	page := strings.ReplaceAll(string(a.page), "{{nonce}}", nonce)
	// two writes that split </head>, as a chunked upstream might
	cut := strings.Index(page, "</head>") + 4
	in.Write([]byte(page[:cut]))
	in.Write([]byte(page[cut:]))
}

func (a *fakeApp) status(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.fail {
		http.Error(w, "down", http.StatusInternalServerError)
		return
	}
	now := time.Now()
	active := !a.deadline.IsZero() && now.Before(a.deadline)
	if active && r.URL.Query().Get("touch") == "1" {
		a.deadline = now.Add(fakeIdle)
		a.touches++
	}
	remaining := 0
	if active {
		remaining = int(a.deadline.Sub(now) / time.Second)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	fmt.Fprintf(w, `{"active":%t,"remaining_seconds":%d,"expires_at":%q,"idle_timeout_seconds":%d}`,
		active, remaining, a.deadline.UTC().Format(time.RFC3339), int(fakeIdle/time.Second))
}

// control: ?remaining=N sets the deadline N seconds ahead (N <= 0 ends the
// session), ?fail=1|0 breaks the status endpoint; always answers the number
// of keepalives seen.
func (a *fakeApp) control(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	q := r.URL.Query()
	if v := q.Get("remaining"); v != "" {
		n, _ := strconv.ParseFloat(v, 64)
		a.deadline = time.Time{}
		if n > 0 {
			a.deadline = time.Now().Add(time.Duration(n * float64(time.Second)))
		}
	}
	if v := q.Get("fail"); v != "" {
		a.fail = v == "1"
	}
	fmt.Fprintf(w, `{"touches":%d}`, a.touches)
}
