package sessioncookie

import (
	"iter"
	"net/http"
	"net/textproto"
	"strings"
)

// spaces are textproto.TrimString's spaces.
const spaces = " \t\n\r"

// Names returns an iterator over the names of the cookies in the request
// header h, in the order they appear. A name that occurs several times is
// yielded each time. Only valid names (RFC 7230 tokens) are yielded.
func Names(h http.Header) iter.Seq[string] {
	return func(yield func(string) bool) {
		for _, line := range h["Cookie"] {
			for len(line) > 0 {
				var part string
				part, line, _ = strings.Cut(line, ";")
				if n, _, ok := splitPair(part); ok {
					if !yield(n) {
						return
					}
				}
			}
		}
	}
}

// splitPair splits one "name=value" element of a Cookie header. ok is false
// when the element is blank or its name is not a valid cookie name. The
// value is returned raw (trimmed, still quoted).
func splitPair(part string) (name, value string, ok bool) {
	part = textproto.TrimString(part)
	if part == "" {
		return "", "", false
	}
	name, value, _ = strings.Cut(part, "=")
	name = textproto.TrimString(name)
	if !ValidName(name) {
		return "", "", false
	}
	return name, value, true
}

// cookieValue unquotes raw like net/http and reports whether every byte is
// allowed in a cookie value.
func cookieValue(raw string) (string, bool) {
	if len(raw) > 1 && raw[0] == '"' && raw[len(raw)-1] == '"' {
		raw = raw[1 : len(raw)-1]
	}
	for i := 0; i < len(raw); i++ {
		if !valueBytes[raw[i]] {
			return "", false
		}
	}
	return raw, true
}

// valueBytes is validValueByte as a table: session cookies run to
// hundreds of bytes (Laravel's), and every request checks one.
var valueBytes = func() (t [256]bool) {
	for b := range t {
		t[b] = validValueByte(byte(b))
	}
	return t
}()

// validValueByte is net/http's relaxed cookie-octet: printable ASCII,
// including space and comma, except '"', ';' and '\\'.
func validValueByte(b byte) bool {
	return 0x20 <= b && b < 0x7f && b != '"' && b != ';' && b != '\\'
}

// ValidName reports whether name is a valid cookie name: a non-empty
// RFC 7230 token, which is what net/http accepts.
func ValidName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		if !isTokenByte(name[i]) {
			return false
		}
	}
	return true
}

// isTokenByte reports whether b is an RFC 7230 tchar.
func isTokenByte(b byte) bool {
	switch {
	case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", b) >= 0
}
