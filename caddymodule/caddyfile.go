package caddymodule

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(Handler)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
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
//	    name             <zone>
//	    user_header      <header>
//	    user_cookie      <name|prefix*> [<separator>]
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
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	textOpts := map[string]*string{
		"cookie": &h.Cookie, "cookie_parser": &h.CookieParser, "laravel_key": &h.LaravelKey, "name": &h.Name,
		"user_header": &h.UserHeader, "status_path": &h.StatusPath, "remaining_header": &h.RemainingHeader,
	}
	for d.NextBlock(0) {
		opt := d.Val()
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
		case "logout", "passive":
			set, err := caddyhttp.ParseCaddyfileNestedMatcherSet(d)
			if err != nil {
				return d.Errf("%s: %v", opt, err)
			}
			if opt == "logout" {
				h.LogoutMatchRaw = append(h.LogoutMatchRaw, set)
			} else {
				h.PassiveMatchRaw = append(h.PassiveMatchRaw, set)
			}
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
		for nesting := d.Nesting(); d.NextBlock(nesting); {
			sub := d.Val()
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
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch sub := d.Val(); sub {
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
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		sub := d.Val()
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
