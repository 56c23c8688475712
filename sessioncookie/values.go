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
