package learn

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
)

// Suggestion is what the exchanges say about the app, each finding with
// the reason it was made. Empty fields were not found.
type Suggestion struct {
	Exchanges int

	// Login is the exchange index of the accepted login (-1 when none).
	Login int

	// Cookie is the session cookie as the option takes it: a name, or a
	// prefix and '*' when the name ends in a per-site hash. CookieName is
	// the name seen.
	Cookie, CookieName, CookieWhy string

	// Family are the other cookies the login response set.
	Family []FamilyCookie

	Parser, ParserWhy string

	Logout    *Matcher
	LogoutWhy string

	Passive []PassiveFinding

	// The user: from a cookie (UserCookie, cut at UserSep when set), else
	// from the login form (LoginMatch, UserForm, UserFormStatus).
	UserCookie, UserSep, UserWhy string
	LoginMatch                   *Matcher
	UserForm, UserFormStatus     string

	// LoginPage is the page of the login form, for on_expired redirect.
	LoginPage string

	// ClearCookies are cookies the signed-in requests carried that no
	// response of the session set and the logout did not delete.
	ClearCookies []string

	// Notes are what could not be found, and why.
	Notes []string
}

// FamilyCookie is one more cookie the login response set.
type FamilyCookie struct {
	Name, Path, Domain string
	// Deleted at logout.
	DeletedAtLogout bool
}

// Matcher is one Caddy matcher set, as the suggestion writes it.
type Matcher struct {
	Method string
	Path   string
	Query  []string    // "key=value"
	Header [][2]string // name, value
}

// PassiveFinding is one polling endpoint.
type PassiveFinding struct {
	Match Matcher
	Why   string
}

// Name patterns: a name that ends in 32 or more hex digits (md5, sha1,
// sha256 of the site) after a non-empty prefix.
var reHashed = regexp.MustCompile(`^(.*?[^0-9a-f])?([0-9a-f]{32,})$`)

// Pattern is the cookie name as the cookie option takes it: the prefix
// and '*' when the name ends in a per-site hash, else the name.
func Pattern(name string) string {
	if m := reHashed.FindStringSubmatch(name); m != nil && m[1] != "" {
		return m[1] + "*"
	}
	return name
}

var (
	reLogoutWord = regexp.MustCompile(`(?i)log_?out|log_?off|sign_?out|sign_?off|abmelden`)
	reLoginWord  = regexp.MustCompile(`(?i)log_?in|sign_?in|log_?on|auth`)
)

// Suggest infers an idle_session block from the exchanges, in the order
// they happened. The rules are documented in docs/apps.md ("Learning
// mode") and in the command's help.
func Suggest(ex []Exchange) Suggestion {
	s := Suggestion{Exchanges: len(ex), Login: findLogin(ex)}
	if s.Login < 0 {
		s.Notes = append(s.Notes, "no login seen: no POST answered 2xx/3xx set a cookie that later requests carried")
		return s
	}
	login := ex[s.Login]
	s.sessionCookie(ex)
	if s.CookieName == "" {
		return s
	}
	logout := s.logout(ex)
	end := len(ex)
	if logout >= 0 {
		end = logout
	}
	for _, c := range login.SetCookies {
		if c.Deleted || c.Name == s.CookieName {
			continue
		}
		f := FamilyCookie{Name: c.Name, Path: c.Path, Domain: c.Domain}
		if logout >= 0 {
			f.DeletedAtLogout = deletes(ex[logout], c.Name)
		}
		s.Family = append(s.Family, f)
	}
	s.parser(ex)
	s.passive(ex, s.Login+1, end)
	s.user(ex)
	s.loginPage(ex)
	s.clearCookies(ex, end, logout)
	return s
}

// findLogin is the accepted login: a POST answered 2xx or 3xx that set a
// cookie a later request carried with the value set. Among several, the
// one whose form carried the user name, then the one that set a cookie
// name no earlier response set, then a redirect, then the first.
func findLogin(ex []Exchange) int {
	best, bestScore := -1, -1
	seen := map[string]bool{}
	for i, e := range ex {
		newName := false
		for _, c := range e.SetCookies {
			if !c.Deleted && !seen[c.Name] {
				newName = true
			}
		}
		ok := e.Method == "POST" && e.Status >= 200 && e.Status < 400
		if ok {
			carried := false
			for _, c := range e.SetCookies {
				if !c.Deleted && carriedLater(ex, i, c) > 0 {
					carried = true
				}
			}
			if carried {
				score := 0
				for _, f := range e.Form {
					if f.IsUser {
						score += 8
						break
					}
				}
				if newName {
					score += 4
				}
				if e.Status >= 300 {
					score += 2
				}
				if score > bestScore {
					best, bestScore = i, score
				}
			}
		}
		for _, c := range e.SetCookies {
			if !c.Deleted {
				seen[c.Name] = true
			}
		}
	}
	return best
}

// carriedLater counts the requests after i that carry c's name with the
// value c set.
func carriedLater(ex []Exchange, i int, c SetCookie) int {
	n := 0
	for _, e := range ex[i+1:] {
		for _, rc := range e.Cookies {
			if rc.Name == c.Name && rc.ValueID == c.ValueID {
				n++
				break
			}
		}
	}
	return n
}

func carries(e Exchange, name string) bool {
	for _, c := range e.Cookies {
		if c.Name == name {
			return true
		}
	}
	return false
}

func deletes(e Exchange, name string) bool {
	for _, c := range e.SetCookies {
		if c.Name == name && c.Deleted {
			return true
		}
	}
	return false
}

// sessionCookie picks, among the cookies the login response set and the
// later requests carried, the session cookie: rotated at login (seen
// before with another value) counts most, then a name with a per-site
// hash, then being carried by most later requests, then the widest Path;
// a cookie that lives a few minutes at most (MediaWiki's UseDC) is none.
func (s *Suggestion) sessionCookie(ex []Exchange) {
	login := ex[s.Login]
	before := map[string]map[string]bool{} // name -> value IDs seen before the login
	note := func(name, id string) {
		if before[name] == nil {
			before[name] = map[string]bool{}
		}
		before[name][id] = true
	}
	for _, e := range ex[:s.Login] {
		for _, c := range e.SetCookies {
			if !c.Deleted {
				note(c.Name, c.ValueID)
			}
		}
	}
	for _, c := range login.Cookies {
		note(c.Name, c.ValueID)
	}
	later := len(ex) - s.Login - 1
	minPath := ""
	for _, c := range login.SetCookies {
		if !c.Deleted && (minPath == "" || len(c.Path) < len(minPath)) {
			minPath = c.Path
		}
	}
	type cand struct {
		c       SetCookie
		score   int
		carried int
		why     []string
	}
	var cands []cand
	for _, c := range login.SetCookies {
		if c.Deleted {
			continue
		}
		if carriedLater(ex, s.Login, c) == 0 {
			continue
		}
		// Carried by name: an app that re-sets its cookie on every
		// response (Redmine) has each value carried once.
		n := 0
		for _, e := range ex[s.Login+1:] {
			if carries(e, c.Name) {
				n++
			}
		}
		k := cand{c: c, carried: n}
		if ids := before[c.Name]; len(ids) > 0 && !ids[c.ValueID] {
			k.score += 4
			k.why = append(k.why, "rotated at login")
		} else if len(ids) == 0 {
			k.why = append(k.why, "new at login")
		}
		if Pattern(c.Name) != c.Name {
			k.score += 2
			k.why = append(k.why, "its name ends in a per-site hash")
		}
		if 2*n >= later {
			k.score += 2
		}
		if c.Path == minPath {
			k.score++
		}
		if c.MaxAge > 0 && c.MaxAge <= 300 {
			k.score -= 10
		}
		k.why = append(k.why, fmt.Sprintf("carried by %d of the %d later requests", n, later))
		cands = append(cands, k)
	}
	if len(cands) == 0 {
		s.Notes = append(s.Notes, "the login response set no cookie that later requests carried")
		return
	}
	sort.SliceStable(cands, func(i, j int) bool {
		if cands[i].score != cands[j].score {
			return cands[i].score > cands[j].score
		}
		return cands[i].carried > cands[j].carried
	})
	best := cands[0]
	// The same cookie set twice (WordPress's auth cookie at two Paths)
	// is one candidate.
	s.CookieName = best.c.Name
	s.Cookie = Pattern(best.c.Name)
	s.CookieWhy = fmt.Sprintf("set by the login response (%s %s → %d): %s", login.Method, login.Path, login.Status, strings.Join(best.why, ", "))
}

// logout is the first request after the login that carried the session
// cookie and whose response deleted it or another cookie of the login
// response; failing that, the first such request whose path or query
// names a logout. It sets s.Logout and returns the exchange index (-1).
func (s *Suggestion) logout(ex []Exchange) int {
	login := ex[s.Login]
	family := map[string]bool{}
	for _, c := range login.SetCookies {
		if !c.Deleted {
			family[c.Name] = true
		}
	}
	for i := s.Login + 1; i < len(ex); i++ {
		e := ex[i]
		if !carries(e, s.CookieName) {
			continue
		}
		var gone []string
		for _, c := range e.SetCookies {
			if c.Deleted && family[c.Name] && !slices.Contains(gone, c.Name) {
				gone = append(gone, c.Name)
			}
		}
		if len(gone) > 0 {
			s.Logout = logoutMatcher(ex, i)
			s.LogoutWhy = fmt.Sprintf("its response (%d) deleted %s", e.Status, strings.Join(gone, ", "))
			return i
		}
	}
	for i := s.Login + 1; i < len(ex); i++ {
		e := ex[i]
		if carries(e, s.CookieName) && (reLogoutWord.MatchString(e.Path) || logoutParam(e) != "") {
			s.Logout = logoutMatcher(ex, i)
			s.LogoutWhy = fmt.Sprintf("it names a logout; its response (%d) deleted none of the login's cookies — check that it ends the app's session", e.Status)
			return i
		}
	}
	s.Notes = append(s.Notes, "no logout seen: no signed-in request's response deleted the login's cookies (sign out once while learning)")
	return -1
}

func logoutParam(e Exchange) string {
	for _, p := range e.Query {
		if p.Value != "" && (reLogoutWord.MatchString(p.Value) || reLogoutWord.MatchString(p.Key)) {
			return p.Key + "=" + p.Value
		}
	}
	return ""
}

// logoutMatcher: the method when it is not GET, the path, and — unless
// the path itself names the logout — one word-valued query parameter: the
// one that names a logout, else one no other request had.
func logoutMatcher(ex []Exchange, i int) *Matcher {
	e := ex[i]
	m := &Matcher{Path: e.Path}
	if e.Method != "GET" {
		m.Method = e.Method
	}
	if reLogoutWord.MatchString(e.Path) {
		return m
	}
	if p := logoutParam(e); p != "" {
		m.Query = []string{p}
		return m
	}
	for _, p := range e.Query {
		if p.Value == "" {
			continue
		}
		unique := true
		for j, o := range ex {
			if j != i && hasParam(o, p) {
				unique = false
				break
			}
		}
		if unique {
			m.Query = []string{p.Key + "=" + p.Value}
			break
		}
	}
	return m
}

func hasParam(e Exchange, p Param) bool {
	for _, q := range e.Query {
		if q == p {
			return true
		}
	}
	return false
}

// parser names the app's cookie parser from what its responses say:
// X-Powered-By PHP or .php paths; a Rails cookie's shape or X-Runtime;
// Express's connect.sid; Django's sessionid with csrftoken.
func (s *Suggestion) parser(ex []Exchange) {
	var php, rails bool
	var phpWhy, railsWhy string
	names := map[string]bool{}
	for _, e := range ex {
		if !php && strings.Contains(strings.ToUpper(e.PoweredBy), "PHP") {
			php, phpWhy = true, "X-Powered-By: "+e.PoweredBy
		}
		if !php && strings.HasSuffix(e.Path, ".php") {
			php, phpWhy = true, "its pages are .php ("+e.Path+")"
		}
		for _, c := range e.SetCookies {
			names[c.Name] = true
			if c.Name == s.CookieName && c.Rails && !rails {
				rails, railsWhy = true, s.CookieName+" has the shape of a Rails cookie (base64 parts joined by --)"
			}
		}
		if e.Runtime && !rails && railsWhy == "" {
			railsWhy = "its responses carry X-Runtime (Rails)"
		}
	}
	switch {
	case rails:
		s.Parser, s.ParserWhy = "rails", railsWhy
	case php:
		s.Parser, s.ParserWhy = "php", phpWhy
	case railsWhy != "":
		s.Parser, s.ParserWhy = "rails", railsWhy
	case names["connect.sid"]:
		s.Parser, s.ParserWhy = "express", "it sets connect.sid (Express)"
	case names["sessionid"] && names["csrftoken"]:
		s.Parser, s.ParserWhy = "django", "it sets sessionid and csrftoken (Django)"
	}
}

// passive finds polling among the signed-in requests [from, to): a path
// scripts call (X-Requested-With: XMLHttpRequest), or a request that is
// no navigation repeated at least 3 times at a regular interval.
func (s *Suggestion) passive(ex []Exchange, from, to int) {
	type group struct {
		method, path string
		idx          []int
		xhr          bool
	}
	var order []string
	groups := map[string]*group{}
	for i := from; i < to; i++ {
		e := ex[i]
		if !carries(e, s.CookieName) {
			continue
		}
		k := e.Method + " " + e.Path
		g := groups[k]
		if g == nil {
			g = &group{method: e.Method, path: e.Path}
			groups[k] = g
			order = append(order, k)
		}
		g.idx = append(g.idx, i)
		if strings.EqualFold(e.XRequestedWith, "XMLHttpRequest") {
			g.xhr = true
		}
	}
	for _, k := range order {
		g := groups[k]
		fields := formNames(ex, g.idx)
		if g.xhr {
			why := fmt.Sprintf("%s %s was called %d time(s) by a script (X-Requested-With: XMLHttpRequest)", g.method, g.path, len(g.idx))
			if len(fields) > 0 {
				why += "; body fields " + strings.Join(fields, ", ") + " (a query matcher never sees the body)"
			}
			s.Passive = append(s.Passive, PassiveFinding{
				Match: Matcher{Path: g.path, Header: [][2]string{{"X-Requested-With", "XMLHttpRequest"}}},
				Why:   why,
			})
			continue
		}
		// The repeats that came by themselves: no navigation between one
		// and the next (a page's stylesheet comes again only with a page).
		var gaps []time.Duration
		nav := false
		for k, i := range g.idx {
			if ex[i].Navigation {
				nav = true
			}
			if k > 0 && !navigationBetween(ex, g.idx[k-1], i) {
				gaps = append(gaps, ex[i].At.Sub(ex[g.idx[k-1]].At))
			}
		}
		if nav || len(gaps) < 2 {
			continue
		}
		if mean, ok := regular(gaps); ok {
			m := Matcher{Path: g.path}
			if g.method != "GET" {
				m.Method = g.method
			}
			m.Query = commonParams(ex, g.idx)
			s.Passive = append(s.Passive, PassiveFinding{Match: m,
				Why: fmt.Sprintf("%s %s was requested %d times, %d of them every %s with no navigation between", g.method, g.path, len(g.idx), len(gaps), mean.Round(time.Second))})
		}
	}
}

// regular reports whether the gaps are within a quarter of their mean,
// and the mean is a second or more.
func regular(gaps []time.Duration) (time.Duration, bool) {
	var sum time.Duration
	for _, g := range gaps {
		sum += g
	}
	mean := sum / time.Duration(len(gaps))
	if mean < time.Second {
		return mean, false
	}
	for _, g := range gaps {
		d := g - mean
		if d < 0 {
			d = -d
		}
		if d > mean/4 {
			return mean, false
		}
	}
	return mean, true
}

// navigationBetween reports a navigation among the exchanges after i and
// before j.
func navigationBetween(ex []Exchange, i, j int) bool {
	for _, e := range ex[i+1 : j] {
		if e.Navigation {
			return true
		}
	}
	return false
}

func commonParams(ex []Exchange, idx []int) []string {
	var out []string
	for _, p := range ex[idx[0]].Query {
		if p.Value == "" {
			continue
		}
		all := true
		for _, i := range idx[1:] {
			if !hasParam(ex[i], p) {
				all = false
				break
			}
		}
		if all {
			out = append(out, p.Key+"="+p.Value)
		}
	}
	return out
}

func formNames(ex []Exchange, idx []int) []string {
	var out []string
	for _, i := range idx {
		for _, f := range ex[i].Form {
			if !slices.Contains(out, f.Name) {
				out = append(out, f.Name)
			}
		}
	}
	return out
}

// user finds where the user name can be read, cookies first: a cookie of
// the login response whose value starts with the name and a separator
// (the session cookie preferred), or equals it; else the login form's
// field that carried it, with the login response's status class.
func (s *Suggestion) user(ex []Exchange) {
	login := ex[s.Login]
	cs := append([]SetCookie(nil), login.SetCookies...)
	sort.SliceStable(cs, func(i, j int) bool { return cs[i].Name == s.CookieName && cs[j].Name != s.CookieName })
	for _, c := range cs {
		if c.Deleted {
			continue
		}
		if c.UserEquals {
			s.UserCookie, s.UserWhy = Pattern(c.Name), "the login response set "+c.Name+" to the user name"
			return
		}
		if c.UserSep != "" {
			s.UserCookie, s.UserSep = Pattern(c.Name), c.UserSep
			s.UserWhy = fmt.Sprintf("the login response set %s to a value that starts with the user name and %q", c.Name, c.UserSep)
			return
		}
	}
	for _, f := range login.Form {
		if f.IsUser {
			s.LoginMatch = &Matcher{Method: login.Method, Path: login.Path}
			s.UserForm = f.Name
			s.UserFormStatus = fmt.Sprintf("%dxx", login.Status/100)
			s.UserWhy = fmt.Sprintf("no cookie names the user; the login form's field %s carried it, and the app accepted the login with %d", f.Name, login.Status)
			return
		}
	}
	s.Notes = append(s.Notes, "no user source found (give --user with the name you sign in as)")
}

// loginPage is the page of the login form: the last navigation (not a
// stylesheet or an image the page loaded) answered 200 before the login,
// one to the login's path first; with the query parameters that name a
// login.
func (s *Suggestion) loginPage(ex []Exchange) {
	login := ex[s.Login]
	ok := func(e Exchange, nav, samePath bool) bool {
		return e.Method == "GET" && e.Status == 200 && (!nav || e.Navigation) && (!samePath || e.Path == login.Path)
	}
	for _, want := range [][2]bool{{true, true}, {true, false}, {false, true}} {
		for i := s.Login - 1; i >= 0; i-- {
			e := ex[i]
			if !ok(e, want[0], want[1]) {
				continue
			}
			u := e.Path
			var q []string
			for _, p := range e.Query {
				if p.Value != "" && (reLoginWord.MatchString(p.Value) || reLoginWord.MatchString(p.Key)) {
					q = append(q, p.Key+"="+p.Value)
				}
			}
			if len(q) > 0 {
				u += "?" + strings.Join(q, "&")
			}
			s.LoginPage = u
			return
		}
	}
}

// clearCookies are the cookies the signed-in requests carried that no
// response from the login to the logout set (idlegate learns those
// itself) and the logout did not delete: set before the login, or by
// JavaScript.
func (s *Suggestion) clearCookies(ex []Exchange, end, logout int) {
	set := map[string]bool{}
	for _, e := range ex[s.Login:end] {
		for _, c := range e.SetCookies {
			set[c.Name] = true
		}
	}
	if logout >= 0 {
		for _, c := range ex[logout].SetCookies {
			if c.Deleted {
				set[c.Name] = true
			}
		}
	}
	for _, e := range ex[s.Login+1 : end] {
		if !carries(e, s.CookieName) {
			continue
		}
		for _, c := range e.Cookies {
			if !set[c.Name] && !slices.Contains(s.ClearCookies, Pattern(c.Name)) {
				s.ClearCookies = append(s.ClearCookies, Pattern(c.Name))
			}
		}
	}
}
