// Package warning warns users before idlegate signs them out for being idle.
//
// It holds three things the idle_session handler uses when warn_before and
// inject_warning are set:
//
//   - the browser script (Script, ServeScript): small, dependency-free,
//     configured by the data-* attributes of its own <script> tag. It reads
//     the remaining time from the status endpoint (which never extends the
//     session), shows an accessible dialog warn_before ahead of the deadline,
//     extends the session on "Stay signed in", navigates to the on_expired
//     redirect target at the deadline, and keeps every tab of the session in
//     agreement over a BroadcastChannel;
//   - the tag that loads it (Tag);
//   - an http.ResponseWriter wrapper that inserts that tag into the HTML
//     pages of a session (Injector, ShouldInject), so that a legacy
//     application needs no change at all.
//
// The package knows nothing of Caddy or of the session store: the handler
// passes in URLs, the warning lead time and a short session hash.
//
// # What applications can rely on
//
// The dialog lives in a shadow root, so the page's CSS cannot reach it; it
// takes its look from CSS custom properties that the page may set, e.g. on
// :root: --idlegate-bg (default #fff), --idlegate-fg (#1a1a1a),
// --idlegate-accent (#0b57d0), --idlegate-radius (8px) and --idlegate-font
// (1rem/1.5 system-ui, sans-serif).
//
// The script dispatches CustomEvents on document, with detail
// {remaining: seconds, expiresAt: ISO time}:
//
//   - idlegate:warning when the warning starts (remaining <= warn_before);
//   - idlegate:extended when a warning ends because the session was extended
//     (in this tab, in another tab, or by the application's own requests);
//   - idlegate:expired when the session has ended, just before the page
//     navigates to the redirect target; preventDefault() keeps the page
//     where it is, for an application that handles the end itself.
//
// With events only (warning_events_only) no dialog is drawn and the
// application shows its own. window.idlegate offers extend(), which counts
// as activity and resolves to true once the session was extended, and
// remaining(), the seconds left as last known (null before the first
// status).
//
// Tabs of the same session exchange {type, expiresAt} messages on the
// BroadcastChannel "idlegate-<session>" (or, without BroadcastChannel, as
// storage events of the localStorage key of the same name): "activity" and
// "extended" move the deadline of every tab, "signout" and "expired" send
// every tab to the redirect target. A page acts on an ended session only if
// it has seen that session active, so an anonymous page never reloads in a
// loop.
package warning

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"net/http"
	"time"
)

//go:embed warning.js
var script []byte

var (
	version = func() string {
		sum := sha256.Sum256(script)
		return hex.EncodeToString(sum[:8])
	}()
	etag = `"` + version + `"`
)

// Script returns the browser script. The caller must not modify it.
func Script() []byte { return script }

// ETag returns the strong entity tag of Script, quotes included.
func ETag() string { return etag }

// Version returns a short hash of Script. Tag appends it to the script URL
// as "v=<version>", so a new idlegate release is never hidden by a cache.
func Version() string { return version }

// ServeScript answers a GET or HEAD for the script: JavaScript with its ETag,
// conditional requests (304) and ranges handled by http.ServeContent. A URL
// that carries the current version ("?v=" + Version(), as Tag writes it) is
// cached for a year as immutable; any other URL must be revalidated.
func ServeScript(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/javascript; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("ETag", etag)
	if r.URL.Query().Get("v") == version {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		h.Set("Cache-Control", "no-cache")
	}
	http.ServeContent(w, r, "warning.js", time.Time{}, bytes.NewReader(script))
}
