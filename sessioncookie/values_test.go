package sessioncookie

import (
	"net/http"
	"slices"
	"strings"
	"testing"
)

func TestValuesSeesEveryPairOfAName(t *testing.T) {
	h := http.Header{"Cookie": {"a=1; wp=x%7Cy; b=2", "wp=second; wpx=no"}}
	var got []string
	Values(h, "wp", ProfilePHP, 4, func(v string) { got = append(got, v) })
	if !slices.Equal(got, []string{"x|y", "second"}) {
		t.Fatalf("Values = %q", got)
	}
	got = nil
	Values(h, "wp", ProfilePHP, 1, func(v string) { got = append(got, v) })
	if len(got) != 1 {
		t.Fatalf("Values ignores its bound: %q", got)
	}
}

func TestFamilyLearnReportsGrowthAndRestores(t *testing.T) {
	var f Family
	h := http.Header{"Set-Cookie": {"wp=v; Path=/wp-admin", "sid=1"}}
	if !f.Learn(h, "/login", false) || f.Learn(h, "/login", false) {
		t.Fatal("Learn must report growth once")
	}
	var g Family
	g.Restore(append(f.Members(), Member{Name: "bad name"}))
	if g.Len() != 2 || !g.Has("wp") {
		t.Fatalf("Restore: %+v", g.Members())
	}
}

// TestFamilyLearnsOnlyHttpOnlyBeforeASession: what an app sets a visitor
// before the session starts counts only when hidden from scripts
// (DokuWiki's PHP session does; a preferences or CSRF cookie does not).
func TestFamilyLearnsOnlyHttpOnlyBeforeASession(t *testing.T) {
	var f Family
	h := http.Header{"Set-Cookie": {"DokuWiki=abc; path=/dokuwiki/; HttpOnly", "csrftoken=x; Path=/", "DOKU_PREFS=y"}}
	f.Learn(h, "/dokuwiki/doku.php", true)
	if ms := f.Members(); len(ms) != 1 || ms[0] != (Member{Name: "DokuWiki", Path: "/dokuwiki/"}) {
		t.Fatalf("anonymous response: family %+v, want only DokuWiki at /dokuwiki/", ms)
	}
}

func TestMemberPairsReadsNamesAsAppsNormalizeThem(t *testing.T) {
	h := http.Header{"Cookie": {"wp.auth=a%7Cb; theme=dark; wp auth=c", " wp_auth = d"}}
	var got []string
	over := MemberPairs(h, func(n string) bool { return n == "wp_auth" }, ProfilePHP, 8, func(n, v string) { got = append(got, n+"="+v) })
	if over || strings.Join(got, " ") != "wp_auth=a|b wp_auth=c wp_auth=d" {
		t.Fatalf("MemberPairs = %q (over %v)", got, over)
	}
	if !MemberPairs(h, func(n string) bool { return n == "wp_auth" }, ProfilePHP, 2, func(string, string) {}) {
		t.Fatal("three member pairs against a bound of two are not over")
	}
}
