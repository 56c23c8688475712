package caddymodule

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/idlegate/idlegate/idletrack"
	"github.com/idlegate/idlegate/warning"
)

// WarningConfig customises the browser warning without forking the script.
// Colours come from the page's CSS custom properties --idlegate-bg,
// --idlegate-fg, --idlegate-accent, --idlegate-radius and --idlegate-font.
type WarningConfig struct {
	// Emit only the DOM events idlegate:warning, idlegate:extended and
	// idlegate:expired, for apps that draw their own dialog.
	EventsOnly bool `json:"events_only,omitempty"`
	// Language of the built-in texts (en, de, fr, es). Default: the
	// page's <html lang>, then the browser's.
	Lang string `json:"lang,omitempty"`
	// Text overrides. Body may contain {time}, the live countdown.
	Title   string `json:"title,omitempty"`
	Body    string `json:"body,omitempty"`
	Stay    string `json:"stay,omitempty"`
	SignOut string `json:"sign_out,omitempty"`
}

const defaultWarnBefore = 2 * time.Minute

// defaultWarnBefore is 2m, but at most half of idle: with idle 1m, a 2m
// warning would cover every page from the moment it loads.
func (h *Handler) defaultWarnBefore() caddy.Duration {
	return caddy.Duration(min(defaultWarnBefore, time.Duration(h.Idle)/2))
}

// scriptPath is where the warning script is served: under status_path.
func scriptPath(statusPath string) string { return statusPath + "/warning.js" }

// warningTag returns the tag that loads the warning script for this zone.
func (h *Handler) warningTag(nonce string) string {
	o := warning.TagOptions{
		Src:        h.script,
		Status:     h.StatusPath,
		Keepalive:  h.StatusPath + "?touch=1",
		Logout:     h.StatusPath + "?logout=1",
		WarnBefore: time.Duration(h.WarnBefore),
		Session:    h.channel,
		Nonce:      nonce,
	}
	if h.OnExpired.Mode == "redirect" {
		o.Redirect = h.OnExpired.URL
	}
	if w := h.Warning; w != nil {
		o.EventsOnly, o.Lang = w.EventsOnly, w.Lang
		o.Title, o.Body, o.Stay, o.SignOut = w.Title, w.Body, w.Stay, w.SignOut
	}
	return warning.Tag(o)
}

// channelName is what tabs of the same zone call their BroadcastChannel:
// tabs of one browser share the cookie, so the zone is enough, and it says
// nothing about the session.
func channelName(zone string) string {
	sum := sha256.Sum256([]byte("idlegate-channel\x00" + zone))
	return hex.EncodeToString(sum[:6])
}

// wrapForWarning prepares a page response of an active session for the
// warning script: the upstream is asked for an uncompressed answer, and the
// returned writer inserts the tag. finish, when not nil (nothing to inject),
// must be called after the response.
func (h *Handler) wrapForWarning(w http.ResponseWriter, r *http.Request) (http.ResponseWriter, func()) {
	if !h.InjectWarning || !warning.ShouldInject(r) {
		return w, nil
	}
	r.Header.Del("Accept-Encoding")
	inj := warning.NewInjector(w, h.warningTag)
	return inj, func() { inj.Close() }
}

// serveSignOut handles POST <status_path>?logout=1, the warning dialog's
// "Sign out": a same-origin request that ends the session (reason logout).
func (h *Handler) serveSignOut(w http.ResponseWriter, r *http.Request, now int64) error {
	if !sameOrigin(r) {
		w.WriteHeader(http.StatusForbidden)
		return nil
	}
	if id, ok := h.sessionID(r); ok {
		v := h.z.Check(r.Context(), id, now, false)
		if v.Status == idletrack.StatusActive {
			if _, err := h.z.End(v.ID, idletrack.ReasonLogout, now); err != nil {
				h.logger.Warn("sign-out not yet stored")
			}
		}
	}
	h.addClearLines(w.Header(), r, false)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// sameOrigin accepts requests a browser marks as same-origin, and requests
// whose Origin matches the Host; anything else could be cross-site forgery.
func sameOrigin(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "same-origin":
		return true
	case "":
	default:
		return false
	}
	o := r.Header.Get("Origin")
	if o == "" {
		return false
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}
