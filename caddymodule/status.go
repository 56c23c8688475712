package caddymodule

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/idlegate/idlegate/idletrack"
)

// statusResponse is the JSON of GET <status_path>.
type statusResponse struct {
	Active             bool    `json:"active"`
	RemainingSeconds   int64   `json:"remaining_seconds"`
	ExpiresAt          *string `json:"expires_at"`
	IdleTimeoutSeconds int64   `json:"idle_timeout_seconds"`
}

// serveStatus answers the status path for the request's session. It never
// counts as activity, except GET <status_path>?touch=1, which is what the
// warning dialog's "Stay signed in" sends.
func (h *Handler) serveStatus(w http.ResponseWriter, r *http.Request, now int64) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		w.WriteHeader(http.StatusMethodNotAllowed)
		return nil
	}
	resp := statusResponse{IdleTimeoutSeconds: int64(time.Duration(h.Idle) / time.Second)}
	if id, ok := h.sessionID(r); ok {
		touch := r.URL.Query().Get("touch") == "1"
		v := h.z.Check(r.Context(), id, now, touch)
		if v.Status == idletrack.StatusActive {
			exp := time.Unix(0, v.Deadline).UTC().Format(time.RFC3339)
			resp.Active, resp.RemainingSeconds, resp.ExpiresAt = true, v.Remaining(now), &exp
		}
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "application/json")
	hdr.Set("Cache-Control", "no-store")
	if h.RemainingHeader != "" {
		hdr.Set(h.RemainingHeader, strconv.FormatInt(resp.RemainingSeconds, 10))
	}
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return nil
	}
	return json.NewEncoder(w).Encode(resp)
}
