package warning

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

func testTag(nonce string) string {
	return Tag(TagOptions{Src: "/s/warning.js", Status: "/s", Nonce: nonce})
}

// serve runs one response through an Injector: header, status, then body in
// the given chunks, then Close.
func serve(t *testing.T, h http.Header, status int, chunks ...string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	in := NewInjector(rec, testTag)
	for k, v := range h {
		in.Header()[k] = v
	}
	in.WriteHeader(status)
	for _, c := range chunks {
		if c == "" {
			continue
		}
		if n, err := in.Write([]byte(c)); err != nil || n != len(c) {
			t.Fatalf("Write(%q) = %d, %v", c, n, err)
		}
	}
	if err := in.Close(); err != nil {
		t.Fatal(err)
	}
	return rec
}

func htmlHeader() http.Header { return http.Header{"Content-Type": {"text/html; charset=utf-8"}} }

func TestInjectPlacement(t *testing.T) {
	tag := testTag("")
	for _, tc := range []struct{ name, in, want string }{
		{"head", "<html><head><title>x</title></head><body>hi</body></html>",
			"<html><head><title>x</title>" + tag + "</head><body>hi</body></html>"},
		{"head upper case with space", "<HTML><HEAD></HEAD ><BODY>", "<HTML><HEAD>" + tag + "</HEAD ><BODY>"},
		{"not </header>", "<head></header></head>", "<head></header>" + tag + "</head>"},
		{"head end omitted", "<html><title>x</title><body class=a>hi</body>", "<html><title>x</title>" + tag + "<body class=a>hi</body>"},
		{"no head: before the first body element", "<!doctype html><p>hi</p></body></html>", "<!doctype html>" + tag + "<p>hi</p></body></html>"},
		{"no head: before body text", "<title>t</title>\n hello", "<title>t</title>\n " + tag + "hello"},
		{"no head: before </body>", "<meta charset=utf-8></body>", "<meta charset=utf-8>" + tag + "</body>"},
		{"no head: before <template>", "<head><template><div></head></template></head>", "<head>" + tag + "<template><div></head></template></head>"},
		{"head ends at the end of the page", "<!doctype html><title>t</title>\n", "<!doctype html><title>t</title>\n" + tag},
		{"in script", `<head><script>s="</head><body>"</script></head>`, `<head><script>s="</head><body>"</script>` + tag + `</head>`},
		{"in comment", `<head><!-- </head> --></head>`, `<head><!-- </head> -->` + tag + `</head>`},
		{"in title", `<head><title></head></title></head>`, `<head><title></head></title>` + tag + `</head>`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := serve(t, htmlHeader(), 200, tc.in)
			if got := rec.Body.String(); got != tc.want {
				t.Errorf("body\n got %s\nwant %s", got, tc.want)
			}
			// Streamed on once the tag's place was known (no length), or
			// held back to the end (exact length).
			if cl, ok := rec.Header()["Content-Length"]; ok && cl[0] != strconv.Itoa(len(tc.want)) {
				t.Errorf("Content-Length = %q, want none or %d", cl, len(tc.want))
			}
		})
	}
}

// Every way of cutting the page into two writes gives the same result,
// including "</he" + "ad>" and "<scr" + "ipt>".
func TestInjectSplitWrites(t *testing.T) {
	page := `<html><head><script>x="</head>"</script><!-- <body> --></head><body>hi</body></html>`
	want := serve(t, htmlHeader(), 200, page).Body.String()
	if !strings.Contains(want, "-->"+testTag("")+"</head><body>") {
		t.Fatalf("unexpected placement: %s", want)
	}
	for cut := 0; cut <= len(page); cut++ {
		if got := serve(t, htmlHeader(), 200, page[:cut], page[cut:]).Body.String(); got != want {
			t.Fatalf("cut at %d (%q|%q):\n got %s\nwant %s", cut, page[:cut], page[cut:], got, want)
		}
	}
	// and one byte at a time
	var chunks []string
	for i := range page {
		chunks = append(chunks, page[i:i+1])
	}
	if got := serve(t, htmlHeader(), 200, chunks...).Body.String(); got != want {
		t.Fatalf("byte by byte:\n got %s\nwant %s", got, want)
	}
}

func TestInjectContentLength(t *testing.T) {
	tag := testTag("")
	t.Run("declared length", func(t *testing.T) {
		h := htmlHeader()
		h.Set("Content-Length", "13")
		rec := serve(t, h, 200, "<head></head>")
		if got, want := rec.Header().Get("Content-Length"), strconv.Itoa(13+len(tag)); got != want {
			t.Errorf("Content-Length = %s, want %s", got, want)
		}
	})
	t.Run("held back to the end gets exact length", func(t *testing.T) {
		rec := serve(t, htmlHeader(), 200, "<title>only a head", "</title>")
		if got, want := rec.Header().Get("Content-Length"), strconv.Itoa(len("<title>only a head</title>")+len(tag)); got != want {
			t.Errorf("Content-Length = %s, want %s", got, want)
		}
	})
	t.Run("wrong declared length is not trusted once held back", func(t *testing.T) {
		h := htmlHeader()
		h.Set("Content-Length", "999")
		rec := serve(t, h, 200, "<title>short</title>")
		if got, want := rec.Header().Get("Content-Length"), strconv.Itoa(len("<title>short</title>")+len(tag)); got != want {
			t.Errorf("Content-Length = %s, want %s", got, want)
		}
	})
	big := strings.Repeat("x", Window+10)
	t.Run("streamed page with declared length", func(t *testing.T) {
		page := "<head></head><p>" + big + "</body>"
		h := htmlHeader()
		h.Set("Content-Length", strconv.Itoa(len(page)))
		rec := serve(t, h, 200, page[:Window/2], page[Window/2:len(page)-7], page[len(page)-7:])
		if got, want := rec.Header().Get("Content-Length"), strconv.Itoa(len(page)+len(tag)); got != want {
			t.Errorf("Content-Length = %s, want %s", got, want)
		}
		if rec.Body.String() != "<head>"+tag+page[6:] {
			t.Errorf("tag not before </head> (len %d)", rec.Body.Len())
		}
	})
	t.Run("streamed page without declared length", func(t *testing.T) {
		rec := serve(t, htmlHeader(), 200, "<head></head><p>"+big, "</body></html>")
		if cl, ok := rec.Header()["Content-Length"]; ok {
			t.Errorf("Content-Length = %v, want none", cl)
		}
		if !strings.HasPrefix(rec.Body.String(), "<head>"+tag+"</head><p>xxx") || !strings.HasSuffix(rec.Body.String(), "x</body></html>") {
			t.Errorf("tag not before </head>")
		}
	})
	t.Run("one write larger than the window", func(t *testing.T) {
		page := "<head></head><p>" + big + big + "</p>"
		rec := serve(t, htmlHeader(), 200, page)
		if rec.Body.String() != "<head>"+tag+page[6:] {
			t.Errorf("tag not before </head> (len %d)", rec.Body.Len())
		}
	})
}

func TestInjectLeavesAlone(t *testing.T) {
	page := "<html><head></head><body></body></html>"
	with := func(kv ...string) http.Header {
		h := htmlHeader()
		for i := 0; i < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	for _, tc := range []struct {
		name   string
		h      http.Header
		status int
		body   string
	}{
		{"gzip", with("Content-Encoding", "gzip", "Content-Length", "7"), 200, "\x1f\x8b\x08\x00gz"},
		{"json", http.Header{"Content-Type": {"application/json"}}, 200, `{"a":"</head>"}`},
		{"no content type", http.Header{}, 200, page},
		{"xhtml is not text/html", http.Header{"Content-Type": {"application/xhtml+xml"}}, 200, page},
		{"not modified", with("ETag", `"x"`), 304, ""},
		{"no content", htmlHeader(), 204, ""},
		{"partial content", with("Content-Range", "bytes 0-38/100"), 206, page},
		{"redirect", htmlHeader(), 302, page},
		{"error", htmlHeader(), 500, page},
		{"no-transform", with("Cache-Control", "private, no-transform"), 200, page},
		{"already injected", htmlHeader(), 200, `<head><script src="/x.js" DATA-IDLEGATE></script></head>`},
		{"csp without nonce or self", with("Content-Security-Policy", "script-src https://cdn.example"), 200, page},
		{"csp strict-dynamic without nonce", with("Content-Security-Policy", "script-src 'self' 'strict-dynamic' 'sha256-abc'"), 200, page},
		{"head request", with("Content-Length", "1234"), 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.h.Clone()
			rec := serve(t, tc.h, tc.status, tc.body)
			if rec.Code != tc.status {
				t.Errorf("status %d, want %d", rec.Code, tc.status)
			}
			if got := rec.Body.String(); got != tc.body {
				t.Errorf("body changed: %q", got)
			}
			for k := range want {
				if rec.Header().Get(k) != want.Get(k) {
					t.Errorf("header %s = %q, want %q", k, rec.Header().Get(k), want.Get(k))
				}
			}
		})
	}
}

func TestInjectNonce(t *testing.T) {
	for _, tc := range []struct {
		csp   []string
		nonce string
	}{
		{[]string{"default-src 'self'; script-src 'nonce-Ab+/9=' 'strict-dynamic'"}, "Ab+/9="},
		{[]string{"default-src 'nonce-XYZ'"}, "XYZ"},
		{[]string{"script-src 'self'"}, ""},
		{[]string{"img-src *"}, ""},
		{[]string{"script-src 'self' 'nonce-n1'"}, "n1"},
		{[]string{"script-src 'self'", "script-src 'nonce-n2'"}, "n2"},
		{[]string{"script-src 'self', script-src 'nonce-n3'"}, "n3"},
		{[]string{"script-src-elem 'nonce-elem'; script-src 'nonce-other'"}, "elem"},
	} {
		h := htmlHeader()
		h["Content-Security-Policy"] = tc.csp
		rec := serve(t, h, 200, "<head></head>")
		if want := "<head>" + testTag(tc.nonce) + "</head>"; rec.Body.String() != want {
			t.Errorf("CSP %q:\n got %s\nwant %s", tc.csp, rec.Body.String(), want)
		}
	}
	// two policies that each insist on a different nonce cannot both be met
	if _, ok := cspNonce([]string{"script-src 'nonce-a'", "script-src 'nonce-b'"}); ok {
		t.Error("conflicting nonces accepted")
	}
	if _, ok := cspNonce([]string{"script-src 'none'"}); ok {
		t.Error("'none' accepted")
	}
}

func TestInjectHeaders(t *testing.T) {
	h := htmlHeader()
	h.Set("ETag", `"v1"`)
	h.Set("Accept-Ranges", "bytes")
	rec := serve(t, h, 200, "<head></head>")
	if got := rec.Header().Get("ETag"); got != `W/"v1"` {
		t.Errorf("ETag = %s, want weak", got)
	}
	if got := rec.Header().Get("Accept-Ranges"); got != "" {
		t.Errorf("Accept-Ranges = %s, want none", got)
	}
}

// hintsRecorder records informational statuses apart, as net/http sends them.
type hintsRecorder struct {
	*httptest.ResponseRecorder
	hints []int
}

func (h *hintsRecorder) WriteHeader(code int) {
	if code < 200 {
		h.hints = append(h.hints, code)
		return
	}
	h.ResponseRecorder.WriteHeader(code)
}

func TestInjectEarlyHints(t *testing.T) {
	hr := &hintsRecorder{ResponseRecorder: httptest.NewRecorder()}
	rec := hr.ResponseRecorder
	in := NewInjector(hr, testTag)
	in.Header().Set("Link", "</app.css>; rel=preload")
	in.WriteHeader(http.StatusEarlyHints)
	in.Header().Set("Content-Type", "text/html")
	in.WriteHeader(200)
	in.Write([]byte("<head></head>"))
	in.Close()
	if len(hr.hints) != 1 || hr.hints[0] != http.StatusEarlyHints {
		t.Errorf("103 not passed on: %v", hr.hints)
	}
	if !strings.Contains(rec.Body.String(), "data-idlegate") {
		t.Errorf("not injected after 103: %s", rec.Body.String())
	}
}

func TestInjectImplicitStatus(t *testing.T) {
	rec := httptest.NewRecorder()
	in := NewInjector(rec, testTag)
	in.Header().Set("Content-Type", "text/html")
	in.Write([]byte("<head></head>"))
	in.Close()
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "data-idlegate") {
		t.Errorf("code %d body %s", rec.Code, rec.Body.String())
	}
}

func TestInjectFlushIsDeferred(t *testing.T) {
	rec := httptest.NewRecorder()
	in := NewInjector(rec, testTag)
	in.Header().Set("Content-Type", "text/html")
	in.WriteHeader(200)
	in.Write([]byte("<html><head><title>t</ti"))
	if err := http.NewResponseController(in).Flush(); err != nil {
		t.Fatal(err)
	}
	if rec.Flushed || rec.Body.Len() > 0 {
		t.Fatal("flushed before the place of the tag was known")
	}
	in.Write([]byte("tle></head><body>"))
	if !rec.Flushed || !strings.Contains(rec.Body.String(), "data-idlegate") {
		t.Fatalf("deferred flush not done: flushed=%v body=%s", rec.Flushed, rec.Body.String())
	}
	in.Write([]byte("more"))
	in.Flush()
	in.Close()
	if !strings.HasSuffix(rec.Body.String(), "<body>more") {
		t.Errorf("body %s", rec.Body.String())
	}
}

// deadlineRecorder is a ResponseWriter with a method that only
// http.ResponseController finds, through Unwrap.
type deadlineRecorder struct {
	*httptest.ResponseRecorder
	deadline time.Time
}

func (d *deadlineRecorder) SetWriteDeadline(t time.Time) error { d.deadline = t; return nil }

func TestInjectUnwrap(t *testing.T) {
	d := &deadlineRecorder{ResponseRecorder: httptest.NewRecorder()}
	in := NewInjector(d, testTag)
	when := time.Unix(1e9, 0)
	if err := http.NewResponseController(in).SetWriteDeadline(when); err != nil {
		t.Fatal(err)
	}
	if !d.deadline.Equal(when) {
		t.Error("SetWriteDeadline did not reach the wrapped writer")
	}
}

func TestShouldInject(t *testing.T) {
	req := func(method string, kv ...string) *http.Request {
		r := httptest.NewRequest(method, "/", nil)
		for i := 0; i < len(kv); i += 2 {
			r.Header.Set(kv[i], kv[i+1])
		}
		return r
	}
	nav := "text/html,application/xhtml+xml,*/*;q=0.8"
	for _, tc := range []struct {
		r    *http.Request
		want bool
	}{
		{req("GET", "Accept", nav, "Sec-Fetch-Dest", "document"), true},
		{req("GET", "Accept", nav), true},
		{req("HEAD", "Accept", nav, "Sec-Fetch-Dest", "document"), false},
		{req("POST", "Accept", nav, "Sec-Fetch-Dest", "document"), false},
		{req("GET", "Accept", nav, "Sec-Fetch-Dest", "iframe"), false},
		{req("GET", "Accept", "text/html", "Sec-Fetch-Dest", "empty"), false},
		{req("GET", "Accept", nav, "X-Requested-With", "XMLHttpRequest"), false},
		{req("GET", "Accept", nav, "HX-Request", "true"), false},
		{req("GET", "Accept", "application/json"), false},
		{req("GET", "Accept", nav, "Upgrade", "websocket"), false},
		{req("GET", "Accept", nav, "Range", "bytes=0-1"), false},
	} {
		if got := ShouldInject(tc.r); got != tc.want {
			t.Errorf("%s %v: got %v", tc.r.Method, tc.r.Header, got)
		}
	}
}

func BenchmarkInject(b *testing.B) {
	page := []byte("<!doctype html><html><head><title>t</title>" +
		strings.Repeat(`<link rel="stylesheet" href="/a.css">`, 100) + "</head><body>" +
		strings.Repeat("<p>text</p>", 2000) + "</body></html>")
	b.SetBytes(int64(len(page)))
	for b.Loop() {
		rec := httptest.NewRecorder()
		rec.Body = bytes.NewBuffer(make([]byte, 0, len(page)+256))
		in := NewInjector(rec, testTag)
		in.Header().Set("Content-Type", "text/html")
		for p := page; len(p) > 0; {
			n := min(len(p), 4096)
			in.Write(p[:n])
			p = p[n:]
		}
		in.Close()
	}
}
