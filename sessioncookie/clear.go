package sessioncookie

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Clear returns a Set-Cookie header value that deletes the cookie called name
// from the browser: an empty value, Max-Age=0 and an Expires date in 1970.
//
// A browser deletes a cookie only when path and domain are those the cookie
// was set with. An empty path means "/", which is what frameworks use for
// their session cookies (a request does not say which path its cookies have).
// An empty domain leaves Domain out, which matches a host-only cookie.
// Bytes that cannot appear in the attributes (control characters, ';') are
// dropped. Names with the __Secure- or __Host- prefix get the Secure
// attribute, without which browsers ignore the header.
//
// name must be a valid cookie name (see [ValidName]); otherwise Clear
// returns "".
func Clear(name, path, domain string) string {
	if !ValidName(name) {
		return ""
	}
	path = sanitizeAttr(path)
	if path == "" {
		path = "/"
	}
	domain = strings.TrimPrefix(sanitizeAttr(domain), ".")

	var b strings.Builder
	b.Grow(len(name) + len(path) + len(domain) + 80)
	b.WriteString(name)
	b.WriteString("=; Path=")
	b.WriteString(path)
	if domain != "" {
		b.WriteString("; Domain=")
		b.WriteString(domain)
	}
	b.WriteString("; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT")
	if strings.HasPrefix(name, "__Secure-") || strings.HasPrefix(name, "__Host-") {
		b.WriteString("; Secure")
	}
	return b.String()
}

// sanitizeAttr drops the bytes that may not appear in a cookie attribute
// value, so that a value from configuration cannot inject attributes.
func sanitizeAttr(v string) string {
	if validAttrValue(v) {
		return v
	}
	b := make([]byte, 0, len(v))
	for i := 0; i < len(v); i++ {
		if c := v[i]; c >= 0x20 && c != 0x7f && c != ';' {
			b = append(b, c)
		}
	}
	return string(b)
}

// Matcher matches cookie names against a list of patterns: exact names, and
// prefixes written with a trailing '*' ("remember_web_*"). The zero Matcher
// matches nothing. A Matcher is safe for concurrent use.
type Matcher struct {
	names    []string
	prefixes []string
}

// NewMatcher compiles patterns. Each pattern is a cookie name, or a
// non-empty cookie-name prefix followed by '*'. It returns an error that
// names the offending pattern when the list is empty, a pattern is empty,
// '*' appears anywhere but at the end, or a pattern contains characters that
// no cookie name can contain. A lone "*" is refused: clearing every cookie
// of the site is never what is meant.
func NewMatcher(patterns []string) (Matcher, error) {
	if len(patterns) == 0 {
		return Matcher{}, errors.New("no cookie name patterns")
	}
	var m Matcher
	for _, p := range patterns {
		switch {
		case p == "":
			return Matcher{}, errors.New("empty cookie name pattern")
		case p == "*":
			return Matcher{}, errors.New(`cookie name pattern "*" would match every cookie; list names or prefixes such as "remember_web_*"`)
		case strings.HasSuffix(p, "*"):
			prefix := p[:len(p)-1]
			if strings.Contains(prefix, "*") || !ValidName(prefix) {
				return Matcher{}, fmt.Errorf("cookie name pattern %q: want a name, or a name prefix followed by a single trailing '*'", p)
			}
			m.prefixes = append(m.prefixes, prefix)
		case strings.Contains(p, "*"):
			// '*' is a token character, so it could be part of a name, but
			// no real cookie uses it and here it can only be a mistake.
			return Matcher{}, fmt.Errorf("cookie name pattern %q: '*' is allowed only at the end, to match a prefix", p)
		default:
			if !ValidName(p) {
				return Matcher{}, fmt.Errorf("cookie name pattern %q is not a valid cookie name", p)
			}
			m.names = append(m.names, p)
		}
	}
	return m, nil
}

// Match reports whether name matches one of the patterns.
func (m Matcher) Match(name string) bool {
	for _, n := range m.names {
		if n == name {
			return true
		}
	}
	for _, p := range m.prefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// maxPresent bounds the result of Present. Browsers keep at most about 180
// cookies per site; more matching names only come from a forged header, and
// the bound keeps the de-duplication below quadratic blow-up.
const maxPresent = 64

// Present returns the names of the cookies in the request header h that
// match, each once, in the order they first appear, and at most 64 of them.
// It is what a response that clears cookies needs: one [Clear] per name.
func (m Matcher) Present(h http.Header) []string {
	var out []string
	for name := range Names(h) {
		if m.Match(name) && !contains(out, name) {
			out = append(out, name)
			if len(out) == maxPresent {
				break
			}
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
