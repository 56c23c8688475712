package warning

import (
	"mime"
	"net/http"
	"strconv"
	"strings"
)

// Window bounds how much of an HTML response an Injector holds back while it
// looks for the place of the tag.
const Window = 64 << 10

// ShouldInject reports whether the response to r may receive the tag: a GET
// that a browser sends to load a top-level page. HEAD, WebSocket upgrades,
// range requests, frames and script requests (fetch, XHR, htmx, Turbo
// frames) are not, because their bodies are not the page the user looks at.
// Browsers that predate Sec-Fetch-Dest are recognised by Accept: text/html.
//
// When it intends to inject, the handler also removes Accept-Encoding from
// the upstream request, so that the upstream answers uncompressed: an
// Injector leaves compressed responses untouched.
func ShouldInject(r *http.Request) bool {
	if r.Method != http.MethodGet || r.Header.Get("Upgrade") != "" || r.Header.Get("Range") != "" {
		return false
	}
	if dest := r.Header.Get("Sec-Fetch-Dest"); dest != "" {
		return dest == "document"
	}
	for _, h := range []string{"X-Requested-With", "HX-Request", "Turbo-Frame"} {
		if r.Header.Get(h) != "" {
			return false
		}
	}
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

type state uint8

const (
	idle     state = iota // no final status yet
	scanning              // an HTML page that may get the tag; held back in buf
	through               // everything goes straight to the client
)

// Injector is an http.ResponseWriter that inserts the warning tag into an
// HTML page on its way to the client.
//
// Rules:
//
//   - Only a 2xx response (not 204, 205 or 206) whose Content-Type is
//     text/html (with no charset, or one whose markup bytes are ASCII: not
//     UTF-16 or ISO-2022-JP), without Content-Encoding (other than
//     identity), without Content-Range and without Cache-Control:
//     no-transform is changed. Anything else, including every compressed
//     page, 1xx, 304 and HEAD responses, passes through untouched.
//   - The page is read with the HTML5 tokenizer of golang.org/x/net/html,
//     and the tag goes at the start of the first token that is not head
//     content: right before </head>, or, if the page omits it, before
//     <body ...> or whatever else starts the body. It is never put inside
//     a tag or attribute, a comment, or the text of a <script>, <style>,
//     <title>, <textarea> or other raw-text element; see scanner for the
//     rules and why they are safe.
//   - Only the first Window bytes are held back, and the tag's place must
//     be among them: a page whose head runs on for longer passes through
//     unchanged. A page that ends before its head does gets the tag at its
//     end, if that end is outside every tag, comment and raw-text element.
//   - A Flush from the handler is deferred until the place of the tag is
//     known, so a page that streams its head slowly is delayed until then.
//   - A page whose held-back bytes already contain Marker (it loads the
//     script itself, or went through idlegate twice) is left alone.
//   - The response's Content-Security-Policy decides the nonce: a nonce in
//     script-src-elem, script-src or default-src is copied onto the tag; a
//     policy that allows neither a nonce nor 'self' means no injection (the
//     browser would block the script). A policy in a <meta> element is not
//     seen.
//   - An injected response gets an exact Content-Length when it is known
//     (the whole page was held back, or the upstream declared one), and
//     none (chunked) otherwise; a strong ETag becomes weak, Accept-Ranges is
//     removed.
//
// The handler must call Close when it is done, to send what is held back.
// Unwrap keeps http.ResponseController (Hijack, deadlines, full duplex)
// working; Flush and FlushError are implemented here.
//
// An Injector is not safe for concurrent use, like any ResponseWriter.
type Injector struct {
	w   http.ResponseWriter
	tag func(nonce string) string

	state  state
	status int
	nonce  string
	length int64 // Content-Length declared by the upstream, or -1
	buf    []byte
	scan   scanner
	flush  bool // a Flush arrived while scanning
	closed bool
}

// NewInjector wraps w. tag returns the <script> element for a nonce (empty
// when the page has none); it is called at most once, and typically is
//
//	func(nonce string) string { o := opts; o.Nonce = nonce; return warning.Tag(o) }
func NewInjector(w http.ResponseWriter, tag func(nonce string) string) *Injector {
	return &Injector{w: w, tag: tag, length: -1}
}

// Header returns the header map of the wrapped writer.
func (i *Injector) Header() http.Header { return i.w.Header() }

// Unwrap returns the wrapped writer, for http.ResponseController.
func (i *Injector) Unwrap() http.ResponseWriter { return i.w }

// WriteHeader decides from the status and headers whether the page may get
// the tag. If so, the headers are held back until the body shows where the
// tag goes; informational (1xx) statuses are always sent at once.
func (i *Injector) WriteHeader(code int) {
	if i.state != idle {
		if i.state == through {
			i.w.WriteHeader(code) // superfluous: let net/http say so
		}
		return
	}
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		i.w.WriteHeader(code)
		return
	}
	i.status = code
	if nonce, ok := i.eligible(code); ok {
		i.nonce = nonce
		i.state = scanning
		return
	}
	i.state = through
	i.w.WriteHeader(code)
}

// eligible applies the status and header rules and returns the nonce the
// tag needs.
func (i *Injector) eligible(code int) (nonce string, ok bool) {
	if code < 200 || code > 299 || code == http.StatusNoContent ||
		code == http.StatusResetContent || code == http.StatusPartialContent {
		return "", false
	}
	h := i.w.Header()
	for _, ce := range h.Values("Content-Encoding") {
		if ce = strings.TrimSpace(ce); ce != "" && !strings.EqualFold(ce, "identity") {
			return "", false
		}
	}
	if h.Get("Content-Range") != "" {
		return "", false
	}
	ct := h.Get("Content-Type")
	if mt, _, _ := strings.Cut(ct, ";"); !strings.EqualFold(strings.TrimSpace(mt), "text/html") {
		return "", false // not HTML, decided without ParseMediaType's allocations
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "text/html" {
		return "", false
	}
	if cs, ok := params["charset"]; ok {
		if !asciiCompatible(cs) {
			return "", false
		}
		i.scan.charset = true // a <meta> cannot override it
	}
	for _, cc := range h.Values("Cache-Control") {
		for _, d := range strings.Split(cc, ",") {
			if strings.EqualFold(strings.TrimSpace(d), "no-transform") {
				return "", false
			}
		}
	}
	if cl := h.Get("Content-Length"); cl != "" {
		n, err := strconv.ParseInt(cl, 10, 64)
		if err != nil || n <= 0 {
			return "", false
		}
		i.length = n
	}
	return cspNonce(h.Values("Content-Security-Policy"))
}

// Write holds back the start of an HTML page that may get the tag and
// passes everything else through. At most Window bytes are held back: the
// rest of a long write goes on once the tag's place is known.
func (i *Injector) Write(p []byte) (int, error) {
	if i.state == idle {
		i.WriteHeader(http.StatusOK)
	}
	if i.state != scanning {
		return i.w.Write(p)
	}
	n := min(len(p), Window-len(i.buf)) // scanning: len(i.buf) < Window
	i.buf = append(i.buf, p[:n]...)
	if err := i.advance(false); err != nil {
		return 0, err
	}
	if n < len(p) { // the window is full, so advance has decided
		if _, err := i.w.Write(p[n:]); err != nil {
			return n, err
		}
	}
	return len(p), nil
}

// advance looks for the place of the tag in what is held back and, once it
// is known (or can no longer be waited for), sends headers and body on.
func (i *Injector) advance(final bool) error {
	if final && len(i.buf) == 0 {
		return i.release() // nothing to put a script into: HEAD, empty page
	}
	at, end, ok := i.scan.find(i.buf, final)
	switch {
	case !ok && !final && len(i.buf) < Window:
		return nil // the next bytes decide
	case !ok || at < 0:
		return i.release() // the head runs past Window, or the page is unfit
	}
	return i.insert(at, end, final)
}

// insert sends the held-back page with the tag at offset at. With end set,
// at is the end of the page, and the tag goes there only if it is a token
// boundary.
func (i *Injector) insert(at int, end, final bool) error {
	if containsFold(i.buf, Marker) {
		return i.release()
	}
	tag := i.tag(i.nonce)
	if end && !appendable(i.buf[i.scan.skip:], tag) {
		return i.release()
	}
	i.scan.close()
	h := i.w.Header()
	switch {
	case final:
		h.Set("Content-Length", strconv.Itoa(len(i.buf)+len(tag)))
	case i.length >= 0:
		h.Set("Content-Length", strconv.FormatInt(i.length+int64(len(tag)), 10))
	default:
		h.Del("Content-Length")
	}
	if et := h.Get("ETag"); et != "" && !strings.HasPrefix(et, "W/") {
		h.Set("ETag", "W/"+et) // the bytes differ from the upstream's
	}
	h.Del("Accept-Ranges")
	i.w.WriteHeader(i.status)

	buf := i.buf
	i.buf = nil
	i.state = through
	if err := i.send(buf[:at]); err != nil {
		return err
	}
	if err := i.send([]byte(tag)); err != nil {
		return err
	}
	if err := i.send(buf[at:]); err != nil {
		return err
	}
	return i.flushIfAsked()
}

// release sends the held-back page unchanged.
func (i *Injector) release() error {
	i.scan.close()
	i.state = through
	i.w.WriteHeader(i.status)
	buf := i.buf
	i.buf = nil
	if err := i.send(buf); err != nil {
		return err
	}
	return i.flushIfAsked()
}

func (i *Injector) send(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	_, err := i.w.Write(p)
	return err
}

func (i *Injector) flushIfAsked() error {
	if !i.flush {
		return nil
	}
	i.flush = false
	return http.NewResponseController(i.w).Flush()
}

// FlushError flushes the wrapped writer. While the place of the tag is not
// known yet, the flush is deferred until it is.
func (i *Injector) FlushError() error {
	if i.state == idle {
		i.WriteHeader(http.StatusOK)
	}
	if i.state == scanning {
		i.flush = true
		return nil
	}
	return http.NewResponseController(i.w).Flush()
}

// Flush is FlushError without the error, for http.Flusher.
func (i *Injector) Flush() { _ = i.FlushError() }

// Close sends whatever is held back, with the tag in its place. It must be
// called once the handler has written the whole response; later calls do
// nothing. It does not close the wrapped writer.
func (i *Injector) Close() error {
	if i.closed {
		return nil
	}
	i.closed = true
	if i.state == scanning {
		return i.advance(true)
	}
	return nil
}

// containsFold reports whether b contains lower, an ASCII string in lower
// case, in any case.
func containsFold(b []byte, lower string) bool {
outer:
	for i := 0; i+len(lower) <= len(b); i++ {
		for j := range len(lower) {
			c := b[i+j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != lower[j] {
				continue outer
			}
		}
		return true
	}
	return false
}

var (
	_ http.ResponseWriter = (*Injector)(nil)
	_ http.Flusher        = (*Injector)(nil)
)
