package sessioncookie

import (
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"
	"unsafe"
)

// Profile is how an application reads its Cookie header: which pairs it
// takes for a cookie of a given name, and how it decodes their values. The
// truth about which session a request carries is what the application's own
// parser reads, so idlegate reads the header the same way (docs/SECURITY.md,
// "One reading of the session cookie").
type Profile uint8

const (
	// ProfileSafe is for a backend idlegate does not know. A pair counts as
	// the session cookie if any known framework would read it so, and only a
	// value that every known framework decodes to itself (no escapes, no
	// quotes, no separators) is accepted as spelled by a browser.
	ProfileSafe Profile = iota
	// ProfilePHP is PHP's SAPI ($_COOKIE), which Laravel and Symfony read
	// too: names lose leading whitespace and turn ' ', '.' and a lone '['
	// into '_'; values are percent-decoded (rawurldecode); the first pair of
	// a name wins.
	ProfilePHP
	// ProfileDjango is django.http.parse_cookie: names and values are
	// stripped of whitespace, quoted values unquoted with their \ooo and \c
	// escapes; the last pair of a name wins.
	ProfileDjango
	// ProfileExpress is Node's cookie package (express-session): names and
	// values trimmed of spaces and tabs, one pair of quotes removed, values
	// with '%' decoded by decodeURIComponent (kept raw when that fails); the
	// first pair of a name wins.
	ProfileExpress
	// ProfileRails is Rack's Utils.parse_cookies_header: pairs split at ';'
	// and the spaces after it, names taken as they are, values decoded as
	// form components ('+' is a space); the first pair of a name wins.
	ProfileRails
	// ProfileGo is net/http's Request.Cookie: names and values trimmed,
	// quotes removed, pairs with invalid bytes skipped; the first valid pair
	// of a name wins.
	ProfileGo
)

var profileNames = [...]string{"safe", "php", "django", "express", "rails", "go"}

func (p Profile) String() string {
	if int(p) < len(profileNames) {
		return profileNames[p]
	}
	return fmt.Sprintf("Profile(%d)", p)
}

// ParseProfile returns the profile called s: safe, php, django, express,
// rails or go.
func ParseProfile(s string) (Profile, error) {
	for i, n := range profileNames {
		if n == s {
			return Profile(i), nil
		}
	}
	return 0, fmt.Errorf("unknown cookie parser %q (want php, django, express, rails, go or safe)", s)
}

// DefaultProfile chooses the profile from the cookie name where the name
// says unambiguously which framework set it: PHPSESSID and laravel_session
// (PHP), sessionid (Django), connect.sid (Express), _<app>_session (Rails),
// wordpress_* (PHP).
// Any other name gets ProfileSafe.
func DefaultProfile(cookieName string) Profile {
	switch cookieName {
	case "PHPSESSID", "laravel_session":
		return ProfilePHP
	case "sessionid":
		return ProfileDjango
	case "connect.sid":
		return ProfileExpress
	}
	if len(cookieName) > len("__session") && strings.HasPrefix(cookieName, "_") && strings.HasSuffix(cookieName, "_session") {
		return ProfileRails
	}
	if strings.HasPrefix(cookieName, "wordpress_") {
		return ProfilePHP
	}
	return ProfileSafe
}

// Problem says why a request's session cookie cannot be read as one session.
type Problem uint8

const (
	ProblemNone Problem = iota
	// ProblemConflict: several pairs the application reads as the session
	// cookie carry different values, so parsers that keep the first and
	// parsers that keep the last disagree.
	ProblemConflict
	// ProblemSpelling: a pair the application reads as the session cookie
	// is spelled in a way no browser sends back for a cookie the
	// application set (a mangled name, an escape where none is needed,
	// quotes, whitespace around the value).
	ProblemSpelling
)

func (p Problem) String() string {
	switch p {
	case ProblemNone:
		return "none"
	case ProblemConflict:
		return "conflict"
	case ProblemSpelling:
		return "spelling"
	}
	return fmt.Sprintf("Problem(%d)", p)
}

// Reading is what an application of a profile reads as the session cookie
// from a request's Cookie header(s).
type Reading struct {
	// Value is the value the application decodes from the session pair it
	// reads; "" when the request carries none (or an empty one).
	Value string
	// Pairs is how many pairs the application would read as the session
	// cookie, however spelled.
	Pairs int
	// Problem is set when the pairs do not make one session as a browser
	// would send it; Value is then meaningless.
	Problem Problem

	raw     string // the session pair's value as written in the header
	rewrite bool   // the header must be rebuilt before it is forwarded
}

// maxPairs bounds the pairs Read looks at; browsers send at most about 180
// cookies to a site, so more only come from a forged header, which is then
// read as a problem rather than scanned without end.
const maxPairs = 512

// Read reads the session cookie called name from every Cookie line of h as
// an application of profile p would. It does not allocate.
//
// Every pair whose name the application would read as name counts, after
// the application's own normalization of names; every value is decoded as
// the application decodes it. The request carries one session when all such
// pairs are spelled as a browser sends them back and agree on one value;
// otherwise Problem says why not.
func Read(h http.Header, name string, p Profile) Reading {
	var r Reading
	lines := h["Cookie"]
	if len(lines) > 1 {
		r.rewrite = true
	}
	n, first := 0, true
	for _, line := range lines {
		for rest := line; rest != ""; {
			var chunk string
			chunk, rest, _ = strings.Cut(rest, ";")
			if n++; n > maxPairs {
				r.Problem, r.Pairs = ProblemSpelling, max(r.Pairs, 1)
				return r
			}
			m := match(chunk, name, p)
			if m == noMatch {
				continue
			}
			r.Pairs++
			if r.Pairs > 1 {
				r.rewrite = true
			}
			raw := pairValue(chunk)
			switch {
			case m != exact || !canonical(raw, p):
				r.Problem = ProblemSpelling
			case first:
				r.raw, first = raw, false
			case raw != r.raw && r.Problem == ProblemNone:
				r.Problem = ProblemConflict
			}
		}
	}
	if r.Problem == ProblemNone && !first {
		r.Value = Decode(r.raw, p)
	}
	return r
}

// matchKind is how a Cookie pair relates to the session cookie's name.
type matchKind uint8

const (
	noMatch matchKind = iota
	exact             // name=value as a browser writes it
	mangled           // a spelling the application reads as the name
)

// match decides whether chunk, one ';'-separated element of a Cookie line,
// is read by an application of profile p as the cookie called name.
func match(chunk, name string, p Profile) matchKind {
	if p == ProfileSafe {
		// Any known parser's reading counts. Rack and older parsers also
		// split at ','; a pair behind a ',' is a spelling no browser sends.
		k := noMatch
		for _, q := range [...]Profile{ProfilePHP, ProfileDjango, ProfileExpress, ProfileRails, ProfileGo} {
			switch match(chunk, name, q) {
			case exact:
				if k == noMatch {
					k = exact
				}
			case mangled:
				k = mangled
			}
		}
		if strings.IndexByte(chunk, ',') >= 0 {
			for part := range strings.SplitSeq(chunk, ",") {
				if k == noMatch && match(part, name, ProfileRails) != noMatch {
					k = mangled
				}
			}
			if k == exact {
				k = mangled
			}
		}
		return k
	}
	if !strings.Contains(chunk, name[1:]) && !mayMangle(chunk, name, p) {
		return noMatch // the fast path: most pairs share nothing with name
	}
	key, _, hasEq := strings.Cut(chunk, "=")
	var read bool
	switch p {
	case ProfilePHP:
		read = phpName(key, name)
	case ProfileDjango:
		// http.client strips the whole header line of Latin-1 spaces (\x85,
		// \xa0 among them) before Django strips each name of Unicode ones;
		// both are applied to every name, which only ever reads more pairs.
		read = hasEq && (trimPy(key) == name || trimPy(trimLatin1Py(key)) == name)
	case ProfileExpress:
		read = hasEq && strings.Trim(key, " \t") == name
	case ProfileRails:
		read = strings.TrimLeft(key, " ") == name
	case ProfileGo:
		read = trimHTTP(key) == name && goValue(chunk) // "sid" alone is sid=""
	}
	if !read {
		return noMatch
	}
	if hasEq && strings.TrimPrefix(key, " ") == name {
		return exact // as browsers write it: "; " between pairs
	}
	return mangled
}

// mayMangle reports whether chunk could be a mangled spelling of name that
// does not contain name[1:] verbatim: only PHP rewrites characters of
// names, turning ' ', '.' and '[' into '_'.
func mayMangle(chunk, name string, p Profile) bool {
	return p == ProfilePHP && strings.IndexByte(name, '_') >= 0 && strings.ContainsAny(chunk, " .[")
}

// phpName reports whether PHP registers the cookie key as name in
// $_COOKIE: main/php_variables.c skips leading whitespace, turns ' ' and
// '.' into '_', and takes a '[' as the start of an array index, or, with no
// ']' after it, as one more '_' (with ' ', '.' and '[' after it turned into
// '_' too). An array (name[...]) occupies the name as well: the string value
// of a later pair never replaces it.
func phpName(key, name string) bool {
	key = strings.TrimLeft(key, " \t\n\v\f\r")
	if key == "" {
		return false
	}
	br := strings.IndexByte(key, '[')
	if br >= 0 && strings.IndexByte(key[br+1:], ']') >= 0 {
		key = key[:br] // an array: its base name is what it occupies
		br = -1
	}
	if len(key) != len(name) {
		return false
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if c == ' ' || c == '.' || br >= 0 && i >= br && c == '[' {
			c = '_'
		}
		if c != name[i] {
			return false
		}
	}
	return true
}

// trimPy is Python's str.strip() as Django applies it to cookie names and
// values: Django re-decodes the WSGI header (Latin-1) as UTF-8, replacing
// invalid bytes (get_str_from_wsgi), so the spaces stripped are Unicode's,
// written in UTF-8 (NBSP is C2 A0; a lone A0 byte is no space).
func trimPy(s string) string {
	// The common case, a name or value that starts and ends with a printable
	// ASCII byte, has nothing to trim: no byte in '!'..'~' is a space.
	if s == "" || s[0] > ' ' && s[0] < 0x7f && s[len(s)-1] > ' ' && s[len(s)-1] < 0x7f {
		return s
	}
	for s != "" {
		r, n := utf8.DecodeRuneInString(s)
		if !isPyspace(r) {
			break
		}
		s = s[n:]
	}
	for s != "" {
		r, n := utf8.DecodeLastRuneInString(s)
		if !isPyspace(r) {
			break
		}
		s = s[:len(s)-n]
	}
	return s
}

// trimLatin1Py is Python's str.strip() on header bytes decoded as Latin-1,
// as http.client strips a header line.
func trimLatin1Py(s string) string {
	for s != "" && isPyspace(rune(s[0])) {
		s = s[1:]
	}
	for s != "" && isPyspace(rune(s[len(s)-1])) {
		s = s[:len(s)-1]
	}
	return s
}

// isPyspace is Python 3's str.isspace for one character.
func isPyspace(r rune) bool {
	switch {
	case r == ' ', '\t' <= r && r <= '\r', 0x1c <= r && r <= 0x1f, r == 0x85, r == 0xa0,
		r == 0x1680, 0x2000 <= r && r <= 0x200a, r == 0x2028, r == 0x2029, r == 0x202f, r == 0x205f, r == 0x3000:
		return true
	}
	return false
}

// trimHTTP is textproto.TrimString.
func trimHTTP(s string) string { return strings.Trim(s, spaces) }

// goValue reports whether net/http accepts the value of chunk (it skips a
// pair whose value has invalid bytes, and then reads a later one).
func goValue(chunk string) bool {
	_, v, _ := strings.Cut(trimHTTP(chunk), "=")
	_, ok := cookieValue(v)
	return ok
}

// pairValue is the value of an exact pair: everything after the '='. Any
// whitespace in it is a spelling no browser sends (see canonical).
func pairValue(chunk string) string {
	_, v, _ := strings.Cut(chunk, "=")
	return v
}

// canonical reports whether raw is a value as a browser sends back a cookie
// that an application of profile p set: what the application's own encoder
// writes, with no escape where none is needed and none missing. It runs on
// every request, so each byte is one table look-up.
func canonical(raw string, p Profile) bool {
	t := &canonTables[p]
	i := 0
	for i < len(raw) && t[raw[i]] == cLiteral {
		i++ // the common byte, in a loop of its own
	}
	for ; i < len(raw); i++ {
		switch t[raw[i]] {
		case cLiteral, cSpace:
		case cEscape:
			if i+2 >= len(raw) || !isUpperHex(raw[i+1]) || !isUpperHex(raw[i+2]) {
				return false
			}
			if t[unhex(raw[i+1])<<4|unhex(raw[i+2])] == cLiteral {
				return false // escaped where the encoder writes it as is
			}
			i += 2
		default:
			return false
		}
	}
	return true
}

// Byte classes of canonical's tables.
const (
	cBad     = iota // no encoder of the profile writes it
	cLiteral        // written as it is
	cEscape         // '%', the start of an escape
	cSpace          // Ruby's '+' for a space: allowed, and %2B is '+' itself
)

var canonTables = func() (t [len(profileNames)][256]uint8) {
	for p := range t {
		for b := range 256 {
			c := byte(b)
			switch Profile(p) {
			case ProfilePHP, ProfileExpress, ProfileRails:
				switch {
				case c == '%':
					t[p][b] = cEscape
				case literal(c, Profile(p)):
					t[p][b] = cLiteral
				case c == '+' && Profile(p) == ProfileRails:
					t[p][b] = cSpace
				}
			case ProfileDjango:
				// Session keys are letters and digits; Django's
				// SimpleCookie writes any value of its legal characters
				// without quotes.
				if djangoLegal(c) {
					t[p][b] = cLiteral
				}
			default:
				if plain(c) {
					t[p][b] = cLiteral
				}
			}
		}
	}
	return t
}()

// literal reports whether the encoder of profile p writes byte b as it is:
// PHP's rawurlencode and urlencode ([A-Za-z0-9_.~-]), JavaScript's
// encodeURIComponent ([A-Za-z0-9_.!~*'()-]) and Ruby's form encoding
// ([A-Za-z0-9*_.-]; it writes a space as '+' and '+' as %2B).
func literal(b byte, p Profile) bool {
	if 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' {
		return true
	}
	switch p {
	case ProfilePHP:
		return strings.IndexByte("_.~-", b) >= 0
	case ProfileExpress:
		return strings.IndexByte("_.!~*'()-", b) >= 0
	case ProfileRails:
		return strings.IndexByte("*_.-", b) >= 0
	}
	return false
}

// djangoLegal is http.cookies._LegalChars.
func djangoLegal(b byte) bool {
	if 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' {
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~:", b) >= 0
}

// plain reports whether every known parser reads byte b as itself in a
// cookie value: no escape ('%', '+', '\\'), no quote, no separator, no space.
func plain(b byte) bool {
	if 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' {
		return true
	}
	return strings.IndexByte("!#$&'()*-./:<>?@[]^_`{|}~=", b) >= 0
}

func isUpperHex(b byte) bool { return '0' <= b && b <= '9' || 'A' <= b && b <= 'F' }

func isHex(b byte) bool { return isUpperHex(b) || 'a' <= b && b <= 'f' }

func unhex(b byte) byte {
	switch {
	case '0' <= b && b <= '9':
		return b - '0'
	case 'a' <= b && b <= 'f':
		return b - 'a' + 10
	}
	return b - 'A' + 10
}

// Decode returns the value an application of profile p decodes from raw,
// a cookie value as the browser sends it (also what a Set-Cookie line sets,
// which the browser sends back as it is). It allocates only when raw has
// something to decode.
func Decode(raw string, p Profile) string {
	switch p {
	case ProfilePHP:
		return percentDecode(raw, false)
	case ProfileExpress:
		v := strings.Trim(raw, " \t")
		if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			v = v[1 : len(v)-1]
		}
		if strings.IndexByte(v, '%') < 0 {
			return v
		}
		if d, ok := uriComponentDecode(v); ok {
			return d
		}
		return v
	case ProfileRails:
		if d, ok := formDecode(raw); ok {
			return d
		}
		return raw
	case ProfileDjango:
		return pyUnquote(trimPy(raw))
	case ProfileGo:
		v, _ := cookieValue(trimHTTP(raw))
		return v
	}
	return raw
}

// percentDecode is PHP's php_raw_url_decode (plus=false): %XX of two hex
// digits of either case becomes the byte, anything else stays as it is.
func percentDecode(s string, plus bool) string {
	if strings.IndexByte(s, '%') < 0 && (!plus || strings.IndexByte(s, '+') < 0) {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
		case c == '+' && plus:
			b = append(b, ' ')
		default:
			b = append(b, c)
		}
	}
	return unsafe.String(unsafe.SliceData(b), len(b)) // b is not written again: one allocation, not two
}

// formDecode is Ruby's URI.decode_www_form_component: it fails on a '%'
// that does not start two hex digits, and Rack then keeps the raw value.
func formDecode(s string) (string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && (i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2])) {
			return "", false
		}
	}
	return percentDecode(s, true), true
}

// uriComponentDecode is JavaScript's decodeURIComponent: it fails on a bad
// escape and on escapes that do not spell valid UTF-8.
func uriComponentDecode(s string) (string, bool) {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '%' {
			b = append(b, c)
			continue
		}
		if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
			return "", false
		}
		b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
		i += 2
	}
	if !utf8.Valid(b) {
		return "", false
	}
	return string(b), true
}

// pyUnquote is http.cookies._unquote (Python 3.11): a value in double
// quotes loses them, and \ooo (octal, first digit 0-3) and \c escapes
// inside are replaced.
func pyUnquote(s string) string {
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return s
	}
	s = s[1 : len(s)-1]
	if strings.IndexByte(s, '\\') < 0 {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 >= len(s) {
			b = append(b, c)
			continue
		}
		if i+3 < len(s) && '0' <= s[i+1] && s[i+1] <= '3' && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b = append(b, (s[i+1]-'0')<<6|(s[i+2]-'0')<<3|(s[i+3]-'0'))
			i += 3
			continue
		}
		b = append(b, s[i+1])
		i++
	}
	return string(b)
}

func isOctal(b byte) bool { return '0' <= b && b <= '7' }

// Forward rewrites h, when needed, so that it carries one Cookie line with
// exactly one session pair: the one r read, as the browser spelled it. Then
// first-wins and last-wins parsers cannot disagree. The common request (one
// line, one session pair) is left as it is. Forward is for readings
// without a Problem.
func (r Reading) Forward(h http.Header, name string, p Profile) {
	if !r.rewrite || r.Problem != ProblemNone {
		return
	}
	rebuild(h, name, p, nil, name+"="+r.raw)
}

// Strip removes from h every pair that an application of profile p reads
// as the cookie called name, and every pair whose name (as written, or as
// the application normalizes it) satisfies also (nil: none), leaving at
// most one Cookie line.
func Strip(h http.Header, name string, p Profile, also func(name string) bool) {
	rebuild(h, name, p, also, "")
}

// rebuild writes h's Cookie lines as one, without the pairs of the session
// cookie and those also matches; keep, if not empty, stands where the first
// session pair stood.
func rebuild(h http.Header, name string, p Profile, also func(string) bool, keep string) {
	var kept []string
	n := 0
	for _, line := range h["Cookie"] {
		for chunk := range strings.SplitSeq(line, ";") {
			if n++; n > maxPairs {
				break
			}
			t := strings.Trim(chunk, spaces)
			if t == "" {
				continue
			}
			// The chunk is forwarded trimmed, so it must not be read as
			// the session cookie trimmed either ("laravel session " is no
			// pair to PHP, "laravel session" is).
			if isSession(chunk, name, p) || isSession(t, name, p) {
				if keep != "" {
					kept = append(kept, keep)
					keep = ""
				}
				continue
			}
			if also != nil && alsoMatches(chunk, also) {
				continue
			}
			kept = append(kept, t)
		}
	}
	h.Del("Cookie")
	if len(kept) > 0 {
		h["Cookie"] = []string{strings.Join(kept, "; ")}
	}
}

// isSession reports whether chunk is read as the session cookie by an
// application of profile p or, being removed either way, of any known one.
func isSession(chunk, name string, p Profile) bool {
	return match(chunk, name, p) != noMatch || p != ProfileSafe && match(chunk, name, ProfileSafe) != noMatch
}

// alsoMatches applies also to a pair's name.
func alsoMatches(chunk string, also func(string) bool) bool {
	key, _, _ := strings.Cut(chunk, "=")
	for part := range strings.SplitSeq(key, ",") {
		if NameMatches(part, also) {
			return true
		}
	}
	return false
}

// NameMatches applies match to a cookie name as written and as the known
// parsers normalize it (trimmed, PHP's '.', ' ' and '[' as '_' or the
// base of an array, percent-decoded), so that a mangled remember-me cookie
// is matched like the real one.
func NameMatches(name string, match func(string) bool) bool {
	_, ok := normalizedMatch(name, match)
	return ok
}

// normalizedMatch returns the first of name's readings (see NameMatches)
// that match accepts.
func normalizedMatch(name string, match func(string) bool) (string, bool) {
	k := trimPy(name)
	if match(k) {
		return k, true
	}
	if br := strings.IndexByte(k, '['); br >= 0 && match(k[:br]) {
		return k[:br], true
	}
	if strings.ContainsAny(k, " .[") {
		if m := phpMangler.Replace(k); match(m) {
			return m, true
		}
	}
	if strings.ContainsAny(k, "%+") {
		if d, ok := formDecode(k); ok && match(d) {
			return d, true
		}
	}
	return "", false
}

// NameIn returns the cookie name in h's Cookie lines that match accepts,
// read as the known parsers normalize names (see NameMatches), and whether
// several different names are there. It is how a cookie given as a
// pattern (wordpress_logged_in_*) finds the name a request uses.
func NameIn(h http.Header, match func(string) bool) (name string, several bool) {
	for _, line := range h["Cookie"] {
		for chunk := range strings.SplitSeq(line, ";") {
			key, _, _ := strings.Cut(chunk, "=")
			for part := range strings.SplitSeq(key, ",") {
				n, ok := normalizedMatch(part, match)
				switch {
				case !ok:
				case name == "":
					name = n
				case n != name:
					return name, true
				}
			}
		}
	}
	return name, false
}

var phpMangler = strings.NewReplacer(" ", "_", ".", "_", "[", "_")
