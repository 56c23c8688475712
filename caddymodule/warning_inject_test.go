package caddymodule

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// hostilePage hides "</head>" and "<body" in an attribute, a comment and a
// script before the real end of its head; the upstream streams it in
// small flushed writes, so attributes are cut across writes.
const hostilePage = `<!doctype html><html><head>` +
	`<meta name="description" content="</head><img src=x onerror=alert(1)>">` +
	`<!-- </head><body onload=alert(2)> -->` +
	`<script>var s = "</head><body>";</script>` +
	`<title>t</title></head><body><p>hi</p></body></html>`

// Through a real Caddy, the warning tag lands before the real </head>: the
// app's markup in attributes, comments and scripts stays what it was.
func TestInjectWarningHostilePageThroughCaddy(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/login" {
			http.SetCookie(w, &http.Cookie{Name: "sid", Value: "warn-session", Path: "/"})
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		for p := hostilePage; len(p) > 0; {
			n := min(len(p), 7)
			io.WriteString(w, p[:n])
			w.(http.Flusher).Flush()
			p = p[n:]
		}
	}))
	t.Cleanup(up.Close)
	site, _ := startSite(t, up.URL, "inject_warning")

	if r := fetch(t, site+"/login", ""); r.status != 200 {
		t.Fatalf("login: %d", r.status)
	}
	req, _ := http.NewRequest(http.MethodGet, site+"/page", nil)
	req.Header.Set("Cookie", "sid=warn-session")
	req.Header.Set("Sec-Fetch-Dest", "document")
	req.Header.Set("Accept", "text/html")
	resp, err := plain.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	body := string(b)
	if resp.StatusCode != 200 {
		t.Fatalf("page: %d", resp.StatusCode)
	}
	at := strings.Index(body, "<script src=")
	end := strings.Index(body[max(at, 0):], "</script>")
	if at < 0 || end < 0 {
		t.Fatalf("no tag injected: %s", body)
	}
	tag := body[at : at+end+len("</script>")]
	if !strings.Contains(tag, "data-idlegate") || body[:at]+body[at+len(tag):] != hostilePage {
		t.Fatalf("not the page plus one tag: %s", body)
	}
	if want := `<title>t</title>` + tag + `</head><body>`; !strings.Contains(body, want) {
		t.Errorf("tag not before the real </head>: %s", body)
	}
	doc, err := html.Parse(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var elements []string
	for n := range doc.Descendants() {
		if n.Type == html.ElementNode {
			elements = append(elements, n.Data)
		}
		if n.DataAtom == atom.Img || (n.DataAtom == atom.Body && len(n.Attr) > 0) {
			t.Errorf("the app's inert text became markup: <%s %v>", n.Data, n.Attr)
		}
	}
	if got := strings.Join(elements, " "); got != "html head meta script title script body p" {
		t.Errorf("elements: %s", got)
	}
}
