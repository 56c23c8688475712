package caddymodule

import (
	_ "embed"
	"net/http"
)

// uiPage is the live "who is online" page: one self-contained HTML file
// (no external assets) that reads GET /idle-sessions/ from the same admin
// endpoint every few seconds and groups the sessions by user.
//
//go:embed ui.html
var uiPage []byte

// serveUI serves GET /idle-sessions/ui.
func serveUI(w http.ResponseWriter, _ *http.Request) error {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	// Nothing but this page's own inline script and the admin API itself.
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_, err := w.Write(uiPage)
	return err
}
