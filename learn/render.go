package learn

import (
	"fmt"
	"strings"
)

// Render writes the suggestion as a commented idle_session block an
// operator can paste into a Caddyfile site. Every option it writes is
// preceded by a comment saying what it was learned from; what it could
// only guess is written commented out.
func Render(s Suggestion, upstream string) string {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	w("# Suggested by `caddy idle-sessions learn` from %d requests to %s.", s.Exchanges, upstream)
	w("# Review each line: the comment above it says what it was learned from.")
	for _, n := range s.Notes {
		w("# NOTE: %s", n)
	}
	w("idle_session {")
	if s.Cookie != "" {
		w("\t# %s", s.CookieWhy)
		if s.Cookie != s.CookieName {
			w("\t# (seen as %s; the pattern matches it on any site)", s.CookieName)
		}
		w("\tcookie %s", s.Cookie)
	} else {
		w("\t# cookie <name>   (no session cookie found)")
	}
	if s.Parser != "" {
		w("\t# how the app reads its Cookie header: %s", s.ParserWhy)
		w("\tcookie_parser %s", s.Parser)
	} else {
		w("\t# cookie_parser php|django|express|rails|go   (the framework could not be told; the default, safe, refuses escaped values)")
	}
	if len(s.Family) > 0 {
		w("\t# the rest of the session's cookie family, set by the login response; idlegate")
		w("\t# learns each with its Path and Domain and clears it at the end (no clear_cookies needed):")
		for _, f := range s.Family {
			line := "\t#   " + f.Name
			if f.Path != "" {
				line += "  Path=" + f.Path
			}
			if f.Domain != "" {
				line += "  Domain=" + f.Domain
			}
			if f.DeletedAtLogout {
				line += "  (deleted by the logout)"
			}
			w("%s", line)
		}
	}
	if s.Logout != nil {
		w("\t# the app's logout: %s", s.LogoutWhy)
		writeMatcher(&b, "logout", *s.Logout)
	}
	for _, p := range s.Passive {
		w("\t# polling, not the user's activity: %s", p.Why)
		writeMatcher(&b, "passive", p.Match)
	}
	switch {
	case s.UserCookie != "":
		w("\t# the user: %s", s.UserWhy)
		if s.UserSep != "" {
			w("\tuser_cookie %s %s", s.UserCookie, s.UserSep)
		} else {
			w("\tuser_cookie %s", s.UserCookie)
		}
	case s.UserForm != "":
		w("\t# the user: %s", s.UserWhy)
		writeMatcher(&b, "login", *s.LoginMatch)
		w("\tuser_form %s %s", s.UserForm, s.UserFormStatus)
	}
	if len(s.ClearCookies) > 0 {
		w("\t# carried by the signed-in requests, but set by no response of the session (set before")
		w("\t# the login, or by JavaScript) and not deleted by the logout; uncomment to clear them too:")
		w("\t# clear_cookies %s", strings.Join(s.ClearCookies, " "))
	}
	w("\t# idle 30m")
	if s.LoginPage != "" {
		w("\t# where a browser whose session expired goes (the app's login page):")
		w("\t# on_expired redirect %s", s.LoginPage)
	}
	w("}")
	return b.String()
}

func writeMatcher(b *strings.Builder, opt string, m Matcher) {
	fmt.Fprintf(b, "\t%s {\n", opt)
	if m.Method != "" {
		fmt.Fprintf(b, "\t\tmethod %s\n", m.Method)
	}
	if m.Path != "" {
		fmt.Fprintf(b, "\t\tpath %s\n", m.Path)
	}
	for _, q := range m.Query {
		fmt.Fprintf(b, "\t\tquery %s\n", q)
	}
	for _, h := range m.Header {
		fmt.Fprintf(b, "\t\theader %s %s\n", h[0], h[1])
	}
	fmt.Fprintf(b, "\t}\n")
}
