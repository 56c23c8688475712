package caddymodule

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/idlegate/idlegate/engine"
)

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(Handler)
	if err := m.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	if err := claimZone(h, m); err != nil {
		return nil, err
	}
	return m, nil
}

// zoneClaim is a zone as the first idle_session of a Caddyfile that names
// it configures it.
type zoneClaim struct {
	at  string // file:line of the directive
	cfg engine.ZoneConfig
}

// claimZone fails when m gives a zone other settings than an earlier
// idle_session of the same Caddyfile did, naming both directives by file
// and line. (Provision checks the same for JSON configs, where only the
// handlers' settings and servers can name them.)
func claimZone(h httpcaddyfile.Helper, m *Handler) error {
	if h.State == nil {
		return nil
	}
	// A copy, with the defaults applied: the adapted JSON keeps only what
	// was written.
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	var c Handler
	if err := json.Unmarshal(b, &c); err != nil {
		return err
	}
	c.applyDefaults()
	if c.Validate() != nil {
		return nil // reported at load, naming the option
	}
	store, err := storeKey(c.Store)
	if err != nil {
		return nil
	}
	claims, _ := h.State["idle_session.zones"].(map[string]zoneClaim)
	if claims == nil {
		claims = make(map[string]zoneClaim)
		h.State["idle_session.zones"] = claims
	}
	cur := zoneClaim{at: "the idle_session at " + m.at, cfg: c.zoneConfig()}
	key := store + "\x00" + c.Zone
	if first, ok := claims[key]; ok {
		return engine.Conflict(first.cfg, first.at, cur.cfg, cur.at)
	}
	claims[key] = cur
	return nil
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	idle_session [<matcher>] {
//	    cookie           <name>|<prefix>*
//	    cookie_parser    php|django|express|rails|go|safe
//	    laravel_key      <APP_KEY>
//	    idle             <duration>
//	    absolute         <duration>
//	    store bolt       [<path>]
//	    store redis      <redis-url> {
//	        prefix      <prefix>
//	        password    <password>
//	        tls
//	        addrs       <host:port>...
//	        master_name <name>
//	    }
//	    zone             <zone>         (alias: name)
//	    user_header      <header>
//	    user_cookie      <name|prefix*> [<separator>]
//	    login {
//	        <matcher set>
//	    }
//	    user_form        <field> [<status>...]
//	    user_placeholder <placeholder>
//	    logout {
//	        <matcher set>
//	    }
//	    passive {
//	        <matcher set>
//	    }
//	    on_expired       status <code> | redirect <url> | strip
//	    clear_cookies    <name|prefix*>...
//	    status_path      <path>
//	    remaining_header <header>
//	    rotation_grace   <duration>
//	    remember_ended   <duration>
//	    max_sessions     <n>
//	    websocket_activity
//	    warn_before      <duration>
//	    inject_warning
//	    warning {
//	        events_only
//	        lang     <en|de|fr|es>
//	        title    <text>
//	        body     <text with {time}>
//	        stay     <text>
//	        sign_out <text>
//	    }
//	    webhook <url> {
//	        secret       <whsec_...>
//	        timeout      <duration>
//	        max_attempts <n>
//	        events       ended [started]
//	        include_anonymous
//	    }
//	}
//
// Each option is given once; login, logout, passive and clear_cookies may
// repeat (every login, logout or passive block is one more matcher set, any
// of which matches; clear_cookies lists add up), and so may addrs under
// store redis.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	h.at = fmt.Sprintf("%s:%d", d.File(), d.Line())
	if d.NextArg() {
		return d.ArgErr()
	}
	textOpts := map[string]*string{
		"cookie": &h.Cookie, "cookie_parser": &h.CookieParser, "laravel_key": &h.LaravelKey,
		"zone": &h.Zone, "name": &h.Zone, // name: the former spelling of zone
		"user_header": &h.UserHeader, "user_placeholder": &h.UserPlaceholder, "status_path": &h.StatusPath, "remaining_header": &h.RemainingHeader,
	}
	once := onceChecker{repeat: map[string]bool{"login": true, "logout": true, "passive": true, "clear_cookies": true}, alias: map[string]string{"name": "zone"}}
	for d.NextBlock(0) {
		opt := d.Val()
		if err := once.check(d, "", opt); err != nil {
			return err
		}
		if dst, ok := textOpts[opt]; ok {
			if err := setOneArg(d, dst); err != nil {
				return err
			}
			continue
		}
		switch opt {
		case "idle", "absolute", "rotation_grace", "remember_ended", "warn_before":
			dur, err := durationArg(d, opt)
			if err != nil {
				return err
			}
			switch opt {
			case "idle":
				h.Idle = dur
			case "absolute":
				h.Absolute = dur
			case "rotation_grace":
				h.RotationGrace = &dur
			case "remember_ended":
				h.RememberEnded = dur
			case "warn_before":
				h.WarnBefore = dur
			}
		case "user_cookie":
			args := d.RemainingArgs()
			if len(args) < 1 || len(args) > 2 {
				return d.Errf("user_cookie: want <name|prefix*> [<separator>]")
			}
			h.UserCookie = args[0]
			if len(args) == 2 {
				h.UserCookieSeparator = args[1]
			}
		case "max_sessions":
			n, err := intArg(d, opt)
			if err != nil {
				return err
			}
			h.MaxSessions = n
		case "store":
			if err := h.parseStore(d); err != nil {
				return err
			}
		case "login", "logout", "passive":
			set, err := caddyhttp.ParseCaddyfileNestedMatcherSet(d)
			if err != nil {
				return d.Errf("%s: %v", opt, err)
			}
			switch opt {
			case "login":
				h.LoginMatchRaw = append(h.LoginMatchRaw, set)
			case "logout":
				h.LogoutMatchRaw = append(h.LogoutMatchRaw, set)
			default:
				h.PassiveMatchRaw = append(h.PassiveMatchRaw, set)
			}
		case "user_form":
			args := d.RemainingArgs()
			if len(args) < 1 {
				return d.Errf("user_form: want <field> [<status>...]")
			}
			h.UserForm, h.UserFormStatus = args[0], args[1:]
		case "on_expired":
			if err := h.parseOnExpired(d); err != nil {
				return err
			}
		case "clear_cookies":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.Errf("clear_cookies: name at least one cookie or prefix*")
			}
			h.ClearCookies = append(h.ClearCookies, args...)
		case "websocket_activity", "inject_warning":
			if d.NextArg() {
				return d.Errf("%s takes no arguments", opt)
			}
			if opt == "websocket_activity" {
				h.WebsocketActivity = true
			} else {
				h.InjectWarning = true
			}
		case "webhook":
			if err := h.parseWebhook(d); err != nil {
				return err
			}
		case "warning":
			if err := h.parseWarning(d); err != nil {
				return err
			}
		default:
			return d.Errf("unknown option %q in idle_session", opt)
		}
	}
	return nil
}

// onceChecker refuses an option given twice in one block, where the second
// would silently replace the first.
type onceChecker struct {
	seen   map[string]bool
	repeat map[string]bool   // options that may repeat
	alias  map[string]string // other spellings of an option
}

func (o *onceChecker) check(d *caddyfile.Dispenser, block, opt string) error {
	if o.repeat[opt] {
		return nil
	}
	key := opt
	if a, ok := o.alias[opt]; ok {
		key = a
	}
	if o.seen[key] {
		if key != opt {
			return d.Errf("%s%s: given twice (%s is an alias of %s); set it once", block, key, opt, key)
		}
		return d.Errf("%s%s: given twice; set it once", block, opt)
	}
	if o.seen == nil {
		o.seen = make(map[string]bool)
	}
	o.seen[key] = true
	return nil
}

// setOneArg sets *dst to the option's single value.
func setOneArg(d *caddyfile.Dispenser, dst *string) error {
	v, err := oneArg(d)
	if err == nil {
		*dst = v
	}
	return err
}

// durationArg parses the option's single value as a duration; label names
// the option in errors.
func durationArg(d *caddyfile.Dispenser, label string) (caddy.Duration, error) {
	v, err := oneArg(d)
	if err != nil {
		return 0, err
	}
	dur, err := caddy.ParseDuration(v)
	if err != nil {
		return 0, d.Errf("%s: bad duration %q: %v", label, v, err)
	}
	return caddy.Duration(dur), nil
}

// intArg parses the option's single value as a whole number.
func intArg(d *caddyfile.Dispenser, label string) (int, error) {
	v, err := oneArg(d)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, d.Errf("%s: %q is not a number", label, v)
	}
	return n, nil
}

func oneArg(d *caddyfile.Dispenser) (string, error) {
	opt := d.Val()
	if !d.NextArg() {
		return "", d.Errf("%s: missing value", opt)
	}
	v := d.Val()
	if d.NextArg() {
		return "", d.Errf("%s: too many values", opt)
	}
	return v, nil
}

func (h *Handler) parseStore(d *caddyfile.Dispenser) error {
	if !d.NextArg() {
		return d.Errf("store: want bolt [<path>] or redis <url>")
	}
	s := &StoreConfig{Type: d.Val()}
	switch s.Type {
	case "bolt":
		if d.NextArg() {
			s.Path = d.Val()
		}
	case "redis":
		if d.NextArg() {
			s.URL = d.Val()
		}
		textOpts := map[string]*string{"prefix": &s.Prefix, "password": &s.Password, "master_name": &s.MasterName}
		once := onceChecker{repeat: map[string]bool{"addrs": true}}
		for nesting := d.Nesting(); d.NextBlock(nesting); {
			sub := d.Val()
			if err := once.check(d, "store redis ", sub); err != nil {
				return err
			}
			if dst, ok := textOpts[sub]; ok {
				if err := setOneArg(d, dst); err != nil {
					return err
				}
				continue
			}
			switch sub {
			case "addrs":
				s.Addrs = append(s.Addrs, d.RemainingArgs()...)
			case "tls":
				if d.NextArg() {
					return d.Errf("store redis tls: takes no value, got %q; write tls alone to use TLS, leave it out for none (a rediss:// URL uses TLS too)", d.Val())
				}
				s.TLS = true
			default:
				return d.Errf("store redis: unknown option %q", sub)
			}
		}
	default:
		return d.Errf("store: unknown type %q (want bolt or redis)", s.Type)
	}
	if d.NextArg() {
		return d.Errf("store: too many values")
	}
	h.Store = s
	return nil
}

func (h *Handler) parseOnExpired(d *caddyfile.Dispenser) error {
	if !d.NextArg() {
		return d.Errf("on_expired: want status <code>, redirect <url> or strip")
	}
	o := &OnExpired{Mode: d.Val()}
	switch o.Mode {
	case "status":
		if !d.NextArg() {
			return d.Errf("on_expired status: missing status code")
		}
		code, err := strconv.Atoi(d.Val())
		if err != nil {
			return d.Errf("on_expired status: %q is not a status code", d.Val())
		}
		o.StatusCode = code
	case "redirect":
		if !d.NextArg() {
			return d.Errf("on_expired redirect: missing URL")
		}
		o.URL = d.Val()
	case "strip":
	default:
		return d.Errf("on_expired: unknown mode %q (want status, redirect or strip)", o.Mode)
	}
	if d.NextArg() {
		return d.Errf("on_expired: too many values")
	}
	h.OnExpired = o
	return nil
}

func (h *Handler) parseWebhook(d *caddyfile.Dispenser) error {
	w := &WebhookConfig{}
	if !d.NextArg() {
		return d.Errf("webhook: missing URL")
	}
	w.URL = d.Val()
	if d.NextArg() {
		return d.Errf("webhook: too many values")
	}
	var once onceChecker
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		sub := d.Val()
		if err := once.check(d, "webhook ", sub); err != nil {
			return err
		}
		switch sub {
		case "secret":
			if err := setOneArg(d, &w.Secret); err != nil {
				return err
			}
		case "timeout":
			dur, err := durationArg(d, "webhook timeout")
			if err != nil {
				return err
			}
			w.Timeout = dur
		case "max_attempts":
			n, err := intArg(d, "webhook max_attempts")
			if err != nil {
				return err
			}
			w.MaxAttempts = n
		case "events":
			w.Events = d.RemainingArgs()
			if len(w.Events) == 0 {
				return d.Errf("webhook events: want ended and/or started")
			}
		case "include_anonymous":
			w.IncludeAnonymous = true
		default:
			return d.Errf("webhook: unknown option %q", sub)
		}
	}
	h.Webhook = w
	return nil
}

var (
	_ caddyfile.Unmarshaler = (*Handler)(nil)
)

func (h *Handler) parseWarning(d *caddyfile.Dispenser) error {
	w := &WarningConfig{}
	if d.NextArg() {
		return d.Errf("warning: takes a block, not values")
	}
	textOpts := map[string]*string{"lang": &w.Lang, "title": &w.Title, "body": &w.Body, "stay": &w.Stay, "sign_out": &w.SignOut}
	var once onceChecker
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		sub := d.Val()
		if err := once.check(d, "warning ", sub); err != nil {
			return err
		}
		if dst, ok := textOpts[sub]; ok {
			if err := setOneArg(d, dst); err != nil {
				return err
			}
			continue
		}
		switch sub {
		case "events_only":
			w.EventsOnly = true
		default:
			return d.Errf("warning: unknown option %q", sub)
		}
	}
	h.Warning = w
	return nil
}
