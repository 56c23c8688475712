package caddymodule

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/idlegate/idlegate/engine"
	"github.com/idlegate/idlegate/idletrack"
	"github.com/idlegate/idlegate/sessioncookie"
	"github.com/idlegate/idlegate/warning"
	"github.com/idlegate/idlegate/webhook"
)

func init() {
	caddy.RegisterModule(Handler{})
	httpcaddyfile.RegisterHandlerDirective("idle_session", parseCaddyfile)
	// Ahead of basic_auth, so it runs before handle/route blocks and the
	// proxy: users need no `order` option.
	httpcaddyfile.RegisterDirectiveOrder("idle_session", httpcaddyfile.Before, "basic_auth")
}

// Handler enforces session idle timeouts on the application's own session
// cookie. It records each session's activity, refuses requests once a
// session has been idle (or alive) too long, and reports every session end
// with a signed webhook — also for sessions that expire silently.
type Handler struct {
	// The application's session cookie (laravel_session, sessionid,
	// PHPSESSID, connect.sid). Required.
	Cookie string `json:"cookie"`

	// How the application reads its Cookie header, so that idlegate's
	// reading of the session cookie is the application's: "php" (PHP's
	// $_COOKIE, which Laravel and Symfony read too), "django", "express"
	// (Node's cookie package), "rails" (Rack), "go" (net/http) or "safe"
	// (any backend: a pair any of them would read counts, and only values
	// that all of them decode alike are accepted). Default: from the cookie
	// name: PHPSESSID and laravel_session php, sessionid django, connect.sid
	// express, _<app>_session rails; php with laravel_key; safe for any
	// other name (which refuses values with escapes: name the parser).
	CookieParser string `json:"cookie_parser,omitempty"`

	// Laravel's APP_KEY ("base64:..."). When set, the cookie is decrypted
	// to Laravel's stable session ID, so re-encrypting the cookie on every
	// response is not a rotation.
	LaravelKey string `json:"laravel_key,omitempty"`

	// End a session after this long without activity. Default: 30m.
	Idle caddy.Duration `json:"idle,omitempty"`

	// End a session this long after it started, active or not.
	// Default: 0 (off).
	Absolute caddy.Duration `json:"absolute,omitempty"`

	// Where sessions are stored. Default: bbolt at
	// <caddy data dir>/idlegate/sessions.db.
	Store *StoreConfig `json:"store,omitempty"`

	// The zone: the namespace of the handler's sessions in the store, and
	// the name the admin API, metrics and webhooks use. Handlers of one
	// config that name the same zone must configure it alike (idle,
	// absolute, rotation_grace, remember_ended, max_sessions, user_header or
	// user_cookie, webhook); give each site its own zone when they differ.
	// Default: the cookie name.
	Zone string `json:"zone,omitempty"`

	// An alias of zone, its former name; accepted in JSON and the
	// Caddyfile. Setting both to different values is an error.
	Name string `json:"name,omitempty"`

	// An upstream response header that names the signed-in user. It is
	// removed before the response reaches the client.
	UserHeader string `json:"user_header,omitempty"`

	// A cookie the upstream sets at login whose value names the user, for
	// applications that send no user header: a name, or a prefix followed
	// by '*' (wordpress_logged_in_*). The value is decoded as the
	// application decodes it (cookie_parser), and cut at UserCookieSeparator
	// when set. It is believed only on the response that starts or rotates
	// the session, the answer to a login the application accepted.
	UserCookie string `json:"user_cookie,omitempty"`

	// With UserCookie: the user is the part of the value before the first
	// occurrence of this (WordPress: "|").
	UserCookieSeparator string `json:"user_cookie_separator,omitempty"`

	// The application's sign-in requests (its login form's POST). Only
	// their answers are believed for UserForm, and for UserPlaceholder
	// when set.
	LoginMatchRaw caddyhttp.RawMatcherSets `json:"login_match,omitempty" caddy:"namespace=http.matchers"`

	// A field of the login request's urlencoded form that names the user
	// (Redmine's username, DokuWiki's u), for applications that name the
	// user in no header and no cookie. The body of a login request is read
	// (at most 64 KiB) and passed on unchanged. The user is believed only
	// when the answer has one of UserFormStatus and starts or rotates the
	// session: the application accepted the login.
	UserForm string `json:"user_form,omitempty"`

	// With UserForm: the statuses of an accepted login, codes (302) or
	// classes (3xx). Default: 3xx.
	UserFormStatus []string `json:"user_form_status,omitempty"`

	// A Caddy placeholder that names the user ({http.auth.user.id},
	// {vars.user}, ...), evaluated when the upstream's answer starts or
	// rotates the session (with LoginMatchRaw, only for login requests).
	// The user sources are tried in order: user_header, user_cookie,
	// user_form, user_placeholder.
	UserPlaceholder string `json:"user_placeholder,omitempty"`

	// Requests that end the session once the upstream answers 2xx or 3xx.
	LogoutMatchRaw caddyhttp.RawMatcherSets `json:"logout_match,omitempty" caddy:"namespace=http.matchers"`

	// Requests that are checked but do not count as activity (polling,
	// heartbeats).
	PassiveMatchRaw caddyhttp.RawMatcherSets `json:"passive_match,omitempty" caddy:"namespace=http.matchers"`

	// What a request of an ended session gets. Default: status 401.
	OnExpired *OnExpired `json:"on_expired,omitempty"`

	// Cookies also cleared whenever a session ends or is refused: names,
	// or prefixes ending in * (remember_web_*).
	ClearCookies []string `json:"clear_cookies,omitempty"`

	// A path answered by idlegate itself for GET: JSON with the remaining
	// seconds of the request's session. It never counts as activity
	// (except GET <status_path>?touch=1, the warning's "stay signed in").
	StatusPath string `json:"status_path,omitempty"`

	// A response header carrying the remaining idle seconds.
	RemainingHeader string `json:"remaining_header,omitempty"`

	// How long a rotated-away cookie value keeps working. Default: 30s.
	RotationGrace *caddy.Duration `json:"rotation_grace,omitempty"`

	// How long ended session IDs are remembered so they can never revive.
	// Default: 14d.
	RememberEnded caddy.Duration `json:"remember_ended,omitempty"`

	// Bound on tracked sessions. Default: 1000000.
	MaxSessions int `json:"max_sessions,omitempty"`

	// Client frames on an open WebSocket count as activity. Default: false.
	WebsocketActivity bool `json:"websocket_activity,omitempty"`

	// The browser warning appears this long before sign-out. Must be
	// shorter than idle. Default: 2m, or idle/2 when idle is under 4m.
	WarnBefore caddy.Duration `json:"warn_before,omitempty"`

	// Insert the warning script into the session's HTML responses.
	InjectWarning bool `json:"inject_warning,omitempty"`

	// Texts, language and events-only mode of the warning.
	Warning *WarningConfig `json:"warning,omitempty"`

	// Where session ends are reported.
	Webhook *WebhookConfig `json:"webhook,omitempty"`

	login        caddyhttp.MatcherSets
	logout       caddyhttp.MatcherSets
	passive      caddyhttp.MatcherSets
	profile      sessioncookie.Profile
	cookiePrefix string // the cookie option is a pattern: its prefix
	laravel      *sessioncookie.Laravel
	clear        *sessioncookie.Matcher
	poolKey      string
	shared       *sharedEngine
	lease        *engine.Lease // this handler's reference to its zone
	z            *engine.Zone
	logger       *zap.Logger
	fam          *sessioncookie.Family
	// parserGuessed: cookie_parser was not set and the name says no
	// framework, so the safe profile applies (Provision warns).
	parserGuessed bool
	redirectHost  string // on_expired redirect's target: never redirected again
	redirectPath  string
	channel       string // the warning's BroadcastChannel name
	script        string // the warning script's path (under status_path)
	at            string // Caddyfile file:line of the directive, for errors
}

// StoreConfig selects the session store.
type StoreConfig struct {
	// "bolt" (default) or "redis".
	Type string `json:"type,omitempty"`
	// bolt: the file. Default: <caddy data dir>/idlegate/sessions.db.
	Path string `json:"path,omitempty"`
	// redis: the server, as a redis:// or rediss:// URL.
	URL string `json:"url,omitempty"`
	// redis: prefix of every key. Default: "idlegate:".
	Prefix string `json:"prefix,omitempty"`
	// redis: password (overrides the URL's).
	Password string `json:"password,omitempty"`
	// redis: several addresses make a cluster; with MasterName, Sentinel.
	Addrs      []string `json:"addrs,omitempty"`
	MasterName string   `json:"master_name,omitempty"`
	// redis: use TLS even for a redis:// URL.
	TLS bool `json:"tls,omitempty"`
}

// OnExpired says how refused requests are answered.
type OnExpired struct {
	// "status" (default), "redirect" or "strip".
	Mode string `json:"mode,omitempty"`
	// status: the status code. Default: 401.
	StatusCode int `json:"status_code,omitempty"`
	// redirect: where browser navigations are sent (303).
	URL string `json:"url,omitempty"`
}

// WebhookConfig is where session ends are posted.
type WebhookConfig struct {
	// The receiver's URL. Required.
	URL string `json:"url"`
	// Standard Webhooks secret, "whsec_<base64>". Required.
	Secret string `json:"secret"`
	// Per attempt. Default: 10s.
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// Attempts before an event becomes a dead letter. Default: 10.
	MaxAttempts int `json:"max_attempts,omitempty"`
	// "ended" and/or "started". Default: ["ended"].
	Events []string `json:"events,omitempty"`
	// Also report sessions that never had a user.
	IncludeAnonymous bool `json:"include_anonymous,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.idle_session",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision sets up the handler: matchers, the Laravel key and the shared
// engine of its store.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	h.applyDefaults()
	// Check now, so a bad value fails at load naming the option, before
	// anything is opened.
	if err := h.Validate(); err != nil {
		return err
	}
	if h.parserGuessed {
		h.logger.Warn("cookie_parser not set and the cookie's name says no framework: reading it with the safe parser, which refuses session values with escapes or quotes; name the application's parser (php, django, express, rails, go)",
			zap.String("cookie", h.Cookie))
	}

	for _, m := range []struct {
		field string
		dst   *caddyhttp.MatcherSets
	}{{"LoginMatchRaw", &h.login}, {"LogoutMatchRaw", &h.logout}, {"PassiveMatchRaw", &h.passive}} {
		sets, err := ctx.LoadModule(h, m.field)
		if err != nil {
			return fmt.Errorf("loading matchers: %w", err)
		}
		if err := m.dst.FromInterface(sets); err != nil {
			return err
		}
	}
	h.profile, _ = sessioncookie.ParseProfile(h.CookieParser) // checked in Validate
	if h.LaravelKey != "" {
		l, err := sessioncookie.NewLaravel(h.LaravelKey)
		if err != nil {
			return fmt.Errorf("laravel_key: %w", err)
		}
		h.laravel = l
	}
	if len(h.ClearCookies) > 0 {
		m, err := sessioncookie.NewMatcher(h.ClearCookies)
		if err != nil {
			return fmt.Errorf("clear_cookies: %w", err)
		}
		h.clear = &m
	}
	initMetrics(ctx.GetMetricsRegistry())
	initZoneMetrics(h.Zone)

	shared, key, err := acquireEngine(h.Store)
	if err != nil {
		return err
	}
	h.shared, h.poolKey = shared, key
	h.family()
	// Every module of one config is provisioned with the same context, so
	// its Done channel tells this config's handlers from the previous
	// config's, which still hold the zone during a reload.
	l, err := shared.engine.Acquire(ctx, h.zoneConfig(), engine.Holder{Config: ctx.Done(), Site: h.site(ctx)})
	if err != nil {
		return err
	}
	h.lease, h.z = l, l.Zone()
	h.restoreFamily()
	return nil
}

// site describes the handler for errors about its zone: its cookie and
// the listen addresses of its server (Caddy does not tell a handler its
// site's host names).
func (h *Handler) site(ctx caddy.Context) string {
	s := fmt.Sprintf("the idle_session with cookie %s", h.Cookie)
	if srv, ok := ctx.Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server); ok && srv != nil && len(srv.Listen) > 0 {
		s += " on the server listening on " + strings.Join(srv.Listen, " ")
	}
	return s
}

// applyDefaults fills in what the config left out (and what follows from
// it). The defaults themselves live in idletrack.DefaultPolicy and in
// webhook's constants.
func (h *Handler) applyDefaults() {
	if h.Zone == "" {
		h.Zone = h.Name // (Validate refuses two different values)
	}
	if h.Zone == "" {
		h.Zone = h.Cookie
	}
	def := idletrack.DefaultPolicy() // the defaults live there, and in webhook's constants
	if h.Idle == 0 {
		h.Idle = caddy.Duration(def.Idle)
	}
	if h.RememberEnded == 0 {
		h.RememberEnded = caddy.Duration(def.RememberEnded)
	}
	if h.MaxSessions == 0 {
		h.MaxSessions = def.MaxSessions
	}
	if h.WarnBefore == 0 {
		h.WarnBefore = h.defaultWarnBefore()
	}
	if h.UserForm != "" && len(h.UserFormStatus) == 0 {
		h.UserFormStatus = []string{"3xx"} // an accepted login form redirects
	}
	h.channel = channelName(h.Zone)
	h.script = scriptPath(h.StatusPath)
	if h.OnExpired == nil {
		h.OnExpired = &OnExpired{}
	}
	if h.OnExpired.Mode == "" {
		h.OnExpired.Mode = "status"
	}
	if h.OnExpired.StatusCode == 0 {
		h.OnExpired.StatusCode = http.StatusUnauthorized
	}
	if h.OnExpired.Mode == "redirect" {
		if u, err := url.Parse(h.OnExpired.URL); err == nil {
			h.redirectHost, h.redirectPath = u.Host, u.Path
		}
	}
	h.cookiePrefix, _ = strings.CutSuffix(h.Cookie, "*")
	if h.cookiePrefix == h.Cookie {
		h.cookiePrefix = ""
	}
	if h.CookieParser == "" {
		h.CookieParser = sessioncookie.DefaultProfile(strings.TrimSuffix(h.Cookie, "*")).String()
		if h.LaravelKey != "" {
			h.CookieParser = sessioncookie.ProfilePHP.String() // Laravel, whatever its cookie's name
		}
		h.parserGuessed = h.CookieParser == sessioncookie.ProfileSafe.String()
	}
	if h.Store == nil {
		h.Store = &StoreConfig{}
	}
	if h.Store.Type == "" {
		h.Store.Type = "bolt"
	}
	if h.Webhook != nil {
		if h.Webhook.Timeout == 0 {
			h.Webhook.Timeout = caddy.Duration(webhook.DefaultTimeout)
		}
		if h.Webhook.MaxAttempts == 0 {
			h.Webhook.MaxAttempts = webhook.DefaultMaxAttempts
		}
		if len(h.Webhook.Events) == 0 {
			h.Webhook.Events = []string{"ended"}
		}
	}
}

func (h *Handler) zoneConfig() engine.ZoneConfig {
	grace := idletrack.DefaultPolicy().RotationGrace
	if h.RotationGrace != nil {
		grace = time.Duration(*h.RotationGrace)
	}
	cfg := engine.ZoneConfig{
		Name:       h.Zone,
		UsersKnown: h.usersKnown(),
		Policy: idletrack.Policy{
			Idle:          time.Duration(h.Idle),
			Absolute:      time.Duration(h.Absolute),
			RotationGrace: grace,
			RememberEnded: time.Duration(h.RememberEnded),
			MaxSessions:   h.MaxSessions,
		},
	}
	if w := h.Webhook; w != nil {
		key, _ := webhook.ParseSecret(w.Secret) // checked in Validate
		cfg.Webhook = &engine.Webhook{
			URL:              w.URL,
			Key:              key,
			Timeout:          time.Duration(w.Timeout),
			MaxAttempts:      w.MaxAttempts,
			IncludeAnonymous: w.IncludeAnonymous,
		}
		for _, ev := range w.Events {
			switch ev {
			case "ended":
				cfg.Webhook.Ended = true
			case "started":
				cfg.Webhook.Started = true
			}
		}
	}
	return cfg
}

// Validate checks the configuration. Every error names the option.
func (h *Handler) Validate() error {
	// Caddy prefixes these with the module's name (provision
	// http.handlers.idle_session: ...), so they start with the option.
	bad := func(opt string, format string, args ...any) error {
		return fmt.Errorf("%s: %s", opt, fmt.Sprintf(format, args...))
	}
	if h.Name != "" && h.Zone != "" && h.Zone != h.Name {
		return bad("zone", "%q and its alias name %q disagree; set only zone", h.Zone, h.Name)
	}
	if h.Cookie == "" {
		return bad("cookie", "is required: name the application's session cookie (e.g. laravel_session, sessionid, PHPSESSID, connect.sid)")
	}
	if base, pattern := strings.CutSuffix(h.Cookie, "*"); !sessioncookie.ValidName(base) || strings.Contains(base, "*") || pattern && base == "" {
		return bad("cookie", "%q is not a valid cookie name, nor a name prefix followed by a single trailing '*' (wordpress_logged_in_*)", h.Cookie)
	}
	if h.CookieParser != "" {
		if _, err := sessioncookie.ParseProfile(h.CookieParser); err != nil {
			return bad("cookie_parser", "%v", err)
		}
	}
	if h.Idle < 0 {
		return bad("idle", "must be positive, got %s", time.Duration(h.Idle))
	}
	if h.Idle > 0 && time.Duration(h.Idle) < time.Second {
		return bad("idle", "must be at least 1s, got %s", time.Duration(h.Idle))
	}
	if h.Absolute < 0 {
		return bad("absolute", "must be positive or 0 (off), got %s", time.Duration(h.Absolute))
	}
	if h.RotationGrace != nil && *h.RotationGrace < 0 {
		return bad("rotation_grace", "must not be negative, got %s", time.Duration(*h.RotationGrace))
	}
	if h.RememberEnded < 0 {
		return bad("remember_ended", "must be positive, got %s", time.Duration(h.RememberEnded))
	}
	if h.MaxSessions < 0 {
		return bad("max_sessions", "must be positive, got %d", h.MaxSessions)
	}
	if h.WarnBefore < 0 {
		return bad("warn_before", "must be positive, got %s", time.Duration(h.WarnBefore))
	}
	if h.InjectWarning && h.WarnBefore > 0 && h.Idle > 0 && h.WarnBefore >= h.Idle {
		return bad("warn_before", "%s is not shorter than idle %s: the warning would show on every page", time.Duration(h.WarnBefore), time.Duration(h.Idle))
	}
	if h.InjectWarning && h.StatusPath == "" {
		return bad("inject_warning", "needs status_path: the warning script reads the remaining time there")
	}
	if h.StatusPath != "" && !strings.HasPrefix(h.StatusPath, "/") {
		return bad("status_path", "%q must start with /", h.StatusPath)
	}
	if h.UserCookie != "" {
		if base, _ := strings.CutSuffix(h.UserCookie, "*"); !sessioncookie.ValidName(base) || strings.Contains(base, "*") {
			return bad("user_cookie", "%q is not a cookie name, nor a name prefix followed by a single trailing '*'", h.UserCookie)
		}
	}
	if h.UserForm != "" {
		if len(h.LoginMatchRaw) == 0 && len(h.login) == 0 { // (Caddy calls Validate again after Provision loads the raw sets)
			return bad("user_form", "needs a login block: the requests whose form names the user")
		}
		if strings.ContainsAny(h.UserForm, "&=") || strings.TrimSpace(h.UserForm) != h.UserForm {
			return bad("user_form", "%q is not a form field name", h.UserForm)
		}
	}
	for _, st := range h.UserFormStatus {
		if h.UserForm == "" {
			return bad("user_form", "statuses given without a field")
		}
		if !validStatus(st) {
			return bad("user_form", "status %q is neither a code (302) nor a class (3xx)", st)
		}
	}
	if h.UserPlaceholder != "" && !strings.Contains(h.UserPlaceholder, "{") {
		return bad("user_placeholder", "%q holds no placeholder ({http.auth.user.id}, {vars.user}, ...)", h.UserPlaceholder)
	}
	if (len(h.LoginMatchRaw) > 0 || len(h.login) > 0) && h.UserForm == "" && h.UserPlaceholder == "" {
		return bad("login", "says which requests are logins for user_form or user_placeholder; set one of them")
	}
	if h.UserHeader != "" && !validHeaderName(h.UserHeader) {
		return bad("user_header", "%q is not a valid header name", h.UserHeader)
	}
	if h.RemainingHeader != "" && !validHeaderName(h.RemainingHeader) {
		return bad("remaining_header", "%q is not a valid header name", h.RemainingHeader)
	}
	if h.LaravelKey != "" {
		if _, err := sessioncookie.NewLaravel(h.LaravelKey); err != nil {
			return bad("laravel_key", "%v", err)
		}
	}
	if o := h.OnExpired; o != nil {
		switch o.Mode {
		case "", "status", "strip":
		case "redirect":
			if o.URL == "" {
				return bad("on_expired", "redirect needs a URL")
			}
		default:
			return bad("on_expired", "unknown mode %q (want status, redirect or strip)", o.Mode)
		}
		if o.StatusCode != 0 && (o.StatusCode < 400 || o.StatusCode > 599) {
			return bad("on_expired", "status %d is not an error status (400-599)", o.StatusCode)
		}
	}
	if len(h.ClearCookies) > 0 {
		if _, err := sessioncookie.NewMatcher(h.ClearCookies); err != nil {
			return bad("clear_cookies", "%v", err)
		}
	}
	if s := h.Store; s != nil {
		switch s.Type {
		case "", "bolt":
		case "redis":
			if s.URL == "" && len(s.Addrs) == 0 {
				return bad("store", "redis needs a URL (redis://host:6379/0)")
			}
		default:
			return bad("store", "unknown type %q (want bolt or redis)", s.Type)
		}
	}
	if w := h.Webhook; w != nil {
		if w.URL == "" || !(strings.HasPrefix(w.URL, "http://") || strings.HasPrefix(w.URL, "https://")) {
			return bad("webhook", "%q is not an http(s) URL", w.URL)
		}
		if w.Secret == "" {
			return bad("webhook secret", "is required (a Standard Webhooks secret, whsec_<base64>)")
		}
		if _, err := webhook.ParseSecret(w.Secret); err != nil {
			return bad("webhook secret", "%v", err)
		}
		if w.Timeout < 0 {
			return bad("webhook timeout", "must be positive, got %s", time.Duration(w.Timeout))
		}
		if w.MaxAttempts < 0 {
			return bad("webhook max_attempts", "must be positive, got %d", w.MaxAttempts)
		}
		for _, ev := range w.Events {
			if ev != "ended" && ev != "started" {
				return bad("webhook events", "unknown event %q (want ended, started)", ev)
			}
		}
	}
	return nil
}

// usersKnown: the zone has a source for the signed-in user.
func (h *Handler) usersKnown() bool {
	return h.UserHeader != "" || h.UserCookie != "" || h.UserForm != "" || h.UserPlaceholder != ""
}

func validHeaderName(s string) bool {
	for _, c := range []byte(s) {
		if c <= ' ' || c >= 0x7f || strings.IndexByte("()<>@,;:\\\"/[]?={}", c) >= 0 {
			return false
		}
	}
	return s != ""
}

// Cleanup releases the handler's zone and its hold on the shared engine.
// A zone no config uses any more stops (see engine/lease.go); the engine
// stops, flushing everything, when the last config using its store goes
// away. It works after a failed Provision too.
func (h *Handler) Cleanup() error {
	var err error
	if h.lease != nil {
		err = h.lease.Release()
		if h.z.Retired() {
			// No config names the zone any more: its family goes with it
			// (the store keeps a copy for a config that names it again).
			families.CompareAndDelete(h.familyKey(), h.fam)
		}
		h.lease = nil
	}
	if h.poolKey != "" {
		if _, derr := engines.Delete(h.poolKey); err == nil {
			err = derr
		}
		h.poolKey = ""
	}
	return err
}

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	now := h.shared.engine.Now()
	if h.StatusPath != "" {
		switch r.URL.Path {
		case h.StatusPath:
			if r.Method == http.MethodPost && r.URL.Query().Get("logout") == "1" {
				return h.serveSignOut(w, r, now)
			}
			return h.serveStatus(w, r, now)
		case h.script:
			warning.ServeScript(w, r)
			return nil
		}
	}

	return h.serveObserved(w, r, next, now)
}

// serveObserved serves a request through the response observer. Its one
// defer undoes what the request set up (o.done); with the many returns of
// serve beside it, Go would not open-code the defers and each would cost a
// walk of the function's defer records at return (~250 instructions a
// request under callgrind).
func (h *Handler) serveObserved(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, now int64) error {
	o := getObserver(h, now)
	defer o.done()
	return h.serve(w, r, next, o)
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, o *observer) error {
	now := o.now
	id, rd, name, hasSession := h.readSession(r)
	o.req, o.reqID, o.name = r, id, name
	if len(h.login) > 0 {
		var err error
		if o.login, err = h.login.AnyMatchWithError(r); err != nil {
			return caddyhttp.Error(http.StatusInternalServerError, err)
		}
		if o.login && h.UserForm != "" {
			o.formUser = h.formUser(r)
		}
	}
	switch {
	case rd.Problem != sessioncookie.ProblemNone:
		// The pairs do not make one session as a browser sends it back:
		// an attacker's spelling, or duplicates that parsers would read
		// differently. Never forwarded as they are.
		if fwd, err := h.reject(w, r, o, "cookie_"+rd.Problem.String()); !fwd {
			return err
		}
	case hasSession:
		passive, err := false, error(nil)
		if len(h.passive) > 0 { // an empty MatcherSets matches everything
			if passive, err = h.passive.AnyMatchWithError(r); err != nil {
				return caddyhttp.Error(http.StatusInternalServerError, err)
			}
		}
		v := h.z.Check(r.Context(), id, now, !passive)
		if v.Status == idletrack.StatusActive {
			if reason := h.memberRefusal(r, v.ID, true, now); reason != "" {
				// Another session's credential beside this one's cookie.
				if fwd, err := h.reject(w, r, o, reason); !fwd {
					return err
				}
				break // stripped: it goes on without any session
			}
		}
		switch v.Status {
		case idletrack.StatusActive:
			o.session, o.active, o.user = v.ID, true, v.User
			rd.Forward(r.Header, name, h.profile)
			if h.usersKnown() {
				// Only with users can a racing answer look like a logout
				// (observer.cookieSet); count the session's requests in
				// flight so it can tell.
				h.z.Tracker().InFlight(v.ID, 1)
				o.inflight = true // undone by o.done
			}
			if len(h.logout) > 0 {
				if o.logout, err = h.logout.AnyMatchWithError(r); err != nil {
					return caddyhttp.Error(http.StatusInternalServerError, err)
				}
			}
		default:
			reason := string(v.Reason)
			if v.Status == idletrack.StatusRotated {
				reason = "rotated"
			}
			if fwd, err := h.reject(w, r, o, reason); !fwd {
				return err
			}
		}
	default:
		if reason := h.memberRefusal(r, idletrack.ID{}, false, now); reason != "" {
			// Only another member of an ended session's family.
			if fwd, err := h.reject(w, r, o, reason); !fwd {
				return err
			}
			break
		}
		rd.Forward(r.Header, name, h.profile)
	}
	o.ResponseWriter = w
	if o.active {
		o.ResponseWriter, o.finish = h.wrapForWarning(w, r) // o.finish: run by o.done
	}
	err := next.ServeHTTP(o, r)
	if !o.wrote {
		// Nothing was written (e.g. an error handler takes over): the
		// session's bookkeeping still happens, on the headers as they are.
		o.process(http.StatusOK)
	}
	o.hideUser() // trailers set after the body
	return err
}

// sessionID returns the ID of the request's session, if it carries one
// that reads as one session.
func (h *Handler) sessionID(r *http.Request) (idletrack.ID, bool) {
	id, _, _, ok := h.readSession(r)
	return id, ok
}

// readSession reads the request's session cookie as the application will
// (cookie_parser) and returns its ID. A session pair idlegate cannot vet —
// too long, or a Laravel cookie that does not decrypt — is removed from the
// request: the application then sees no session, as it would if it failed
// to decode the value too, and never one idlegate did not check.
//
// name is the session cookie's name in the request (see requestCookie); ""
// when a pattern matches none.
func (h *Handler) readSession(r *http.Request) (id idletrack.ID, rd sessioncookie.Reading, name string, ok bool) {
	name, several := h.requestCookie(r.Header)
	if several {
		return id, sessioncookie.Reading{Pairs: 2, Problem: sessioncookie.ProblemConflict}, name, false
	}
	if name == "" {
		return id, rd, name, false
	}
	rd = sessioncookie.Read(r.Header, name, h.profile)
	if rd.Problem != sessioncookie.ProblemNone || rd.Value == "" {
		return id, rd, name, false
	}
	if len(rd.Value) <= maxCookieValue {
		if id, ok := h.decodedID(name, rd.Value); ok {
			return id, rd, name, true
		}
	}
	sessioncookie.Strip(r.Header, name, h.profile, nil)
	return id, sessioncookie.Reading{}, name, false
}

// maxCookieValue bounds the cookie values idlegate hashes; browsers cap a
// cookie at 4 KiB, so anything longer is not a real session.
const maxCookieValue = 4096

// valueID is the ID of a session cookie value as the browser sends it (and
// as a Set-Cookie line sets it).
func (h *Handler) valueID(name, raw string) (idletrack.ID, bool) {
	return h.decodedID(name, sessioncookie.Decode(raw, h.profile))
}

// decodedID is the ID of a session cookie value as the application decoded
// it: with laravel_key, of the session ID inside.
func (h *Handler) decodedID(name, value string) (idletrack.ID, bool) {
	if h.laravel != nil {
		sid, ok := h.laravel.SessionIDDecoded(name, value)
		if !ok {
			return idletrack.ID{}, false
		}
		value = sid
	}
	return h.z.ID(value), true
}

// remainingSeconds is idletrack.RemainingSeconds as a header value.
func remainingSeconds(deadline, now int64) string {
	return strconv.FormatInt(idletrack.RemainingSeconds(deadline, now), 10)
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
