package sessioncookie

import (
	"iter"
	"net/http"
	"net/textproto"
	"strings"
)

// Find returns the first non-empty value of the cookie called name in the
// request header h, looking through every Cookie header line in order
// (HTTP/2 and HTTP/3 clients send one line per cookie), and count, the
// number of times a cookie of that name occurs, empty or not.
//
// Parsing follows net/http's Request.Cookies: pairs are separated by ';',
// surrounding spaces and tabs are trimmed, a value wrapped in double quotes is
// unquoted, and pairs with an invalid name or value are skipped (though an
// invalid value still counts as an occurrence of its name). Unlike
// Request.Cookies, Find does not allocate: value is a substring of h.
//
// A count above 1 means the browser holds several cookies of that name (for
// example one per path or domain, or one planted by a sibling subdomain);
// the caller decides whether that is acceptable.
func Find(h http.Header, name string) (value string, count int) {
	// A valid name compared for equality needs no per-pair validation, and
	// it contains no separator, space or '=': so a pair of that name is an
	// occurrence of name with only spaces between it and the pair's start
	// (the line's start or a ';'), and only spaces between it and the
	// pair's '=' or end. strings.Index jumps from one candidate to the next,
	// so the pairs of other names are never split and trimmed one by one.
	if !ValidName(name) {
		return "", 0
	}
	for _, line := range h["Cookie"] {
		for from := 0; from < len(line); {
			i := strings.Index(line[from:], name)
			if i < 0 {
				break
			}
			i += from
			end := i + len(name) // just after the name and its spaces
			for end < len(line) && isSpace(line[end]) {
				end++
			}
			if !pairStart(line, i) || end < len(line) && line[end] != '=' && line[end] != ';' {
				from = i + 1
				continue
			}
			count++
			semi := strings.IndexByte(line[end:], ';')
			if semi < 0 {
				semi = len(line)
			} else {
				semi += end
			}
			if value == "" && end < len(line) && line[end] == '=' {
				if v, ok := cookieValue(strings.TrimRight(line[end+1:semi], spaces)); ok {
					value = v
				}
			}
			from = semi
		}
	}
	return value, count
}

// pairStart reports whether only spaces separate position i of a Cookie
// line from the start of its pair: the line's start, or a ';'.
func pairStart(line string, i int) bool {
	for i > 0 && isSpace(line[i-1]) {
		i--
	}
	return i == 0 || line[i-1] == ';'
}

// spaces are textproto.TrimString's spaces.
const spaces = " \t\n\r"

func isSpace(b byte) bool { return b == ' ' || b == '\t' || b == '\n' || b == '\r' }

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
