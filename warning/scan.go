package warning

import (
	"bytes"
	"errors"
	"io"
	"iter"
	"strings"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// Where the tag goes
//
// The tag is a <script> start tag and its end tag. Put at a boundary
// between two tokens of the page, in the tokenizer's data state, it is two
// tokens of its own and every other token stays what it was: it can never
// end up inside an attribute, a comment, a doctype or the text of a
// <script>, <style>, <title>, <textarea> or any other raw-text or RCDATA
// element. The tree builder then puts it into <head> as long as nothing
// before it has left the head: no body content, no SVG or MathML (whose
// CDATA sections and <script> elements follow other rules), no <template>
// (whose scripts never run).
//
// So the scanner runs the page through golang.org/x/net/html's Tokenizer,
// the HTML5 tokenizer, and picks the start of the first token that is not
// head content:
//
//   - the end tag </head>, or </body>, </html> or </br>, which end the
//     head too;
//   - a start tag other than html, head, base, basefont, bgsound, link,
//     meta, noframes, noscript, script, style and title: <body ...>,
//     <template>, <svg>, <div>, ...;
//   - text that is not white space (the tag goes after the white space
//     that the text starts with: a token boundary too, since text has no
//     state of its own).
//
// Comments, doctypes, white space, other end tags (which the head ignores)
// and the contents of the head's raw-text elements are passed over, so a
// "</head>" or "<body" inside any of them is never taken for the end of the
// head. The tag therefore goes right before </head>; in a page that omits
// </head>, before <body ...> or whatever else starts the body. A page that
// ends while still in the head (only a <title>, say) gets the tag at its
// very end, but only if that end is a token boundary in the data state
// (see appendable); one that ends inside a comment, a tag or a <script>
// gets none.
//
// A UTF-8 byte order mark is kept in front (it tells the browser the
// encoding only at the very start); a page in UTF-16 (by its byte order
// mark, or a charset the Content-Type or a <meta> before the insertion
// point names) or in an encoding whose bytes are not ASCII where the markup
// is (ISO-2022-JP) gets none, because the tokenizer reads bytes.
type scanner struct {
	src     []byte // the page held back so far
	fed     int    // how much of src the tokenizer has read
	final   bool   // no bytes follow src
	skip    int    // length of the UTF-8 byte order mark in front, if any
	charset bool   // the Content-Type names the charset: <meta> cannot change it
	at      int    // the insertion point once decided, or -1: no tag
	end     bool   // at is the end of the page, if appendable
	done    bool
	next    func() (struct{}, bool)
	stop    func()
}

// errStopped ends the tokenizer's reads when the scanner is stopped early.
var errStopped = errors.New("warning: scan stopped")

// find examines src, the page so far (the previous call's src with bytes
// appended). It reports whether the insertion point is decided and, if so,
// at: its offset, or -1 for no tag. With end set, at is the end of the
// page and the tag may go there only if appendable says so. final means no
// more bytes follow.
func (s *scanner) find(src []byte, final bool) (at int, end, decided bool) {
	if s.done {
		return s.at, s.end, true
	}
	s.src, s.final = src, final
	if s.next == nil {
		if !final && len(src) < len(utf8BOM) && isBOMPrefix(src) {
			return 0, false, false // the next bytes say whether it is one
		}
		switch {
		case bytes.HasPrefix(src, utf8BOM):
			s.skip, s.charset = len(utf8BOM), true // the BOM wins over any charset
		case bytes.HasPrefix(src, utf16BE), bytes.HasPrefix(src, utf16LE):
			s.decide(-1, false)
			return s.at, false, true
		}
		s.fed = s.skip
		s.next, s.stop = iter.Pull(s.run)
	}
	if _, waiting := s.next(); waiting {
		return 0, false, false
	}
	return s.at, s.end, true
}

// close stops the tokenizer if it is still waiting for bytes.
func (s *scanner) close() {
	if s.stop != nil {
		s.stop()
	}
	s.src = nil
}

func (s *scanner) decide(at int, end bool) {
	s.at, s.end, s.done = at, end, true
}

// run tokenizes the page until the insertion point is known, on a
// coroutine: it yields whenever the tokenizer needs bytes that have not
// arrived yet, so the page is read once, as it streams.
func (s *scanner) run(yield func(struct{}) bool) {
	z := html.NewTokenizer(&feeder{s: s, yield: yield})
	off := s.skip // offset of the current token: the tokens' raw bytes partition the input
	inRaw := false
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			if z.Err() == io.EOF {
				s.decide(len(s.src), true)
			} else {
				s.decide(-1, false)
			}
			return
		}
		n := len(z.Raw())
		switch lead, leaves, ok := s.leavesHead(z, tt, &inRaw); {
		case !ok:
			s.decide(-1, false)
			return
		case leaves:
			s.decide(off+lead, false)
			return
		}
		off += n
	}
}

// leavesHead reports whether the token ends the head (see above), and
// where in the token the tag goes: after the white space that a text token
// starts with, which belongs to the head (or, before <html>, to nothing),
// so that it stays where it was. ok is false when the page turns out to be
// unfit for the tag.
func (s *scanner) leavesHead(z *html.Tokenizer, tt html.TokenType, inRaw *bool) (lead int, leaves, ok bool) {
	leaves, ok = s.classify(z, tt, inRaw)
	if leaves && tt == html.TextToken {
		lead = spaceLen(z.Raw())
	}
	return lead, leaves, ok
}

func (s *scanner) classify(z *html.Tokenizer, tt html.TokenType, inRaw *bool) (leaves, ok bool) {
	switch tt {
	case html.TextToken:
		return !*inRaw && spaceLen(z.Raw()) < len(z.Raw()), true
	case html.EndTagToken:
		if *inRaw {
			*inRaw = false // the raw-text element's own end tag
			return false, true
		}
		switch tagAtom(z.Raw()) {
		case atom.Head, atom.Body, atom.Html, atom.Br:
			return true, true
		}
		return false, true
	case html.StartTagToken, html.SelfClosingTagToken:
		switch tagAtom(z.Raw()) {
		case atom.Html, atom.Head, atom.Base, atom.Basefont, atom.Bgsound, atom.Link:
		case atom.Meta:
			if !s.charset && !metaCharsetOK(z) {
				return false, false
			}
		case atom.Noframes, atom.Noscript, atom.Script, atom.Style, atom.Title:
			// The tokenizer reads their contents as raw text (<script/>
			// too: HTML ignores the slash), up to their end tag.
			*inRaw = true
		default:
			return true, true
		}
		return false, true
	}
	return false, true // comment, doctype
}

// tagAtom returns the atom of the name of the tag whose raw bytes are raw
// ("<meta ...>", "</HEAD>"), or 0 for a name longer than any it is asked
// about. It reads the name as the tokenizer does (up to white space, "/"
// or ">", case-insensitively) without the copy that Tokenizer.TagName
// makes.
func tagAtom(raw []byte) atom.Atom {
	raw = bytes.TrimPrefix(raw[1:], []byte("/"))
	var name [10]byte
	n := 0
	for _, c := range raw {
		switch c {
		case ' ', '\t', '\n', '\f', '\r', '/', '>':
			return atom.Lookup(name[:n])
		}
		if n == len(name) {
			return 0
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		name[n] = c
		n++
	}
	return atom.Lookup(name[:n])
}

// spaceLen returns the length of the HTML white space that b starts with.
func spaceLen(b []byte) int {
	for i, c := range b {
		switch c {
		case ' ', '\t', '\n', '\f', '\r':
		default:
			return i
		}
	}
	return len(b)
}

// metaCharsetOK reads a <meta charset> or <meta http-equiv=content-type>
// and reports whether the encoding it names (if any) is one the tokenizer
// can read.
func metaCharsetOK(z *html.Tokenizer) bool {
	var charset, content []byte
	httpEquiv := false
	for more := true; more; {
		var k, v []byte
		k, v, more = z.TagAttr()
		switch string(k) {
		case "charset":
			charset = v
		case "content":
			content = v
		case "http-equiv":
			httpEquiv = strings.EqualFold(string(v), "content-type")
		}
	}
	if charset == nil && httpEquiv {
		charset = charsetIn(content)
	}
	return charset == nil || asciiCompatible(string(charset))
}

// charsetIn extracts the encoding from a <meta> content attribute such as
// "text/html; charset=iso-2022-jp", as HTML's algorithm for it does
// (simplified: the first "charset", then "=", then the value).
func charsetIn(content []byte) []byte {
	i := bytes.Index(bytes.ToLower(content), []byte("charset"))
	if i < 0 {
		return nil
	}
	v := bytes.TrimLeft(content[i+len("charset"):], " \t\n\f\r")
	if len(v) == 0 || v[0] != '=' {
		return nil
	}
	v = bytes.TrimLeft(v[1:], " \t\n\f\r")
	if len(v) > 0 && (v[0] == '"' || v[0] == '\'') {
		if j := bytes.IndexByte(v[1:], v[0]); j >= 0 {
			return v[1 : 1+j]
		}
		return nil
	}
	if j := bytes.IndexAny(v, " \t\n\f\r;"); j >= 0 {
		v = v[:j]
	}
	return v
}

// asciiCompatible reports whether label names an encoding in which the
// bytes of markup are the ASCII bytes the tokenizer looks for. The
// exceptions are UTF-16 and ISO-2022-JP (whose two-byte characters use
// the bytes of '<', '>' and quotes), and the encodings that browsers
// replace by a single U+FFFD: the WHATWG Encoding Standard's labels for
// them are listed here.
func asciiCompatible(label string) bool {
	switch strings.ToLower(strings.Trim(label, " \t\n\f\r")) {
	case "unicodefffe", "utf-16be", "csunicode", "iso-10646-ucs-2", "ucs-2",
		"unicode", "unicodefeff", "utf-16", "utf-16le",
		"csiso2022jp", "iso-2022-jp",
		"csiso2022kr", "hz-gb-2312", "iso-2022-cn", "iso-2022-cn-ext", "iso-2022-kr", "replacement":
		return false
	}
	return true
}

var (
	utf8BOM = []byte{0xEF, 0xBB, 0xBF}
	utf16BE = []byte{0xFE, 0xFF}
	utf16LE = []byte{0xFF, 0xFE}
)

func isBOMPrefix(b []byte) bool {
	return bytes.HasPrefix(utf8BOM, b) || bytes.HasPrefix(utf16BE, b) || bytes.HasPrefix(utf16LE, b)
}

// feeder is the tokenizer's reader: it hands over the page's bytes as they
// arrive, and suspends the scan while none are left.
type feeder struct {
	s     *scanner
	yield func(struct{}) bool
}

func (f *feeder) Read(p []byte) (int, error) {
	s := f.s
	for s.fed >= len(s.src) {
		if s.final {
			return 0, io.EOF
		}
		if !f.yield(struct{}{}) {
			return 0, errStopped
		}
	}
	n := copy(p, s.src[s.fed:])
	s.fed += n
	return n, nil
}

// appendable reports whether tag, put at the end of page, is tokenized as
// itself: page ends at a token boundary in the data state, outside any
// comment, tag, or raw-text element. page does not include a byte order
// mark.
func appendable(page []byte, tag string) bool {
	z := html.NewTokenizer(io.MultiReader(bytes.NewReader(page), strings.NewReader(tag)))
	off := 0
	for off < len(page) {
		if z.Next() == html.ErrorToken {
			return false
		}
		off += len(z.Raw())
	}
	if off != len(page) {
		return false // a token runs across the end of the page
	}
	return tokenizesAsTag(z, tag)
}

// tokenizesAsTag reports whether the next tokens of z are exactly tag (a
// script start tag and its end tag) and then the end of the input.
func tokenizesAsTag(z *html.Tokenizer, tag string) bool {
	n := 0
	for _, want := range []html.TokenType{html.StartTagToken, html.EndTagToken} {
		if z.Next() != want {
			return false
		}
		if name, _ := z.TagName(); string(name) != "script" {
			return false
		}
		n += len(z.Raw())
	}
	return n == len(tag) && z.Next() == html.ErrorToken && z.Err() == io.EOF
}
