package warning

import "strings"

// cspNonce decides whether a same-origin <script src> tag may be added to a
// page served with the given Content-Security-Policy header values, and with
// which nonce.
//
// For every enforced policy (header fields may repeat and a field may hold
// several comma-separated policies; all must allow the script), the
// effective directive is script-src-elem, else script-src, else default-src.
// A policy without any of them does not restrict scripts. A policy allows
// the tag through a 'nonce-...' source, or without a nonce through 'self',
// '*', 'https:' or 'http:' (unless 'strict-dynamic' makes those ignored).
// Host sources are not evaluated: the handler does not know which of them
// name its own origin. ok is false when no single tag satisfies every
// policy; the page is then left alone rather than given a script the
// browser would block and report.
//
// Content-Security-Policy-Report-Only does not block and is not consulted;
// a policy in a <meta http-equiv> element of the page is not seen at all.
func cspNonce(headers []string) (nonce string, ok bool) {
	var required string // a nonce that some policy insists on
	for _, field := range headers {
		for _, policy := range strings.Split(field, ",") {
			n, self, restricted := evalPolicy(policy)
			switch {
			case !restricted:
			case n == "" && !self:
				return "", false
			case n != "" && !self:
				if required != "" && required != n {
					return "", false
				}
				required = n
			case n != "" && nonce == "":
				nonce = n // allowed anyway; the nonce does no harm
			}
		}
	}
	if required != "" {
		return required, true
	}
	return nonce, true
}

// evalPolicy reads one serialized policy and returns the first nonce of its
// effective script directive, whether that directive allows a same-origin
// script without one, and whether the policy restricts scripts at all.
func evalPolicy(policy string) (nonce string, self, restricted bool) {
	directives := map[string][]string{}
	for _, d := range strings.Split(policy, ";") {
		f := strings.Fields(d)
		if len(f) == 0 {
			continue
		}
		name := strings.ToLower(f[0])
		if _, dup := directives[name]; !dup { // the first one wins
			directives[name] = f[1:]
		}
	}
	var sources []string
	for _, name := range []string{"script-src-elem", "script-src", "default-src"} {
		if s, found := directives[name]; found {
			sources, restricted = s, true
			break
		}
	}
	if !restricted {
		return "", false, false
	}
	strict := false
	for _, s := range sources {
		ls := strings.ToLower(s)
		switch {
		case strings.HasPrefix(ls, "'nonce-") && strings.HasSuffix(ls, "'") && len(s) > len("'nonce-'"):
			if nonce == "" {
				nonce = s[len("'nonce-") : len(s)-1] // the value is case-sensitive
			}
		case ls == "'self'", ls == "*", ls == "https:", ls == "http:":
			self = true
		case ls == "'strict-dynamic'":
			strict = true
		}
	}
	if strict {
		self = false
	}
	return nonce, self, true
}
