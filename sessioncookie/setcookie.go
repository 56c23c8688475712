package sessioncookie

import (
	"net/http"
	"net/textproto"
	"strings"
	"time"
)

// SetCookie is what a Set-Cookie response header does to one cookie.
type SetCookie struct {
	// Name is the cookie name.
	Name string
	// Raw is the new value as the browser stores it and sends it back:
	// trimmed, quotes kept.
	Raw string
	// Value is the new value, unquoted. It is empty or meaningless when
	// Deleted is true (PHP, for one, deletes with the value "deleted").
	Value string
	// Deleted is true when the header removes the cookie from the browser:
	// Max-Age is zero or negative, or (without Max-Age) Expires is not after
	// the time of the response, or the value is empty.
	Deleted bool
	// Path is the Path attribute, or "" when absent or invalid (the browser
	// then uses the directory of the request path).
	Path string
	// Domain is the Domain attribute without a leading dot, lower-cased, or
	// "" when absent (a host-only cookie).
	Domain string
	// HttpOnly: the cookie is hidden from scripts (a server's session
	// handle or credential, by convention).
	HttpOnly bool
}

// ParseSetCookie parses one Set-Cookie header value the way a browser does
// (RFC 6265 section 5.2), keeping what idlegate needs. now is the time the
// response was received; Expires is compared with it.
//
// Attribute names are case-insensitive; when an attribute occurs more than
// once the last one counts; Max-Age takes precedence over Expires; an
// attribute with an unparsable value is ignored, as browsers ignore it.
// ok is false when the line has no "name=value" pair with a valid name and
// value; ParseSetCookie never panics.
func ParseSetCookie(line string, now time.Time) (c SetCookie, ok bool) {
	pair, attrs, _ := strings.Cut(line, ";")
	name, raw, found := strings.Cut(pair, "=")
	if !found {
		return SetCookie{}, false
	}
	name = textproto.TrimString(name)
	if !ValidName(name) {
		return SetCookie{}, false
	}
	value, valid := cookieValue(textproto.TrimString(raw))
	if !valid {
		return SetCookie{}, false
	}
	c = SetCookie{Name: name, Raw: textproto.TrimString(raw), Value: value}

	var (
		maxAge     int64
		haveMaxAge bool
		expires    time.Time
		haveExpiry bool
	)
	for len(attrs) > 0 {
		var attr string
		attr, attrs, _ = strings.Cut(attrs, ";")
		k, v, _ := strings.Cut(attr, "=")
		k = textproto.TrimString(k)
		v = textproto.TrimString(v)
		switch {
		case strings.EqualFold(k, "max-age"):
			if n, ok := parseMaxAge(v); ok {
				maxAge, haveMaxAge = n, true
			}
		case strings.EqualFold(k, "expires"):
			if t, ok := parseCookieDate(v); ok {
				expires, haveExpiry = t, true
			}
		case strings.EqualFold(k, "path"):
			if v != "" && v[0] == '/' && validAttrValue(v) {
				c.Path = v
			} else {
				c.Path = ""
			}
		case strings.EqualFold(k, "httponly"):
			c.HttpOnly = true
		case strings.EqualFold(k, "domain"):
			// RFC 6265 5.2.3 drops one leading dot; what then starts
			// with another or holds a space ("..", ". x") names no host,
			// and is ignored.
			v = strings.TrimPrefix(v, ".")
			if v != "" && v[0] != '.' && !strings.ContainsAny(v, " \t") && validAttrValue(v) {
				c.Domain = strings.ToLower(v)
			}
		}
	}

	switch {
	case c.Value == "":
		c.Deleted = true
	case haveMaxAge:
		c.Deleted = maxAge <= 0
	case haveExpiry:
		c.Deleted = !expires.After(now)
	}
	return c, true
}

// FromResponse returns what the response header h does to the cookie called
// name: the last Set-Cookie line for that name that parses, since browsers
// apply Set-Cookie lines in order and the last one wins. ok is false when the
// response does not set the cookie.
//
// Lines for the same name but different Path or Domain set different cookies
// in the browser; FromResponse does not tell them apart.
func FromResponse(h http.Header, name string, now time.Time) (c SetCookie, ok bool) {
	for _, line := range h["Set-Cookie"] {
		// Cheap check before parsing: the line must start with the name.
		if !strings.HasPrefix(textproto.TrimString(line), name) {
			continue
		}
		if sc, parsed := ParseSetCookie(line, now); parsed && sc.Name == name {
			c, ok = sc, true
		}
	}
	return c, ok
}

// parseMaxAge parses a Max-Age value as RFC 6265 section 5.2.2 says: an
// optional '-' and digits. Values too large for int64 saturate.
func parseMaxAge(v string) (int64, bool) {
	neg := false
	if strings.HasPrefix(v, "-") {
		neg, v = true, v[1:]
	}
	if v == "" {
		return 0, false
	}
	var n int64
	for i := 0; i < len(v); i++ {
		d := v[i]
		if d < '0' || d > '9' {
			return 0, false
		}
		if n < (1<<62)/10 {
			n = n*10 + int64(d-'0')
		}
	}
	if neg {
		n = -n
	}
	return n, true
}

// validAttrValue reports whether v may appear as a Path or Domain value:
// no control characters and no ';'.
func validAttrValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if b := v[i]; b < 0x20 || b == 0x7f || b == ';' {
			return false
		}
	}
	return true
}

// parseCookieDate parses an Expires value with the algorithm of RFC 6265
// section 5.1.1, which browsers use: it accepts every format servers send
// ("Thu, 01 Jan 1970 00:00:00 GMT", PHP's "Thu, 01-Jan-1970 00:00:00 GMT",
// two-digit years, ...) and always means UTC.
func parseCookieDate(s string) (time.Time, bool) {
	var (
		hour, minute, sec, day, month, year    int
		haveTime, haveDay, haveMonth, haveYear bool
	)
	for len(s) > 0 {
		// Skip delimiters, then take the run of non-delimiters.
		i := 0
		for i < len(s) && isDateDelimiter(s[i]) {
			i++
		}
		s = s[i:]
		j := 0
		for j < len(s) && !isDateDelimiter(s[j]) {
			j++
		}
		tok := s[:j]
		s = s[j:]
		if tok == "" {
			continue
		}
		if !haveTime {
			if h, m, sc, ok := parseDateTime(tok); ok {
				hour, minute, sec, haveTime = h, m, sc, true
				continue
			}
		}
		if !haveDay {
			// leadingDigits fails on a third digit, so whatever follows
			// the match is a non-digit, as the grammar requires.
			if d, _, ok := leadingDigits(tok, 1, 2); ok {
				day, haveDay = d, true
				continue
			}
		}
		if !haveMonth {
			if m, ok := parseMonth(tok); ok {
				month, haveMonth = m, true
				continue
			}
		}
		if !haveYear {
			if y, _, ok := leadingDigits(tok, 2, 4); ok {
				year, haveYear = y, true
				continue
			}
		}
	}
	if !haveTime || !haveDay || !haveMonth || !haveYear {
		return time.Time{}, false
	}
	switch {
	case year >= 70 && year <= 99:
		year += 1900
	case year <= 69:
		year += 2000
	}
	if day < 1 || day > 31 || year < 1601 || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, 0, time.UTC)
	if t.Day() != day { // 31 Feb and the like
		return time.Time{}, false
	}
	return t, true
}

// isDateDelimiter is the delimiter class of RFC 6265 section 5.1.1.
func isDateDelimiter(b byte) bool {
	return b == 0x09 || (0x20 <= b && b <= 0x2f) || (0x3b <= b && b <= 0x40) ||
		(0x5b <= b && b <= 0x60) || (0x7b <= b && b <= 0x7e)
}

func isDigit(b byte) bool { return '0' <= b && b <= '9' }

// leadingDigits parses min to max digits at the start of s and returns the
// number and how many bytes it used. More than max digits is a failure.
func leadingDigits(s string, min, max int) (v, n int, ok bool) {
	for n < len(s) && isDigit(s[n]) {
		if n == max {
			return 0, 0, false
		}
		v = v*10 + int(s[n]-'0')
		n++
	}
	return v, n, n >= min
}

// parseDateTime matches hms-time ( non-digit *OCTET ).
func parseDateTime(tok string) (h, m, s int, ok bool) {
	var vals [3]int
	for i := range vals {
		v, n, ok := leadingDigits(tok, 1, 2)
		if !ok {
			return 0, 0, 0, false
		}
		vals[i], tok = v, tok[n:]
		if i < 2 {
			if tok == "" || tok[0] != ':' {
				return 0, 0, 0, false
			}
			tok = tok[1:]
		}
	}
	if tok != "" && isDigit(tok[0]) {
		return 0, 0, 0, false
	}
	return vals[0], vals[1], vals[2], true
}

// parseMonth matches a month name by its first three letters.
func parseMonth(tok string) (int, bool) {
	if len(tok) < 3 {
		return 0, false
	}
	const months = "janfebmaraprmayjunjulaugsepoctnovdec"
	for i := 0; i < 12; i++ {
		if strings.EqualFold(tok[:3], months[i*3:i*3+3]) {
			return i + 1, true
		}
	}
	return 0, false
}
