package sessioncookie

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/textproto"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// The differential test: Read, Forward and Strip against the frameworks'
// real cookie parsers (oracles_test.go), over the whole corpus
// (cookiecorpus_test.go). The property, for every entry E and every
// framework F with its session cookie name N and profile p:
//
//   - r := Read(E, N, p);
//   - r.Problem != ProblemNone: the request is refused, and in strip mode
//     forwarded as Strip(E, N, p, nil), from which F reads no session;
//   - otherwise E after r.Forward is what F gets, and F reads exactly
//     r.Value (no session when r.Value == "");
//   - in any case (strip mode ends a session that Read read without a
//     problem, too) F reads no session from Strip(E, N, p, nil), nor any
//     clear_cookies match from Strip(E, N, p, also).
//
// Between them stands Caddy, modeled on net/http, which it is: a request
// with a control byte in a header is refused before idlegate sees it
// (caddyAccepts, checked against the recorded net/http server), idlegate
// gets each line trimmed of spaces and tabs (caddyReceives), and the
// reverse proxy writes each line trimmed (caddySends).
//
// ProfileSafe is checked against every parser. DIFF_REPORT=<file> writes
// every failure there as JSON lines.

// A diffCheck is one framework's reading of one cookie name.
type diffCheck struct {
	oracle  string
	name    string
	profile Profile
}

func (c diffCheck) String() string {
	return fmt.Sprintf("%s/%s/%s", c.oracle, c.name, profileName(c.profile))
}

func profileName(p Profile) string {
	return [...]string{"safe", "php", "django", "express", "rails", "go"}[p]
}

// sessionNames are the frameworks' session cookie names, with the profile
// each framework's app uses.
var sessionNames = []struct {
	oracle, name string
	profile      Profile
}{
	{"php", "PHPSESSID", ProfilePHP},
	{"php", "laravel_session", ProfilePHP},
	{"django", "sessionid", ProfileDjango},
	{"express", "connect.sid", ProfileExpress},
	{"rack", "_app_session", ProfileRails},
	{"go", "sid", ProfileGo},
}

// diffChecks are the framework checks, then ProfileSafe with every name
// against every parser (but PHP with a name it cannot read: PHP renames a
// cookie called connect.sid to connect_sid).
func diffChecks() []diffCheck {
	var cs []diffCheck
	for _, s := range sessionNames {
		cs = append(cs, diffCheck{s.oracle, s.name, s.profile})
	}
	for _, s := range sessionNames {
		for _, o := range oracles {
			if o.name == "php" && strings.ContainsAny(s.name, ". [") {
				continue
			}
			cs = append(cs, diffCheck{o.name, s.name, ProfileSafe})
		}
	}
	return cs
}

// clearCookie is the clear_cookies pattern of issue 15's last table row.
func clearCookie(name string) bool { return strings.HasPrefix(name, "remember_web_") }

// idlegate's view of one entry for one (name, profile).
type diffReading struct {
	r                      Reading
	forwarded, stripped    []string // Cookie lines
	strippedAlso           []string
	forwardLines, fwdPairs int // of the forwarded header, for the invariants
}

// caddyAccepts reports whether Caddy's HTTP server (net/http) takes a
// request with these Cookie lines at all: it answers 400 to a header value
// with a control byte (httpguts.ValidHeaderFieldValue), so such a request
// never reaches idlegate, nor the app behind it.
func caddyAccepts(lines []string) bool {
	n := 0
	for _, l := range lines {
		n += len(l) + len("Cookie: \r\n")
		for i := 0; i < len(l); i++ {
			if b := l[i]; b < 0x20 && b != '\t' || b == 0x7f {
				return false
			}
		}
	}
	return n < http.DefaultMaxHeaderBytes
}

// caddyReceives is each Cookie line as idlegate gets it from net/http's
// header parser: spaces and tabs around the value are gone.
func caddyReceives(lines []string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = strings.Trim(l, " \t")
	}
	return out
}

// caddySends is each Cookie line as Caddy's reverse proxy writes it to the
// upstream (net/http's Header.Write trims it with textproto.TrimString).
func caddySends(lines []string) []string {
	if lines == nil {
		return nil
	}
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = textproto.TrimString(strings.NewReplacer("\r", " ", "\n", " ").Replace(l))
	}
	return out
}

// readEntry is idlegate's side for one header: Read, and the headers
// Forward and Strip make of it, as Caddy sends them on.
func readEntry(lines []string, name string, p Profile) diffReading {
	h := func() http.Header {
		h := http.Header{}
		if len(lines) > 0 {
			h["Cookie"] = slices.Clone(lines)
		}
		return h
	}
	var d diffReading
	d.r = Read(h(), name, p)
	if d.r.Problem == ProblemNone {
		f := h()
		d.r.Forward(f, name, p)
		d.forwarded = caddySends(f["Cookie"])
	}
	s := h()
	Strip(s, name, p, nil)
	d.stripped = caddySends(s["Cookie"])
	s = h()
	Strip(s, name, p, clearCookie)
	d.strippedAlso = caddySends(s["Cookie"])
	return d
}

// A diffFailure is one entry that breaks the property for one check.
type diffFailure struct {
	Kind    string   `json:"kind"`
	Check   string   `json:"check"`
	ID      string   `json:"id"`
	Header  []bstr   `json:"header"`
	AppRaw  string   `json:"app_reads_raw"`
	Read    string   `json:"read"`
	Sent    []bstr   `json:"sent,omitempty"`
	AppSent string   `json:"app_reads_sent,omitempty"`
	Extra   []string `json:"extra,omitempty"`
}

func describeReading(r Reading) string {
	return fmt.Sprintf("Value=%q Pairs=%d Problem=%d", r.Value, r.Pairs, r.Problem)
}

func TestDifferentialCookieReading(t *testing.T) {
	requireOracles(t)
	start := time.Now()
	entries := loadCorpus(t)
	// What the apps read from the headers as sent is recorded, for the
	// fuzz target; the raw headers go to the parsers too, to check that
	// they still read them so, and idlegate's forwarded and stripped ones.
	rec := loadRecorded(t)
	checks := diffChecks()

	// idlegate's side, then every header each parser must read, at once.
	readings := make([][]diffReading, len(entries))
	unreachable := 0
	batches := map[string][][]string{}
	asked := map[string]map[string]bool{}
	ask := func(o string, lines []string) {
		if asked[o] == nil {
			asked[o] = map[string]bool{}
		}
		if k := headerKey(lines); !asked[o][k] {
			asked[o][k] = true
			batches[o] = append(batches[o], lines)
		}
	}
	for i, e := range entries {
		lines := e.header()
		r, ok := rec[e.ID]
		if !ok {
			t.Fatalf("%s: not in %s: run %s/record.sh", e.ID, recordedFile, oracleDir)
		}
		for _, o := range oracles { // for checkRecorded
			ask(o.name, lines)
		}
		// The model of Caddy's server must agree with the real one.
		if caddyAccepts(lines) != (r.Go.Err == "") {
			t.Errorf("%s: caddyAccepts = %v, but net/http answers %s", e.ID, caddyAccepts(lines), r.Go)
		}
		if !caddyAccepts(lines) {
			unreachable++
			continue
		}
		readings[i] = make([]diffReading, len(checks))
		received := caddyReceives(lines)
		byProfile := map[[2]string]diffReading{} // ProfileSafe is checked against every parser
		for j, c := range checks {
			key := [2]string{c.name, c.profile.String()}
			d, ok := byProfile[key]
			if !ok {
				d = readEntry(received, c.name, c.profile)
				byProfile[key] = d
			}
			readings[i][j] = d
			ask(c.oracle, d.stripped)
			ask(c.oracle, d.strippedAlso)
			if d.r.Problem == ProblemNone {
				ask(c.oracle, d.forwarded)
			}
		}
	}
	t.Logf("idlegate's side: %v", time.Since(start).Round(time.Millisecond))
	res := askAll(t, batches)
	t.Logf("the parsers' side: %v", time.Since(start).Round(time.Millisecond))
	app := func(o string, lines []string) parsed { return res[o][headerKey(lines)] }
	checkRecorded(t, entries, rec, app)
	show := func(o, name string, p parsed) string {
		if v, ok := p.session(o, name); ok {
			return fmt.Sprintf("session %q", v)
		}
		if p.Err != "" {
			return "error " + p.Err
		}
		for _, kv := range p.Pairs {
			if kv.Name == name {
				return "no session (" + parsed{Pairs: []parsedPair{kv}}.String() + ")"
			}
		}
		return "no session"
	}

	type tally struct{ entries, refused, withSession, without, rawSession int }
	tallies := map[string]*tally{}
	safeRefusesBrowser := map[string]int{}
	var table []string // issue 15's attacks, one line per framework they reach
	var failures []diffFailure
	for i, e := range entries {
		raw := rec[e.ID]
		if readings[i] == nil {
			continue
		}
		for j, c := range checks {
			d := readings[i][j]
			tl := tallies[c.String()]
			if tl == nil {
				tl = &tally{}
				tallies[c.String()] = tl
			}
			tl.entries++
			if _, ok := raw.of(c.oracle).session(c.oracle, c.name); ok {
				tl.rawSession++
			}
			fail := func(kind string, sent []string, extra ...string) {
				f := diffFailure{Kind: kind, Check: c.String(), ID: e.ID, Header: e.Lines,
					AppRaw: show(c.oracle, c.name, raw.of(c.oracle)), Read: describeReading(d.r), Extra: extra}
				if !strings.HasPrefix(kind, "browser") {
					f.Sent = toBstrs(sent)
					f.AppSent = show(c.oracle, c.name, app(c.oracle, sent))
				}
				failures = append(failures, f)
			}
			if strings.HasPrefix(e.ID, "table/") && c.profile != ProfileSafe && (d.r.Pairs > 0 || raw.of(c.oracle).Pairs != nil && show(c.oracle, c.name, raw.of(c.oracle)) != "no session") {
				verdict := "refused (" + d.r.Problem.String() + ")"
				if d.r.Problem == ProblemNone {
					verdict = fmt.Sprintf("forwarded, the app reads %s", show(c.oracle, c.name, app(c.oracle, d.forwarded)))
				}
				table = append(table, fmt.Sprintf("  %-40s %-28s without idlegate the app reads %.60s; idlegate: %.80s", e.ID, c, show(c.oracle, c.name, raw.of(c.oracle)), verdict))
			}
			switch {
			case d.r.Problem != ProblemNone:
				tl.refused++
			case d.r.Value != "":
				tl.withSession++
			default:
				tl.without++
			}
			if d.r.Problem == ProblemNone {
				got, ok := app(c.oracle, d.forwarded).session(c.oracle, c.name)
				if got != d.r.Value || ok != (d.r.Value != "") {
					fail("forward: the app reads another session than Read", d.forwarded)
				}
				if d.r.Value != "" {
					if len(d.forwarded) != 1 {
						fail("forward: not one Cookie line", d.forwarded)
					} else if again := Read(http.Header{"Cookie": d.forwarded}, c.name, c.profile); again.Value != d.r.Value || again.Problem != ProblemNone || again.Pairs != 1 {
						fail("forward: Read of the forwarded header differs", d.forwarded, describeReading(again))
					}
				}
			}
			if _, ok := app(c.oracle, d.stripped).session(c.oracle, c.name); ok {
				fail("strip: the app still reads a session", d.stripped)
			}
			if again := Read(http.Header{"Cookie": d.stripped}, c.name, c.profile); again.Pairs != 0 {
				fail("strip: Read still finds session pairs", d.stripped, describeReading(again))
			}
			if len(d.stripped) > 1 {
				fail("strip: more than one Cookie line", d.stripped)
			}
			for _, n := range app(c.oracle, d.strippedAlso).names() {
				if clearCookie(n) {
					fail("strip(clear_cookies): the app still reads "+n, d.strippedAlso)
					break
				}
			}
			// Not the security property, but what makes it worth having: a
			// browser's own header is forwarded with its session. (ProfileSafe
			// refuses values with escapes by design: only noted.)
			if strings.Contains(e.ID, "/browser/") && strings.HasPrefix(e.ID, "gen/"+targetKeyOf(c.name)+"/") &&
				(d.r.Problem != ProblemNone || d.r.Value == "") {
				if c.profile == ProfileSafe {
					safeRefusesBrowser[c.name]++
				} else {
					fail("browser: a header as the browser sends it is refused or read without its session", nil)
				}
			}
		}
	}

	t.Logf("%d corpus entries, %d of them refused by Caddy's HTTP server (control bytes); per check: entries, refused, forwarded with a session, forwarded without; raw = the app reads a session from the header as sent", len(entries), unreachable)
	for _, c := range checks {
		tl := tallies[c.String()]
		t.Logf("  %-36s %5d  refused %5d  with session %5d  without %5d   (raw %5d)",
			c, tl.entries, tl.refused, tl.withSession, tl.without, tl.rawSession)
	}
	t.Logf("issue 15's attack table:\n%s", strings.Join(table, "\n"))
	for _, n := range slices.Sorted(maps.Keys(safeRefusesBrowser)) {
		t.Logf("note: ProfileSafe refuses %d (checks × entries) of the headers a browser sends for %s (values with %%XX escapes)", safeRefusesBrowser[n], n)
	}
	if path := os.Getenv("DIFF_REPORT"); path != "" {
		var b []byte
		for _, f := range failures {
			j, _ := json.Marshal(f)
			b = append(append(b, j...), '\n')
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Error(err)
		}
	}
	reportFailures(t, failures)
}

func targetKeyOf(name string) string {
	return map[string]string{"PHPSESSID": "php", "laravel_session": "laravel", "sessionid": "django",
		"connect.sid": "express", "_app_session": "rails", "sid": "go"}[name]
}

// reportFailures prints, per kind of failure and check, how many entries
// fail, in which classes, and the first failing entry in full: one bug
// shows once, not hundreds of times.
func reportFailures(t *testing.T, failures []diffFailure) {
	t.Helper()
	type group struct {
		first   diffFailure
		n       int
		classes map[string]int
	}
	groups := map[string]*group{}
	for _, f := range failures {
		k := f.Kind + "\x00" + f.Check
		g := groups[k]
		if g == nil {
			g = &group{first: f, classes: map[string]int{}}
			groups[k] = g
		}
		g.n++
		g.classes[corpusEntry{ID: f.ID}.class()]++
	}
	for _, k := range slices.Sorted(maps.Keys(groups)) {
		g := groups[k]
		f := g.first
		classes := slices.SortedFunc(maps.Keys(g.classes), func(a, b string) int { return g.classes[b] - g.classes[a] })
		var list []string
		for i, c := range classes {
			if i == 12 {
				list = append(list, fmt.Sprintf("… %d more", len(classes)-i))
				break
			}
			list = append(list, fmt.Sprintf("%s (%d)", c, g.classes[c]))
		}
		msg := fmt.Sprintf("%s\n\tcheck %s: %d entries in %d classes: %s\n\te.g. %s\n\theader %s\n\tapp reads %s\n\tRead: %s",
			f.Kind, f.Check, g.n, len(classes), strings.Join(list, ", "), f.ID, quoteLines(f.Header), f.AppRaw, f.Read)
		if f.AppSent != "" {
			msg += fmt.Sprintf("\n\tsent %s\n\tapp reads %s", quoteLines(f.Sent), f.AppSent)
		}
		for _, x := range f.Extra {
			msg += "\n\t" + x
		}
		t.Error(msg)
	}
	if len(failures) > 0 {
		t.Logf("%d failures (DIFF_REPORT=<file> writes them all)", len(failures))
	}
}

func quoteLines(lines []bstr) string {
	const max = 300
	var parts []string
	for _, l := range lines {
		s := fmt.Sprintf("%q", string(l))
		if len(s) > max {
			s = s[:max] + fmt.Sprintf("…(%d bytes)", len(l))
		}
		parts = append(parts, s)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}
