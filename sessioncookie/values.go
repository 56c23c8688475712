package sessioncookie

import (
	"net/http"
	"strings"
)

// Values calls fn with the value, decoded as an application of profile p
// decodes it, of each pair of h's Cookie lines named exactly name, at most
// max of them. Spellings no browser sends back are Read's business
// (Problem); Values serves checks that must see every value a request
// offers under one name (a cookie family's members), whichever of them
// the application reads.
func Values(h http.Header, name string, p Profile, max int, fn func(value string)) {
	n := 0
	for _, line := range h["Cookie"] {
		for rest := line; rest != "" && n < max; {
			var part string
			part, rest, _ = strings.Cut(rest, ";")
			if k, v, ok := splitPair(part); ok && k == name {
				n++
				fn(Decode(v, p))
			}
		}
	}
}

// MemberPairs calls fn with the name and the decoded value of every pair of
// h's Cookie lines whose name, read as the known parsers normalize names
// (see NameMatches: trimmed, PHP's '.', ' ' and '[' as '_', percent-
// decoded), isMember accepts; name is the normalized name. It stops after
// max pairs and then reports over: a request that offers more member pairs
// than a browser keeps cannot be vetted pair by pair, and a check that
// skipped the rest would let a credential ride behind decoys.
func MemberPairs(h http.Header, isMember func(string) bool, p Profile, max int, fn func(name, value string)) (over bool) {
	n := 0
	for _, line := range h["Cookie"] {
		for rest := line; rest != ""; {
			var part string
			part, rest, _ = strings.Cut(rest, ";")
			key, raw, _ := strings.Cut(part, "=")
			name, ok := normalizedMatch(key, isMember)
			if !ok {
				continue
			}
			if n++; n > max {
				return true
			}
			fn(name, Decode(trimHTTP(raw), p))
		}
	}
	return false
}
