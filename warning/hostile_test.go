package warning

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// inject runs page through an Injector, cut into the given chunks, and
// returns what the client receives.
func inject(t testing.TB, h http.Header, chunks [][]byte) string {
	t.Helper()
	rec := httptest.NewRecorder()
	in := NewInjector(rec, testTag)
	for k, v := range h {
		in.Header()[k] = v
	}
	in.WriteHeader(http.StatusOK)
	for _, c := range chunks {
		if n, err := in.Write(c); err != nil || n != len(c) {
			t.Fatalf("Write(%q) = %d, %v", c, n, err)
		}
	}
	if err := in.Close(); err != nil {
		t.Fatal(err)
	}
	return rec.Body.String()
}

// cuts returns page whole, byte by byte, and in random chunks (seeded, so
// a failure repeats).
func cuts(page []byte, seed uint64) map[string][][]byte {
	out := map[string][][]byte{"whole": {page}}
	if len(page) <= 8<<10 {
		var bytewise [][]byte
		for i := range page {
			bytewise = append(bytewise, page[i:i+1])
		}
		out["byte by byte"] = bytewise
	}
	for s := seed; s < seed+3; s++ {
		r := rand.New(rand.NewPCG(s, 15))
		var chunks [][]byte
		for p := page; len(p) > 0; {
			n := min(len(p), 1+r.IntN(17))
			chunks = append(chunks, p[:n])
			p = p[n:]
		}
		out[fmt.Sprintf("random chunks %d", s)] = chunks
	}
	return out
}

// injectEveryWay runs page through an Injector cut in every way of cuts,
// fails unless all give the same result, and returns it.
func injectEveryWay(t testing.TB, h http.Header, page []byte, seed uint64) string {
	t.Helper()
	want := inject(t, h, [][]byte{page})
	for name, chunks := range cuts(page, seed) {
		if got := inject(t, h, chunks); got != want {
			t.Fatalf("%s gives a different result:\n got %q\nwant %q", name, got, want)
		}
	}
	return want
}

type token struct {
	tt  html.TokenType
	raw string
}

func tokens(b []byte) []token {
	z := html.NewTokenizer(bytes.NewReader(b))
	var out []token
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			return out
		}
		out = append(out, token{tt, string(z.Raw())})
	}
}

// checkOneScript asserts that out is in plus the tag and nothing else, at
// a place where it is a script element of its own:
//
//   - as bytes: out is in with the tag inserted once (after a UTF-8 BOM);
//   - as tokens (x/net/html's tokenizer): out's tokens are in's tokens
//     with a script start tag and end tag, together the tag, inserted
//     between two of them, so no token of the page changed;
//   - as a tree (x/net/html's parser, scripting on, as in a browser):
//     out's document has exactly one element carrying Marker, a script
//     in <head>, and without it renders exactly as in's: no element,
//     attribute or text was added, lost or changed.
func checkOneScript(t testing.TB, in, out string) {
	t.Helper()
	tag := testTag("")
	at := strings.Index(out, tag)
	if at < 0 || strings.Count(out, tag) != 1 || out[:at]+out[at+len(tag):] != in {
		t.Fatalf("output is not the page with one tag inserted:\n in %q\nout %q", in, out)
	}
	bom := string(utf8BOM)
	if strings.HasPrefix(in, bom) {
		if at < len(bom) {
			t.Fatalf("tag before the byte order mark: %q", out)
		}
		in, out, at = in[len(bom):], out[len(bom):], at-len(bom)
	}

	tin, tout := tokens([]byte(in)), tokens([]byte(out))
	tin = splitText(t, tin, at)
	i := 0
	for i < len(tin) && i < len(tout) && tout[i] == tin[i] {
		i++
	}
	if len(tout) != len(tin)+2 || tout[i].tt != html.StartTagToken || tout[i+1].tt != html.EndTagToken ||
		tout[i].raw+tout[i+1].raw != tag || !slices.Equal(tout[i+2:], tin[i:]) {
		t.Fatalf("tokens differ beyond one inserted script:\n in %v\nout %v", tin, tout)
	}

	din, err := html.Parse(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	dout, err := html.Parse(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	var marked []*html.Node
	for n := range dout.Descendants() {
		for _, a := range n.Attr {
			if a.Key == Marker {
				marked = append(marked, n)
			}
		}
	}
	if len(marked) != 1 {
		t.Fatalf("%d elements carry %s in %q", len(marked), Marker, out)
	}
	s := marked[0]
	if s.DataAtom != atom.Script || s.Namespace != "" || s.Parent == nil || s.Parent.DataAtom != atom.Head {
		t.Fatalf("the tag is not a script in <head>: <%s> (namespace %q) in <%s> of %q", s.Data, s.Namespace, s.Parent.Data, out)
	}
	s.Parent.RemoveChild(s)
	if rin, rout := render(t, din), render(t, dout); rin != rout {
		t.Fatalf("the documents differ beyond the script:\n in %s\nout %s", rin, rout)
	}
}

// splitText splits the text token of toks that at falls inside of, where
// the tag goes after the white space a text starts with.
func splitText(t testing.TB, toks []token, at int) []token {
	off := 0
	for k, tk := range toks {
		if off < at && at < off+len(tk.raw) {
			left, right := tk.raw[:at-off], tk.raw[at-off:]
			if tk.tt != html.TextToken || strings.Trim(left, " \t\n\f\r") != "" {
				t.Fatalf("the tag splits the token %v after %q", tk, left)
			}
			return slices.Concat(toks[:k], []token{{html.TextToken, left}, {html.TextToken, right}}, toks[k+1:])
		}
		off += len(tk.raw)
	}
	return toks
}

func render(t testing.TB, n *html.Node) string {
	var b strings.Builder
	if err := html.Render(&b, n); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// here marks where a hostile page must get the tag; a page without it
// must pass through unchanged.
const here = "¤"

func TestInjectHostilePages(t *testing.T) {
	long := strings.Repeat("a", Window)
	for _, tc := range []struct{ name, page string }{
		// Markup inside attribute values is text.
		{"</head> in a double-quoted attribute", `<html><head><meta content="</head><img src=x onerror=alert(1)>">` + here + `</head><body>x</body></html>`},
		{"<body in a single-quoted attribute", `<head><meta name=x content='<body onload=alert(1)>'>` + here + `</head>`},
		{"</head> in an unquoted attribute", `<head><link title=a</head>` + here + `</head>`},
		// "<" starts an attribute name, "/h" is a stray slash, "head" another
		// attribute, and ">" ends the tag: "=1" is body text.
		{"attribute names that look like a tag", `<head><meta </head>` + here + `=1 <body=2></head>`},
		{"> inside a quoted attribute", `<head><meta content="a>b</head>c">` + here + `</head>`},
		{"attribute in the body start tag", `<!doctype html>` + here + `<body class="</head>"><p>x`},

		// Comments and other markup declarations.
		{"</head> in a comment", `<head><!-- </head><body onload=alert(1)> -->` + here + `</head>`},
		{"comment closed by --!>", `<head><!-- </head> --!>` + here + `</head>`},
		{"abrupt empty comment <!-->", `<head><!-->` + here + `</head><!-- --></head>`},
		{"abrupt empty comment <!--->", `<head><!--->` + here + `</head>`},
		{"comment with dashes", `<head><!-- a -- </head> b ---->` + here + `</head>`},
		{"bogus comment <! ... >", `<head><! </head> ` + here + `>`},
		// A bogus comment ends at the first ">": the rest is body text.
		{"processing instruction", `<head><?php echo "</head>` + here + `" ?></head>`},
		{"conditional comment", `<head><!--[if lt IE 9]><script src="a.js"></script></head><![endif]-->` + here + `</head>`},

		// Raw text and RCDATA.
		{"<script> with </head> and <body", `<head><script>var s = "</head><body onload=alert(1)>";</script>` + here + `</head>`},
		// After "<!--<script>" the first "</script>" does not end the script
		// (double-escaped state), the second does; "-->" is then body text.
		{"<script> with an escaped </script>", `<head><script><!--<script>"</script></head><body>"</script>` + here + `--></script></head>`},
		{"<script> end tag with attributes", `<head><script>x</script foo="</head>">` + here + `</head>`},
		{"<script/> is not self-closing", `<head><script/></head><body>x</script>` + here + `</head>`},
		{"<style> with </head>", `<head><style>/* </head><body> */ a::after{content:"</head>"}</style>` + here + `</head>`},
		{"<title> with </head>", `<head><title></head><body></title>` + here + `</head>`},
		{"<noscript> with </head>", `<head><noscript></head><body><img src=x></noscript>` + here + `</head>`},
		{"<noframes> with </head>", `<head><noframes></head><body></noframes>` + here + `</head>`},
		{"<textarea> starts the body", `<head>` + here + `<textarea></head><body></textarea></head>`},
		{"<xmp> starts the body", here + `<xmp></head></xmp>`},
		{"<iframe> starts the body", `<head>` + here + `<iframe></head></iframe>`},
		{"<noembed> starts the body", `<head>` + here + `<noembed></head></noembed>`},
		{"<plaintext> starts the body", `<head>` + here + `<plaintext></head><body>`},
		{"<template> in the head", `<head>` + here + `<template><div></head><body></template></head>`},

		// Case.
		{"upper case", `<HTML><HEAD><TITLE>T</TITLE>` + here + `</HEAD><BODY>`},
		{"mixed case", `<hTmL><HeAd><ScRiPt>"</hEaD>"</sCrIpT>` + here + `</HeAd>`},
		{"upper case raw text end tag", `<head><STYLE></head></Style>` + here + `</head>`},

		// Pages without a head, or without an end of it.
		{"no head", `<!DOCTYPE html><html lang=en>` + here + `<body><p>x</p>`},
		{"no head, no body", `<!DOCTYPE html>` + here + `<div class="</head>">`},
		{"text only", here + `hello </head>`},
		{"head ends at the end of the page", `<!doctype html><meta charset=utf-8><title>t</title>` + here},
		{"white space before the body", "<head>\n\t<meta charset=utf-8>\r\n" + here + "<main>"},

		// Foreign content.
		{"CDATA in SVG", `<!doctype html><html>` + here + `<svg><![CDATA[</head><body onload=alert(1)>]]></svg>`},
		{"CDATA in SVG after the head", `<head>` + here + `</head><body><svg><![CDATA[</head>]]></svg>`},
		{"CDATA outside foreign content is a bogus comment", `<head><![CDATA[</head>` + here + `]]>`},
		{"MathML", `<head>` + here + `<math><mi></head></mi></math>`},

		// Byte order marks.
		{"UTF-8 BOM", "\xEF\xBB\xBF<!doctype html><head>" + here + "</head>"},
		{"UTF-8 BOM then text", "\xEF\xBB\xBF" + here + "hello"},

		// Pages that must not get the tag.
		{"ends inside an attribute", `<head><meta content="</head>`},
		{"ends inside a tag", `<head><meta a=b`},
		{"ends inside an end tag", `<head></hea`},
		{"ends inside a comment", `<head><!-- </head> -`},
		{"ends inside a comment that has >", `<head><!-- a > b`},
		{"ends inside a script", `<head><script>"</head>"`},
		{"ends inside a title", `<head><title></head>`},
		{"ends in </, which is text", `<head>` + here + `</`},
		{"ends in <!", `<head><!`},
		{"UTF-16 BOM (big endian)", "\xFE\xFF\x00<\x00h\x00e\x00a\x00d\x00>\x00<\x00/\x00h\x00e\x00a\x00d\x00>"},
		{"UTF-16 BOM (little endian)", "\xFF\xFE<\x00h\x00e\x00a\x00d\x00>\x00<\x00/\x00h\x00e\x00a\x00d\x00>\x00"},
		{"already has the tag", `<head><script src="/x.js" data-idlegate></script></head>`},
		{"head longer than the window", `<head><script>` + long + `</script></head><body>`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := strings.Replace(tc.page, here, "", 1)
			want := in
			if strings.Contains(tc.page, here) {
				want = strings.Replace(tc.page, here, testTag(""), 1)
			}
			got := injectEveryWay(t, htmlHeader(), []byte(in), 1)
			if got != want {
				t.Fatalf("\n got %q\nwant %q", got, want)
			}
			if got != in {
				checkOneScript(t, in, got)
			}
		})
	}
}

// The attribute case of issue 15, in detail: the app's inert text stays
// text, and the page gains nothing but the script.
func TestInjectAttributeStaysText(t *testing.T) {
	page := `<!doctype html><html><head><meta name="description" content="</head><img src=x onerror=alert(1)>"><title>t</title></head><body><p>hi</p></body></html>`
	out := injectEveryWay(t, htmlHeader(), []byte(page), 7)
	checkOneScript(t, page, out)
	doc, err := html.Parse(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	var elements []string
	for n := range doc.Descendants() {
		if n.Type == html.ElementNode {
			elements = append(elements, n.Data)
		}
		if n.DataAtom == atom.Img {
			t.Fatalf("the attribute's text became an element: %q", out)
		}
	}
	if got := strings.Join(elements, " "); got != "html head meta title script body p" {
		t.Errorf("elements %s", got)
	}
}

func TestInjectCharsetHeader(t *testing.T) {
	page := "<head></head>"
	for _, tc := range []struct {
		ct   string
		page string
		want bool
	}{
		{"text/html; charset=utf-8", page, true},
		{"text/html; charset=windows-1252", page, true},
		{"text/html; charset=Shift_JIS", page, true},
		{"text/html; charset=utf-16", page, false},
		{"text/html; charset=UTF-16LE", page, false},
		{"text/html; charset=iso-2022-jp", page, false},
		{"text/html; charset=iso-2022-kr", page, false},
		// the header's charset wins over a <meta>
		{"text/html; charset=utf-8", `<head><meta charset="iso-2022-jp"></head>`, true},
		{"text/html", `<head><meta charset="utf-8"></head>`, true},
		{"text/html", `<head><meta charset="ISO-2022-JP"></head>`, false},
		{"text/html", `<head><meta charset=utf-16></head>`, false},
		{"text/html", `<head><meta http-equiv=content-type content="text/html; charset=iso-2022-jp"></head>`, false},
		{"text/html", "\xEF\xBB\xBF<head><meta charset=iso-2022-jp></head>", true}, // the BOM wins
		{"text/html", `<head><meta http-equiv="Content-Type" content="text/html;charset='utf-8'"></head>`, true},
	} {
		h := http.Header{"Content-Type": {tc.ct}}
		got := injectEveryWay(t, h, []byte(tc.page), 3)
		if injected := got != tc.page; injected != tc.want {
			t.Errorf("%s %q: injected %v, want %v: %q", tc.ct, tc.page, injected, tc.want, got)
		}
	}
}

// A head longer than Window passes through unchanged, in full, without
// holding more than Window bytes.
func TestInjectLongHeadPassesThrough(t *testing.T) {
	page := []byte("<head><style>" + strings.Repeat("a{}", Window) + "</style></head><body>")
	rec := httptest.NewRecorder()
	in := NewInjector(rec, testTag)
	in.Header().Set("Content-Type", "text/html")
	in.WriteHeader(200)
	for p := page; len(p) > 0; {
		n := min(len(p), 1000)
		in.Write(p[:n])
		p = p[n:]
		if len(in.buf) > Window {
			t.Fatalf("holds %d bytes", len(in.buf))
		}
	}
	in.Close()
	if !bytes.Equal(rec.Body.Bytes(), page) {
		t.Errorf("page changed (len %d, want %d)", rec.Body.Len(), len(page))
	}
}

// The tokenizer's coroutine stops when the Injector is done, however it
// ends: decided, released at the window, or closed while still waiting for
// bytes.
func TestInjectScannerStops(t *testing.T) {
	before := runtime.NumGoroutine()
	for range 50 {
		for _, chunks := range [][]string{
			{"<head>", "</head>"},
			{"<head><title>never ends"},
			{"<head><script>", strings.Repeat("x", Window)},
		} {
			rec := httptest.NewRecorder()
			in := NewInjector(rec, testTag)
			in.Header().Set("Content-Type", "text/html")
			for _, c := range chunks {
				io.WriteString(in, c)
			}
			in.Close()
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines, %d before: scanners still running", runtime.NumGoroutine(), before)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A response that is not HTML costs nothing beyond the Injector itself:
// the tokenizer starts only for a page that may get the tag.
func TestInjectNotHTMLAllocatesNothing(t *testing.T) {
	rec := httptest.NewRecorder()
	rec.Header().Set("Content-Type", "application/json")
	body := []byte(`{"a":"</head>"}`)
	allocs := testing.AllocsPerRun(100, func() {
		rec.Body.Reset()
		in := NewInjector(rec, testTag)
		in.WriteHeader(http.StatusOK)
		in.Write(body)
		in.Write(body)
		in.Close()
	})
	if allocs > 1 {
		t.Errorf("%.0f allocations per non-HTML response, want at most 1 (the Injector)", allocs)
	}
}

// FuzzInject checks the injector's one property on any page, cut into
// writes in any way: the result does not depend on the cuts, and it is
// either the page unchanged or the page plus exactly one script element,
// inserted between two of the page's tokens (never inside an attribute,
// comment or raw-text element) and parsed as a script in <head>, with
// every other element, attribute and text as they were.
func FuzzInject(f *testing.F) {
	for _, s := range []string{
		`<html><head><meta content="</head><img src=x onerror=alert(1)>"></head><body>x</body></html>`,
		`<head><!-- </head> --></head>`,
		`<head><script>"</head><body>"</script></head>`,
		`<head><script><!--<script></script></head>--></script></head>`,
		`<head><style></head></style><title></head></title><textarea></head></textarea>`,
		`<!doctype html><svg><![CDATA[</head>]]></svg>`,
		"\xEF\xBB\xBF<head></head>",
		`<HEAD><TITLE>x</TITLE></HEAD><BODY>`,
		`<p>no head`,
		`<head><meta a="`,
		`<head><noscript></head></noscript><template></head></template>`,
		`<!--> </head> <!---> <! </head> > <? </head> ?>`,
		`<head><meta charset=iso-2022-jp></head>`,
	} {
		f.Add([]byte(s), uint64(1))
	}
	f.Fuzz(func(t *testing.T, page []byte, seed uint64) {
		if len(page) > 16<<10 {
			return
		}
		got := injectEveryWay(t, htmlHeader(), page, seed)
		if got != string(page) {
			checkOneScript(t, string(page), got)
		}
	})
}

// BenchmarkInjectByteWrites feeds a page whose head is 16 KiB one byte per
// Write: every write resumes the tokenizer's coroutine once.
func BenchmarkInjectByteWrites(b *testing.B) {
	page := []byte("<!doctype html><html><head><title>t</title>" +
		strings.Repeat(`<link rel="stylesheet" href="/a.css">`, 16<<10/37) + "</head><body><p>text</p></body></html>")
	b.SetBytes(int64(len(page)))
	for b.Loop() {
		rec := httptest.NewRecorder()
		in := NewInjector(rec, testTag)
		in.Header().Set("Content-Type", "text/html")
		for i := range page {
			in.Write(page[i : i+1])
		}
		in.Close()
	}
}
