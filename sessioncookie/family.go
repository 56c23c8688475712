package sessioncookie

import (
	"net/http"
	"strings"
	"sync"
	"time"
)

// Member is a cookie an application issued with its sessions, as the
// browser keeps it: a name, and the Path and Domain it was set with. A
// browser deletes a cookie only by a Set-Cookie with the same name, path and
// domain, so these are what clearing needs. Values are never kept.
type Member struct {
	Name   string
	Path   string // never empty: the Path attribute, or the default path of the request that set it
	Domain string // "" for a host-only cookie
}

// zeroTime is the "now" of a Set-Cookie parse that only needs names and
// attributes.
var zeroTime time.Time

// maxFamily bounds a Family: an application sets a handful of cookies with
// its sessions (WordPress sets its auth cookie on two paths, a logged-in
// cookie and a test cookie); a Set-Cookie flood from a compromised upstream
// must not make every refusal a wall of headers.
const maxFamily = 32

// Family is the set of cookies an application issued with its sessions,
// learned from the Set-Cookie lines of their responses. Ending or refusing
// a session clears each member with the Path and Domain it was set with, so
// that no remember-me or path-scoped cookie signs the user back in
// (WordPress's wordpress_<hash> on /wp-admin, DokuWiki's cookies under a
// sub-path). A Family is safe for concurrent use; the zero Family is empty.
type Family struct {
	mu      sync.RWMutex
	members []Member
}

// Learn adds the cookies that the Set-Cookie lines of h set, deleted or
// not, as members. reqPath is the path of the request the response
// answers: a cookie without a Path attribute gets that request's default
// path, as a browser gives it (RFC 6265 section 5.1.4). It reports whether
// the family grew. With onlyHttpOnly, only HttpOnly cookies are learned:
// what an application sets a visitor before any session of idlegate's
// starts (DokuWiki's PHP session, the handle its login is bound to
// server-side), leaving out script cookies such as preferences and CSRF
// tokens.
func (f *Family) Learn(h http.Header, reqPath string, onlyHttpOnly bool) (grew bool) {
	lines := h["Set-Cookie"]
	if len(lines) == 0 {
		return false
	}
	for _, line := range lines {
		c, ok := ParseSetCookie(line, zeroTime)
		if !ok || onlyHttpOnly && !c.HttpOnly {
			continue
		}
		m := Member{Name: c.Name, Path: c.Path, Domain: c.Domain}
		if m.Path == "" {
			m.Path = DefaultPath(reqPath)
		}
		if f.add(m) {
			grew = true
		}
	}
	return grew
}

// Restore adds members kept from an earlier process (the store's copy).
func (f *Family) Restore(ms []Member) {
	for _, m := range ms {
		if ValidName(m.Name) {
			if m.Path == "" {
				m.Path = "/"
			}
			f.add(m)
		}
	}
}

// Len returns how many members the family has.
func (f *Family) Len() int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return len(f.members)
}

func (f *Family) add(m Member) bool {
	f.mu.RLock()
	known := containsMember(f.members, m)
	full := len(f.members) >= maxFamily
	f.mu.RUnlock()
	if known || full {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !containsMember(f.members, m) && len(f.members) < maxFamily {
		f.members = append(f.members, m)
		return true
	}
	return false
}

func containsMember(list []Member, m Member) bool {
	for _, x := range list {
		if x == m {
			return true
		}
	}
	return false
}

// Members returns the members learned so far.
func (f *Family) Members() []Member {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return append([]Member(nil), f.members...)
}

// Has reports whether a member is called name.
func (f *Family) Has(name string) bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	for _, m := range f.members {
		if m.Name == name {
			return true
		}
	}
	return false
}

// DefaultPath is a cookie's default path for a request path (RFC 6265
// section 5.1.4): the path up to, not including, its last '/', or "/".
func DefaultPath(reqPath string) string {
	if reqPath == "" || reqPath[0] != '/' {
		return "/"
	}
	i := strings.LastIndexByte(reqPath, '/')
	if i == 0 {
		return "/"
	}
	return reqPath[:i]
}

// maxPrefixes bounds PathPrefixes.
const maxPrefixes = 8

// PathPrefixes returns the paths at which a cookie the browser sends with a
// request for reqPath may have been set, when nobody saw it set (by
// JavaScript, or before idlegate was installed): "/", then each directory
// of the path with and without its trailing '/' ("/wiki", "/wiki/"), at
// most 8.
func PathPrefixes(reqPath string) []string {
	out := []string{"/"}
	if reqPath == "" || reqPath[0] != '/' {
		return out
	}
	for i := 1; i < len(reqPath) && len(out) < maxPrefixes; i++ {
		if reqPath[i] == '/' {
			out = append(out, reqPath[:i])
			if len(out) < maxPrefixes {
				out = append(out, reqPath[:i+1])
			}
		}
	}
	return out
}

// Clearer collects the Set-Cookie lines that delete cookies, each (name,
// path, domain) once.
type Clearer struct {
	seen  map[Member]bool
	lines []string
}

// maxClears bounds the lines one response carries.
const maxClears = 96

// Add deletes the cookie called name set with path and domain.
func (c *Clearer) Add(name, path, domain string) {
	if path == "" {
		path = "/"
	}
	m := Member{Name: name, Path: path, Domain: domain}
	if c.seen[m] || len(c.lines) >= maxClears {
		return
	}
	line := Clear(name, path, domain)
	if line == "" {
		return
	}
	if c.seen == nil {
		c.seen = map[Member]bool{}
	}
	c.seen[m] = true
	c.lines = append(c.lines, line)
}

// AddAt deletes the cookie called name at each of paths, host-only.
func (c *Clearer) AddAt(name string, paths []string) {
	for _, p := range paths {
		c.Add(name, p, "")
	}
}

// Lines returns the collected Set-Cookie values.
func (c *Clearer) Lines() []string { return c.lines }
