package warning

import (
	"html"
	"strconv"
	"strings"
	"time"
)

// DefaultWarnBefore is the lead time Tag uses when TagOptions.WarnBefore is
// not positive.
const DefaultWarnBefore = 2 * time.Minute

// Marker is the attribute that every tag written by Tag carries. An Injector
// does not inject into a page that already contains it, and the script
// itself starts only once per page.
const Marker = "data-idlegate"

// TagOptions configures the <script> tag that loads the warning script.
// Every field is written as an HTML-escaped attribute; empty fields are left
// out and the script falls back to its defaults.
type TagOptions struct {
	// Src is the URL the handler serves ServeScript at, a path under
	// status_path such as "/.idlegate/status/warning.js". Required.
	Src string

	// Status is status_path: GET answers the status JSON and never counts
	// as activity. Required.
	Status string

	// Keepalive is the URL that "Stay signed in" fetches with GET: it must
	// count as activity and answer the same status JSON. Default:
	// Status + "?touch=1".
	Keepalive string

	// Logout, if set, is POSTed (same-origin credentials) when the user
	// presses "Sign out", before navigating to Redirect, so the session
	// ends on the server too. Without it "Sign out" only navigates away
	// and the session runs out at its deadline.
	Logout string

	// Redirect is the on_expired redirect target that the page navigates
	// to at the deadline and on sign-out. Empty: the page reloads, and
	// the refusal configured by on_expired applies.
	Redirect string

	// WarnBefore is how long before the deadline the warning appears
	// (warn_before). Default: DefaultWarnBefore.
	WarnBefore time.Duration

	// Session is a short opaque hash of the session (never the cookie
	// value). It names the BroadcastChannel, so that only tabs of the
	// same session agree.
	Session string

	// EventsOnly makes the script dispatch its DOM events (idlegate:warning,
	// idlegate:extended, idlegate:expired) without drawing a dialog, for
	// applications that draw their own (warning_events_only).
	EventsOnly bool

	// Lang selects the built-in texts (en, de, fr, es). Default: the
	// page's <html lang>, then the browser's language, then English.
	Lang string

	// Title, Body, Stay and SignOut replace the built-in texts. Body may
	// contain "{time}", where the countdown (m:ss) is shown.
	Title, Body, Stay, SignOut string

	// Nonce is the page's CSP nonce, if any.
	Nonce string
}

// Tag returns the <script> element that loads the warning script with opts,
// for example
//
//	<script src="/.idlegate/status/warning.js?v=0123456789abcdef" defer data-idlegate
//	 data-status="/.idlegate/status" data-keepalive="/.idlegate/status?touch=1" data-warn="120"></script>
//
// (on one line). Attribute values are HTML-escaped; the script is
// same-origin, so a CSP with 'self' or the nonce allows it.
func Tag(opts TagOptions) string {
	var b strings.Builder
	b.WriteString(`<script src="`)
	src := opts.Src
	if strings.Contains(src, "?") {
		src += "&v=" + version
	} else {
		src += "?v=" + version
	}
	b.WriteString(html.EscapeString(src))
	b.WriteString(`" defer ` + Marker)
	attr := func(name, value string) {
		if value == "" {
			return
		}
		b.WriteString(" " + name + `="` + html.EscapeString(value) + `"`)
	}
	attr("nonce", opts.Nonce)
	attr("data-status", opts.Status)
	keepalive := opts.Keepalive
	if keepalive == "" && opts.Status != "" {
		sep := "?"
		if strings.Contains(opts.Status, "?") {
			sep = "&"
		}
		keepalive = opts.Status + sep + "touch=1"
	}
	attr("data-keepalive", keepalive)
	attr("data-logout", opts.Logout)
	attr("data-redirect", opts.Redirect)
	warn := opts.WarnBefore
	if warn <= 0 {
		warn = DefaultWarnBefore
	}
	attr("data-warn", strconv.FormatFloat(warn.Seconds(), 'f', -1, 64))
	attr("data-session", opts.Session)
	if opts.EventsOnly {
		attr("data-events-only", "1")
	}
	attr("data-lang", opts.Lang)
	attr("data-text-title", opts.Title)
	attr("data-text-body", opts.Body)
	attr("data-text-stay", opts.Stay)
	attr("data-text-signout", opts.SignOut)
	b.WriteString("></script>")
	return b.String()
}
