package caddymodule

import (
	"bytes"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"

	"github.com/idlegate/idlegate/sessioncookie"
)

// maxLoginForm bounds the part of a login request's body read for
// user_form. A larger body names no user (it is passed on whole all the
// same).
const maxLoginForm = 64 << 10

// formUser reads the user_form field of a login request's urlencoded body
// and puts the body back, byte for byte, for the upstream. It returns ""
// when the body is not a urlencoded form, is larger than
// maxLoginForm, or when the field is not there exactly one way: an
// application reads one of several spellings or duplicates (PHP the last,
// and '.', ' ' and '[' in names as '_'), and idlegate will not guess which.
func (h *Handler) formUser(r *http.Request) string {
	if r.ContentLength > maxLoginForm {
		return ""
	}
	body, err := peekForm(r, maxLoginForm+1)
	if err != nil || len(body) > maxLoginForm {
		return ""
	}
	u, _ := formField(string(body), h.UserForm)
	return u
}

// peekForm reads up to limit bytes of an urlencoded request body and puts
// them back in front of the rest, so that the upstream reads the body byte
// for byte; a read error reaches the upstream's read of the body too. It
// returns what it read, nothing for a body that is not an urlencoded form
// (uploads, streams: not touched). The login form's user (formUser) and
// the learning mode (learncmd.go) read bodies this way.
func peekForm(r *http.Request, limit int64) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, nil
	}
	buf, err := io.ReadAll(io.LimitReader(r.Body, limit))
	r.Body = readCloser{io.MultiReader(bytes.NewReader(buf), &errReader{r.Body, err}), r.Body}
	return buf, err
}

// formField returns the value of field in an urlencoded form, read under
// every spelling the known parsers give names; several different values,
// or an undecodable pair that may be it, name no one.
func formField(body, field string) (string, bool) {
	user, found := "", false
	for pair := range strings.SplitSeq(body, "&") {
		k, v, _ := strings.Cut(pair, "=")
		name, err := url.QueryUnescape(k)
		if err != nil {
			return "", false
		}
		if !sessioncookie.NameMatches(name, func(n string) bool { return n == field }) {
			continue
		}
		val, err := url.QueryUnescape(v)
		if err != nil || found && val != user {
			return "", false
		}
		if name != field && strings.Contains(name, "[") {
			return "", false // PHP reads an array there
		}
		user, found = val, true
	}
	if !found {
		return "", false
	}
	u, ok := cleanUser(user)
	return u, ok && u != ""
}

type readCloser struct {
	io.Reader
	io.Closer
}

// errReader is r, except that it fails with err first when err is set.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	return e.r.Read(p)
}

// statusMatches reports whether code is one of specs: codes ("302") or
// classes ("3xx"), checked by Validate.
func statusMatches(code int, specs []string) bool {
	for _, s := range specs {
		if strings.HasSuffix(s, "xx") {
			if int(s[0]-'0') == code/100 {
				return true
			}
		} else if n, _ := strconv.Atoi(s); n == code {
			return true
		}
	}
	return false
}

// validStatus accepts a status code (100-599) or class (1xx-5xx).
func validStatus(s string) bool {
	if len(s) != 3 || s[0] < '1' || s[0] > '5' {
		return false
	}
	if s[1:] == "xx" {
		return true
	}
	n, err := strconv.Atoi(s)
	return err == nil && n >= 100 && n <= 599
}

// loginUser is the user the answer to a login names through user_form or
// user_placeholder, believed only on the response that starts or rotates
// the session (observer.cookieSet).
func (o *observer) loginUser(code int) (string, bool) {
	h := o.h
	if h.UserForm != "" && o.login && o.formUser != "" && statusMatches(code, h.UserFormStatus) {
		return o.formUser, true
	}
	if h.UserPlaceholder != "" && (len(h.login) == 0 || o.login) {
		repl, _ := o.req.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
		if repl == nil {
			return "", false
		}
		if u, ok := cleanUser(repl.ReplaceKnown(h.UserPlaceholder, "")); ok && u != "" {
			return u, true
		}
	}
	return "", false
}
