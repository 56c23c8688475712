package caddymodule

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/idlegate/idlegate/engine"
	"github.com/idlegate/idlegate/idletrack"
)

func init() {
	caddy.RegisterModule(adminAPI{})
}

// adminAPI serves /idle-sessions/ on Caddy's admin endpoint: who is online,
// revoking sessions, and the webhook dead letters. It finds the running
// engines in the package's usage pool when a request arrives, so it works
// across reloads and never exists on a site's listener. Sessions are named
// by their short hashed ID; raw cookie values are never known to it.
type adminAPI struct{}

// CaddyModule returns the Caddy module information.
func (adminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.idle_sessions",
		New: func() caddy.Module { return new(adminAPI) },
	}
}

// Routes returns the admin routes.
func (a adminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{Pattern: "/idle-sessions/", Handler: caddy.AdminHandlerFunc(a.serve)}}
}

func apiErr(code int, format string, args ...any) error {
	return caddy.APIError{HTTPStatus: code, Err: fmt.Errorf(format, args...)}
}

func (a adminAPI) serve(w http.ResponseWriter, r *http.Request) error {
	rest := strings.TrimPrefix(r.URL.Path, "/idle-sessions/")
	var allow []string
	switch rest {
	case "":
		allow = []string{http.MethodGet, http.MethodDelete}
	case "stats", "dead-letters", "ui":
		allow = []string{http.MethodGet}
	case "dead-letters/retry":
		allow = []string{http.MethodPost}
	default:
		if strings.Contains(rest, "/") {
			return apiErr(http.StatusNotFound, "no such idle-sessions resource: %s", r.URL.Path)
		}
		allow = []string{http.MethodDelete} // a session
	}
	// Methods are compared whole and case-sensitively (RFC 9110 §9.1): a
	// substring test would let "DEL" or "ET" through as DELETE or GET.
	if !slices.Contains(allow, r.Method) {
		list := strings.Join(allow, ", ")
		w.Header().Set("Allow", list)
		return apiErr(http.StatusMethodNotAllowed, "method %q not allowed on %s (allowed: %s)", r.Method, r.URL.Path, list)
	}
	switch rest {
	case "":
		if r.Method == http.MethodDelete {
			return a.revokeUser(w, r)
		}
		return a.list(w, r)
	case "stats":
		return a.stats(w, r)
	case "dead-letters":
		return a.deadLetters(w, r)
	case "dead-letters/retry":
		return a.retryDead(w, r)
	case "ui":
		return serveUI(w, r)
	}
	return a.revokeOne(w, r, rest)
}

// sessionJSON is a session as the admin API shows it.
type sessionJSON struct {
	Session          string    `json:"session"`
	Zone             string    `json:"zone"`
	User             *string   `json:"user"`
	StartedAt        time.Time `json:"started_at"`
	LastActivityAt   time.Time `json:"last_activity_at"`
	ExpiresAt        time.Time `json:"expires_at"`
	RemainingSeconds int64     `json:"remaining_seconds"`
	Requests         uint32    `json:"requests"`
}

func toJSON(z *engine.Zone, s idletrack.Session, now int64) sessionJSON {
	at, _ := s.Deadline(&z.Config().Policy)
	j := sessionJSON{
		Session:          s.ID.Short(),
		Zone:             z.Name(),
		StartedAt:        time.Unix(0, s.OnlineSince()).UTC(),
		LastActivityAt:   time.Unix(0, s.LastActivity).UTC(),
		ExpiresAt:        time.Unix(0, at).UTC(),
		RemainingSeconds: idletrack.RemainingSeconds(at, now),
		Requests:         s.Requests,
	}
	if s.User != "" {
		u := s.User
		j.User = &u
	}
	return j
}

// runningEngines returns the engines running now. The pool's lock is held
// only while they are copied: revoking waits for the store, and holding the
// pool meanwhile would stall every config reload and metrics scrape.
func runningEngines() []*sharedEngine {
	var out []*sharedEngine
	engines.Range(func(_, v any) bool {
		out = append(out, v.(*sharedEngine))
		return true
	})
	return out
}

// eachZone calls fn for every zone of every running engine, optionally
// filtered by name. It fails with 404 when a zone is named that no engine
// serves.
func eachZone(zone string, fn func(*sharedEngine, *engine.Zone)) error {
	found := false
	for _, se := range runningEngines() {
		for _, z := range se.engine.Zones() {
			if zone == "" || z.Name() == zone {
				found = true
				fn(se, z)
			}
		}
	}
	if zone != "" && !found {
		return apiErr(http.StatusNotFound, "no zone %q", zone)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, code int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	return json.NewEncoder(w).Encode(v)
}

// list answers GET /idle-sessions/?user=&zone=&limit=, newest activity first.
func (adminAPI) list(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	limit := 1000
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return apiErr(http.StatusBadRequest, "limit: %q is not a non-negative number", v)
		}
		limit = n
	}
	user := q.Get("user")
	type found struct {
		z *engine.Zone
		s idletrack.Session
	}
	var all []found
	now := time.Now().UnixNano()
	err := eachZone(q.Get("zone"), func(se *sharedEngine, z *engine.Zone) {
		now = se.engine.Now()
		p := z.Config().Policy
		z.Tracker().Each(func(s idletrack.Session) bool {
			// Past its deadline but not yet swept: no longer online.
			if at, _ := s.Deadline(&p); at > now && (user == "" || s.User == user) {
				all = append(all, found{z, s})
			}
			return true
		})
	})
	if err != nil {
		return err
	}
	slices.SortFunc(all, func(a, b found) int {
		if c := cmpInt(b.s.LastActivity, a.s.LastActivity); c != 0 {
			return c
		}
		return slices.Compare(a.s.ID[:], b.s.ID[:])
	})
	out := struct {
		Sessions []sessionJSON `json:"sessions"`
		Count    int           `json:"count"`
	}{Sessions: []sessionJSON{}, Count: len(all)}
	for i, f := range all {
		if i >= limit {
			break
		}
		out.Sessions = append(out.Sessions, toJSON(f.z, f.s, now))
	}
	return writeJSON(w, http.StatusOK, out)
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// stats answers GET /idle-sessions/stats.
func (adminAPI) stats(w http.ResponseWriter, r *http.Request) error {
	out := struct {
		Active      int            `json:"active"`
		Zones       map[string]int `json:"zones"`
		UsersOnline int            `json:"users_online"`
		// The events waiting for delivery: the count the metric
		// caddy_idle_session_webhook_pending shows.
		WebhookPending int `json:"webhook_pending"`
		// The same count under its first name, kept for the clients
		// that read it (DESIGN.md's "outbox pending").
		OutboxPending int `json:"outbox_pending"`
		DeadLetters   int `json:"dead_letters"`
	}{Zones: map[string]int{}}
	users := map[string]bool{}
	for _, se := range runningEngines() {
		now := se.engine.Now()
		for _, z := range se.engine.Zones() {
			n := 0
			p := z.Config().Policy
			z.Tracker().Each(func(s idletrack.Session) bool {
				if at, _ := s.Deadline(&p); at <= now {
					return true // past its deadline, about to be swept
				}
				n++
				if s.User != "" {
					users[z.Name()+"\x00"+s.User] = true
				}
				return true
			})
			out.Zones[z.Name()] += n
			out.Active += n
		}
		p, d, err := se.store.OutboxStats(r.Context())
		if err != nil {
			return apiErr(http.StatusServiceUnavailable, "reading the outbox: %v", err)
		}
		out.WebhookPending += p
		out.DeadLetters += d
	}
	out.UsersOnline = len(users)
	out.OutboxPending = out.WebhookPending
	return writeJSON(w, http.StatusOK, out)
}

// revokeOne answers DELETE /idle-sessions/<session>.
func (adminAPI) revokeOne(w http.ResponseWriter, r *http.Request, short string) error {
	if len(short) != 16 || strings.Trim(short, "0123456789abcdef") != "" {
		return apiErr(http.StatusBadRequest, "%q is not a session: want the 16 hex digits the API lists", short)
	}
	n, err := revoke(r.URL.Query().Get("zone"), func(s idletrack.Session) bool { return s.ID.Short() == short })
	if errors.As(err, new(caddy.APIError)) {
		return err
	}
	if err != nil {
		return apiErr(http.StatusServiceUnavailable, "revoked in memory, but the store did not confirm: %v", err)
	}
	if n == 0 {
		return apiErr(http.StatusNotFound, "no active session %s", short)
	}
	return writeJSON(w, http.StatusOK, map[string]int{"revoked": n})
}

// revokeUser answers DELETE /idle-sessions/?user=<id>[&zone=]: log the user
// out everywhere.
func (adminAPI) revokeUser(w http.ResponseWriter, r *http.Request) error {
	user := r.URL.Query().Get("user")
	if user == "" {
		return apiErr(http.StatusBadRequest, "name the user: DELETE /idle-sessions/?user=<id>")
	}
	n, err := revoke(r.URL.Query().Get("zone"), func(s idletrack.Session) bool { return s.User == user })
	if errors.As(err, new(caddy.APIError)) {
		return err
	}
	if err != nil {
		return apiErr(http.StatusServiceUnavailable, "revoked in memory, but the store did not confirm: %v", err)
	}
	return writeJSON(w, http.StatusOK, map[string]int{"revoked": n})
}

// revoke ends every session that match selects with reason revoked. Each
// end is durable, with its webhook queued, before revoke returns; the
// engine then closes the session's open WebSockets.
func revoke(zone string, match func(idletrack.Session) bool) (int, error) {
	n := 0
	var errs []error
	err := eachZone(zone, func(se *sharedEngine, z *engine.Zone) {
		var ids []idletrack.ID
		z.Tracker().Each(func(s idletrack.Session) bool {
			if match(s) {
				ids = append(ids, s.ID)
			}
			return true
		})
		now := se.engine.Now()
		for _, id := range ids {
			ok, err := z.End(id, idletrack.ReasonRevoked, now)
			if ok {
				n++
			}
			if err != nil {
				errs = append(errs, err)
			}
		}
	})
	if err != nil {
		return 0, err
	}
	return n, errors.Join(errs...)
}

// deadLetterJSON is a dead letter as the admin API shows it.
type deadLetterJSON struct {
	ID        string          `json:"id"`
	Zone      string          `json:"zone"`
	Type      string          `json:"type"`
	Attempts  int             `json:"attempts"`
	LastError string          `json:"last_error"`
	At        time.Time       `json:"at"`
	Payload   json.RawMessage `json:"payload"`
}

// deadLetters answers GET /idle-sessions/dead-letters.
func (adminAPI) deadLetters(w http.ResponseWriter, r *http.Request) error {
	out := struct {
		DeadLetters []deadLetterJSON `json:"dead_letters"`
		Count       int              `json:"count"`
	}{DeadLetters: []deadLetterJSON{}}
	for _, se := range runningEngines() {
		evs, err := se.store.DeadLetters(r.Context(), 1000)
		if err != nil {
			return apiErr(http.StatusServiceUnavailable, "reading dead letters: %v", err)
		}
		for _, ev := range evs {
			payload := json.RawMessage(ev.Body)
			if !json.Valid(payload) {
				payload, _ = json.Marshal(string(ev.Body))
			}
			out.DeadLetters = append(out.DeadLetters, deadLetterJSON{
				ID: ev.ID, Zone: ev.Zone, Type: ev.Type, Attempts: ev.Attempts, LastError: ev.LastError,
				At: time.Unix(0, ev.At).UTC(), Payload: payload,
			})
		}
	}
	out.Count = len(out.DeadLetters)
	return writeJSON(w, http.StatusOK, out)
}

// retryDead answers POST /idle-sessions/dead-letters/retry with an optional
// body {"ids": [...]} (all dead letters when absent).
func (adminAPI) retryDead(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		IDs []string `json:"ids"`
	}
	if r.ContentLength != 0 {
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&body); err != nil && !errors.Is(err, io.EOF) {
			return apiErr(http.StatusBadRequest, "body: want {\"ids\": [...]}: %v", err)
		}
	}
	n := 0
	for _, se := range runningEngines() {
		k, err := se.store.Revive(r.Context(), body.IDs, se.engine.Now())
		if err != nil {
			return apiErr(http.StatusServiceUnavailable, "re-queueing dead letters: %v", err)
		}
		n += k
		if k > 0 {
			se.worker.Kick()
		}
	}
	return writeJSON(w, http.StatusOK, map[string]int{"requeued": n})
}

var _ caddy.AdminRouter = adminAPI{}
