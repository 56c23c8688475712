// Package learn watches a person use an application through a plain
// reverse proxy and suggests the idle_session block that fits it: which
// cookie is the session, which other cookies the app issues with it, which
// request is the app's logout, which requests are polling, and where the
// user's name can be read. It is plain Go, with no server of its own: the
// `caddy idle-sessions learn` command (caddymodule/learncmd.go) feeds it
// exchanges and prints what Suggest and Render make of them.
//
// No cookie value is ever kept. A Recorder reduces each value, as it sees
// it, to a keyed hash (to tell values apart across exchanges: a rotation,
// a replay) and to the few facts the inference needs (deleted or not,
// whether it starts with the user's name, its shape). The key is random
// per Recorder and never leaves it.
package learn

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"
)

// MaxExchanges bounds what a Recorder keeps: a learning run is a person
// clicking for minutes, not a proxy left running for days.
const MaxExchanges = 100000

// MaxBody is how much of a request body the learner reads to find form
// field names; a longer body is passed on unread past this.
const MaxBody = 64 << 10

// Exchange is one request and its response as the learner saw them.
type Exchange struct {
	At     time.Time
	Method string
	Path   string
	// Query are the request's query parameters in order; Value only when
	// it is a plain word (see WordValue), never a token.
	Query []Param
	// Cookies are the request's cookies, by name.
	Cookies []ReqCookie
	// Form are the names of the fields of an urlencoded request body.
	Form []Field
	// XRequestedWith is the request's X-Requested-With header.
	XRequestedWith string
	// Navigation: a browser's top-level navigation (Sec-Fetch-Mode
	// navigate, or an Accept that asks for HTML).
	Navigation bool

	Status int
	// Location is the redirect target's path and query ("" when none).
	Location   string
	SetCookies []SetCookie
	// PoweredBy is the response's X-Powered-By header; Runtime reports an
	// X-Runtime header (Rails' Rack::Runtime).
	PoweredBy string
	Runtime   bool
}

// Param is one query parameter.
type Param struct {
	Key   string
	Value string // "" unless the value is a plain word
}

// ReqCookie is one cookie of a request.
type ReqCookie struct {
	Name    string
	ValueID string // keyed hash of the value
}

// Field is one field of an urlencoded request body.
type Field struct {
	Name string
	// IsUser: the value is the user name the learner was given (ignoring
	// case, as the person may have typed it).
	IsUser bool
}

// SetCookie is one Set-Cookie line of a response, without its value.
type SetCookie struct {
	Name   string
	Path   string
	Domain string
	// MaxAge as written (0 when absent; negative for Max-Age<=0).
	MaxAge  int
	Expires time.Time
	// Deleted: Max-Age<=0, an Expires in the past, or an empty value.
	Deleted  bool
	HttpOnly bool
	ValueID  string // keyed hash of the value ("" when deleted)
	// UserSep is the character that follows the user name at the start
	// of the (URL-decoded) value, when it starts so ("" otherwise).
	UserSep string
	// UserEquals: the (URL-decoded) value is the user name.
	UserEquals bool
	// Rails: the value has the shape of a Rails signed or encrypted
	// cookie (base64 parts joined by "--").
	Rails bool
}

// Recorder turns HTTP requests and responses into Exchanges. It is safe
// for concurrent use.
type Recorder struct {
	user string
	key  []byte
	now  func() time.Time

	mu      sync.Mutex
	ex      []Exchange
	dropped int // exchanges past MaxExchanges, not kept
}

// Dropped is how many exchanges were seen past MaxExchanges and not kept.
func (r *Recorder) Dropped() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.dropped
}

// NewRecorder returns a Recorder; user is the name the person will sign
// in with ("" when unknown: no user source is then suggested).
func NewRecorder(user string) *Recorder {
	key := make([]byte, 32)
	rand.Read(key)
	return &Recorder{user: user, key: key, now: time.Now}
}

// valueID is the keyed hash of a value: equal values, equal IDs, and
// nothing else about the value.
func (r *Recorder) valueID(v string) string {
	m := hmac.New(sha256.New, r.key)
	m.Write([]byte(v))
	return hex.EncodeToString(m.Sum(nil)[:8])
}

var (
	reWord  = regexp.MustCompile(`^[A-Za-z][A-Za-z_:.\-]{0,63}$`)
	reRails = regexp.MustCompile(`^[A-Za-z0-9+/=_\-]+--[A-Za-z0-9+/=_\-]+(--[A-Za-z0-9+/=_\-]+)?$`)
)

// WordValue reports whether a query value may be kept: letters (and
// _:.-), no digits — an action or page name, never a nonce or an ID.
func WordValue(v string) bool { return reWord.MatchString(v) }

// Record adds one exchange. body is the start of the request body (at
// most MaxBody bytes), read only to name its urlencoded fields.
func (r *Recorder) Record(req *http.Request, body []byte, resp *http.Response) Exchange {
	e := Exchange{
		At:             r.now(),
		Method:         req.Method,
		Path:           req.URL.Path,
		XRequestedWith: req.Header.Get("X-Requested-With"),
		Navigation: req.Header.Get("Sec-Fetch-Mode") == "navigate" ||
			req.Header.Get("Sec-Fetch-Mode") == "" && strings.Contains(req.Header.Get("Accept"), "text/html"),
		Status:    resp.StatusCode,
		PoweredBy: resp.Header.Get("X-Powered-By"),
		Runtime:   resp.Header.Get("X-Runtime") != "",
	}
	for _, kv := range strings.Split(req.URL.RawQuery, "&") {
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		k, _ = url.QueryUnescape(k)
		v, _ = url.QueryUnescape(v)
		p := Param{Key: k}
		if WordValue(v) {
			p.Value = v
		}
		e.Query = append(e.Query, p)
	}
	for _, c := range req.Cookies() {
		e.Cookies = append(e.Cookies, ReqCookie{Name: c.Name, ValueID: r.valueID(c.Value)})
	}
	if strings.HasPrefix(strings.ToLower(req.Header.Get("Content-Type")), "application/x-www-form-urlencoded") {
		// A body cut at MaxBody may end in a partial field: its name is
		// kept, its value is not compared.
		for _, kv := range strings.Split(string(body), "&") {
			if kv == "" {
				continue
			}
			k, v, _ := strings.Cut(kv, "=")
			k, err := url.QueryUnescape(k)
			if err != nil {
				continue
			}
			v, _ = url.QueryUnescape(v)
			e.Form = append(e.Form, Field{Name: k, IsUser: r.user != "" && strings.EqualFold(v, r.user)})
		}
	}
	if loc, err := resp.Location(); err == nil {
		e.Location = loc.RequestURI()
	}
	at := e.At
	for _, c := range resp.Cookies() {
		s := SetCookie{Name: c.Name, Path: c.Path, Domain: c.Domain, MaxAge: c.MaxAge, Expires: c.Expires, HttpOnly: c.HttpOnly}
		s.Deleted = c.MaxAge < 0 || !c.Expires.IsZero() && c.Expires.Before(at) || c.Value == "" || c.Value == "deleted"
		if !s.Deleted {
			s.ValueID = r.valueID(c.Value)
			dec, err := url.QueryUnescape(c.Value)
			if err != nil {
				dec = c.Value
			}
			s.Rails = reRails.MatchString(dec)
			if r.user != "" {
				s.UserEquals = strings.EqualFold(dec, r.user)
				if len(dec) > len(r.user) && strings.EqualFold(dec[:len(r.user)], r.user) {
					if sep := dec[len(r.user)]; !isAlnum(sep) && sep > ' ' && sep < 0x7f {
						s.UserSep = string(sep)
					}
				}
			}
		}
		e.SetCookies = append(e.SetCookies, s)
	}
	r.mu.Lock()
	if len(r.ex) < MaxExchanges {
		r.ex = append(r.ex, e)
	} else {
		r.dropped++
	}
	r.mu.Unlock()
	return e
}

// Exchanges are the exchanges recorded so far, in order.
func (r *Recorder) Exchanges() []Exchange {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Exchange(nil), r.ex...)
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}
