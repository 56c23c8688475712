package warning

import (
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestTag(t *testing.T) {
	got := Tag(TagOptions{
		Src:        "/.idlegate/status/warning.js",
		Status:     "/.idlegate/status",
		Redirect:   `/login?next=/a&b="><script>alert(1)</script>`,
		WarnBefore: 90 * time.Second,
		Session:    "5f2c9a1e",
		EventsOnly: true,
		Lang:       "de",
		Body:       "Noch {time} <b>&</b>",
		Nonce:      `n"o`,
	})
	want := `<script src="/.idlegate/status/warning.js?v=` + Version() + `" defer data-idlegate nonce="n&#34;o"` +
		` data-status="/.idlegate/status" data-keepalive="/.idlegate/status?touch=1"` +
		` data-redirect="/login?next=/a&amp;b=&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"` +
		` data-warn="90" data-session="5f2c9a1e" data-events-only="1" data-lang="de"` +
		` data-text-body="Noch {time} &lt;b&gt;&amp;&lt;/b&gt;"></script>`
	if got != want {
		t.Errorf("Tag\n got %s\nwant %s", got, want)
	}
}

func TestTagDefaults(t *testing.T) {
	got := Tag(TagOptions{Src: "/s/w.js?x=1", Status: "/s?zone=a"})
	for _, want := range []string{`src="/s/w.js?x=1&amp;v=`, `data-keepalive="/s?zone=a&amp;touch=1"`, `data-warn="120"`} {
		if !strings.Contains(got, want) {
			t.Errorf("%s lacks %s", got, want)
		}
	}
	for _, absent := range []string{"nonce", "data-redirect", "data-events-only", "data-text"} {
		if strings.Contains(got, absent) {
			t.Errorf("%s has %s", got, absent)
		}
	}
}

func TestServeScript(t *testing.T) {
	rec := httptest.NewRecorder()
	ServeScript(rec, httptest.NewRequest("GET", "/s/warning.js?v="+Version(), nil))
	if rec.Code != 200 || rec.Body.String() != string(Script()) {
		t.Fatalf("status %d", rec.Code)
	}
	h := rec.Header()
	if h.Get("ETag") != ETag() || !strings.HasPrefix(h.Get("Content-Type"), "text/javascript") ||
		!strings.Contains(h.Get("Cache-Control"), "immutable") {
		t.Errorf("headers %v", h)
	}
	r := httptest.NewRequest("GET", "/s/warning.js", nil)
	r.Header.Set("If-None-Match", ETag())
	rec = httptest.NewRecorder()
	ServeScript(rec, r)
	if rec.Code != http.StatusNotModified || rec.Header().Get("Cache-Control") != "no-cache" {
		t.Errorf("conditional GET: %d %v", rec.Code, rec.Header())
	}
}

func TestScript(t *testing.T) {
	if n := len(Script()); n > 12<<10 {
		t.Errorf("script is %d bytes; keep it small", n)
	}
	for _, s := range []string{"http://", "https://", "import ", "require("} {
		if strings.Contains(string(Script()), s) {
			t.Errorf("script refers to %q: it must stay self-contained", s)
		}
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not installed; syntax not checked")
	}
	if out, err := exec.Command(node, "--check", "warning.js").CombinedOutput(); err != nil {
		t.Errorf("node --check: %v\n%s", err, out)
	}
}
