package sessioncookie

import (
	"net/http"
	"reflect"
	"strings"
	"testing"
)

func TestRead(t *testing.T) {
	const S = "9amtf0v1ljh2v3d4"
	tests := []struct {
		why     string
		p       Profile
		name    string
		lines   []string
		value   string
		pairs   int
		problem Problem
	}{
		{"an ordinary request", ProfilePHP, "PHPSESSID", []string{"a=1; PHPSESSID=" + S + "; b=2"}, S, 1, ProblemNone},
		{"no session cookie", ProfilePHP, "PHPSESSID", []string{"a=1; PHPSESSIDX=2"}, "", 0, ProblemNone},
		{"PHP percent-decodes values: an escape where none is needed", ProfilePHP, "PHPSESSID", []string{"PHPSESSID=%39" + S[1:]}, "", 1, ProblemSpelling},
		{"Symfony writes '=' as %3D", ProfilePHP, "laravel_session", []string{"laravel_session=eyJ%3D"}, "eyJ=", 1, ProblemNone},
		{"lower-case hex is no encoder's", ProfilePHP, "laravel_session", []string{"laravel_session=eyJ%3d"}, "", 1, ProblemSpelling},
		{"PHP turns '.' in names into '_'", ProfilePHP, "laravel_session", []string{"laravel.session=" + S}, "", 1, ProblemSpelling},
		{"PHP turns ' ' in names into '_'", ProfilePHP, "laravel_session", []string{"laravel session=" + S}, "", 1, ProblemSpelling},
		{"PHP turns a lone '[' into '_'", ProfilePHP, "laravel_session", []string{"laravel[session=" + S}, "", 1, ProblemSpelling},
		{"a PHP array occupies the name", ProfilePHP, "PHPSESSID", []string{"PHPSESSID[x]=1; PHPSESSID=" + S}, "", 2, ProblemSpelling},
		{"mangled name beside the real one", ProfilePHP, "laravel_session", []string{"laravel.session=" + S + "; laravel_session=A"}, "", 2, ProblemSpelling},
		{"PHP's name without '=' occupies it", ProfilePHP, "PHPSESSID", []string{"PHPSESSID; PHPSESSID=" + S}, "", 2, ProblemSpelling},
		{"Django keeps the last of duplicates", ProfileDjango, "sessionid", []string{"sessionid=x; sessionid=" + S}, "", 2, ProblemConflict},
		{"identical duplicates agree", ProfileDjango, "sessionid", []string{"sessionid=" + S + "; sessionid=" + S}, S, 2, ProblemNone},
		{"Django unquotes octal escapes", ProfileDjango, "sessionid", []string{`sessionid="\142ly676"`}, "", 1, ProblemSpelling},
		{"Django strips the name", ProfileDjango, "sessionid", []string{"sessionid =" + S}, "", 1, ProblemSpelling},
		{"Django strips NBSP (UTF-8 C2 A0)", ProfileDjango, "sessionid", []string{"\u00a0sessionid=" + S}, "", 1, ProblemSpelling},
		{"Django strips U+3000", ProfileDjango, "sessionid", []string{"sessionid\u3000=" + S}, "", 1, ProblemSpelling},
		{"http.client strips the line of Latin-1 spaces first", ProfileDjango, "sessionid", []string{"\x85sessionid=" + S}, "", 1, ProblemSpelling},
		{"express-session's own spelling", ProfileExpress, "connect.sid", []string{"connect.sid=s%3Aabc.sig"}, "s:abc.sig", 1, ProblemNone},
		{"the raw s: form", ProfileExpress, "connect.sid", []string{"connect.sid=s:abc.sig"}, "", 1, ProblemSpelling},
		{"every character escaped", ProfileExpress, "connect.sid", []string{"connect.sid=%73%3Aabc.sig"}, "", 1, ProblemSpelling},
		{"the session on a second Cookie line", ProfilePHP, "PHPSESSID", []string{"a=1", "PHPSESSID=" + S}, S, 1, ProblemNone},
		{"whitespace after the value", ProfilePHP, "PHPSESSID", []string{"PHPSESSID=" + S + " ; a=1"}, "", 1, ProblemSpelling},
		{"a tab before the name", ProfilePHP, "PHPSESSID", []string{"a=1;\tPHPSESSID=" + S}, "", 1, ProblemSpelling},
		{"Rack decodes '+' as a space", ProfileRails, "_app_session", []string{"_app_session=a+b%2F"}, "a b/", 1, ProblemNone},
		{"safe: plain value", ProfileSafe, "sid", []string{"sid=" + S}, S, 1, ProblemNone},
		{"safe: any escape", ProfileSafe, "sid", []string{"sid=%53"}, "", 1, ProblemSpelling},
		{"safe: quotes", ProfileSafe, "sid", []string{`sid="` + S + `"`}, "", 1, ProblemSpelling},
		{"safe: behind a comma", ProfileSafe, "sid", []string{"a=1, sid=" + S}, "", 1, ProblemSpelling},
		{"safe: PHP's mangling", ProfileSafe, "s_id", []string{"s.id=" + S}, "", 1, ProblemSpelling},
		{"go skips an invalid value and reads the next", ProfileGo, "sid", []string{`sid=a\b; sid=` + S}, S, 1, ProblemNone},
	}
	for _, tt := range tests {
		h := http.Header{"Cookie": tt.lines}
		r := Read(h, tt.name, tt.p)
		if r.Pairs != tt.pairs || r.Problem != tt.problem || tt.problem == ProblemNone && r.Value != tt.value {
			t.Errorf("%s: Read(%q, %s) = {%q, %d, %s}; want {%q, %d, %s}", tt.why, tt.lines, tt.p, r.Value, r.Pairs, r.Problem, tt.value, tt.pairs, tt.problem)
		}
	}
}

func TestForwardAndStrip(t *testing.T) {
	h := http.Header{"Cookie": {"a=1; sid=S", "sid=S; b=2"}}
	r := Read(h, "sid", ProfileSafe)
	if r.Problem != ProblemNone || r.Value != "S" {
		t.Fatalf("Read = %+v", r)
	}
	r.Forward(h, "sid", ProfileSafe)
	if want := []string{"a=1; sid=S; b=2"}; !reflect.DeepEqual(h["Cookie"], want) {
		t.Errorf("Forward: Cookie = %q; want %q", h["Cookie"], want)
	}

	one := http.Header{"Cookie": {"a=1; sid=S"}}
	Read(one, "sid", ProfileSafe).Forward(one, "sid", ProfileSafe)
	if want := []string{"a=1; sid=S"}; !reflect.DeepEqual(one["Cookie"], want) {
		t.Errorf("Forward changed an ordinary header: %q", one["Cookie"])
	}

	s := http.Header{"Cookie": {"laravel.session=S; a=1; remember.web_59ba=tok", "laravel_session=A; remember_web_x=t"}}
	Strip(s, "laravel_session", ProfilePHP, func(n string) bool { return strings.HasPrefix(n, "remember_web_") })
	if want := []string{"a=1"}; !reflect.DeepEqual(s["Cookie"], want) {
		t.Errorf("Strip: Cookie = %q; want %q", s["Cookie"], want)
	}
	if r := Read(s, "laravel_session", ProfilePHP); r.Pairs != 0 {
		t.Errorf("after Strip, Read = %+v", r)
	}
}

func TestDecode(t *testing.T) {
	tests := []struct {
		p        Profile
		raw, out string
	}{
		{ProfilePHP, "a%3Db%zz%4", "a=b%zz%4"},
		{ProfilePHP, "a+b", "a+b"},
		{ProfileRails, "a+b%3D", "a b="},
		{ProfileRails, "a+b%zz", "a+b%zz"},
		{ProfileExpress, "s%3Aid", "s:id"},
		{ProfileExpress, "s%3Aid%ZZ", "s%3Aid%ZZ"},
		{ProfileExpress, "%C3%28", "%C3%28"},
		{ProfileExpress, `"s%3Aid"`, "s:id"},
		{ProfileDjango, `"\142ly\"x\\"`, `bly"x\`},
		{ProfileDjango, `"\477"`, "477"},
		{ProfileGo, `"abc"`, "abc"},
		{ProfileSafe, "%41", "%41"},
	}
	for _, tt := range tests {
		if got := Decode(tt.raw, tt.p); got != tt.out {
			t.Errorf("Decode(%q, %s) = %q; want %q", tt.raw, tt.p, got, tt.out)
		}
	}
}

func TestDefaultProfile(t *testing.T) {
	for name, want := range map[string]Profile{
		"PHPSESSID": ProfilePHP, "laravel_session": ProfilePHP, "sessionid": ProfileDjango,
		"connect.sid": ProfileExpress, "_redmine_session": ProfileRails, "_session": ProfileSafe, "sid": ProfileSafe,
	} {
		if got := DefaultProfile(name); got != want {
			t.Errorf("DefaultProfile(%q) = %s; want %s", name, got, want)
		}
	}
	for _, p := range []Profile{ProfileSafe, ProfilePHP, ProfileDjango, ProfileExpress, ProfileRails, ProfileGo} {
		if q, err := ParseProfile(p.String()); err != nil || q != p {
			t.Errorf("ParseProfile(%q) = %v, %v", p.String(), q, err)
		}
	}
	if _, err := ParseProfile("rack"); err == nil {
		t.Error("ParseProfile(rack) did not fail")
	}
}

func BenchmarkRead(b *testing.B) {
	h := http.Header{"Cookie": {"_ga=GA1.1.123456789.1700000000; theme=dark; laravel_session=eyJpdiI6IjEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MCIsInZhbHVlIjoiYWJjIn0%3D; XSRF-TOKEN=abcdef"}}
	b.ReportAllocs()
	for b.Loop() {
		if r := Read(h, "laravel_session", ProfilePHP); r.Problem != ProblemNone {
			b.Fatal(r.Problem)
		}
	}
}

// TestReadDoesNotAllocate: the request of a session whose value needs no
// decoding (PHPSESSID, sessionid, most apps' own) reads it without an
// allocation; the request path of a known session allocates nothing.
func TestReadDoesNotAllocate(t *testing.T) {
	h := http.Header{"Cookie": {"csrftoken=abc; sessionid=bly676t0u8wvmw4rs7xrl0mlp9j535yr; theme=dark"}}
	if n := testing.AllocsPerRun(100, func() { Read(h, "sessionid", ProfileDjango) }); n != 0 {
		t.Errorf("Read allocates %.0f times per call", n)
	}
}

// TestTrimPyShortcut: trimPy's shortcut for names and values that start and
// end with printable ASCII answers what Python's str.strip() (the full
// loop) does, for every one- and two-byte string and for Unicode spaces
// at either end.
func TestTrimPyShortcut(t *testing.T) {
	slow := func(s string) string {
		return strings.TrimFunc(s, isPyspace)
	}
	var cases []string
	for a := range 256 {
		cases = append(cases, string(rune(a)), string([]byte{byte(a)}))
		for _, b := range []byte{' ', 'x', 0x85, 0xa0, 0x1c, 0x7f} {
			cases = append(cases, string([]byte{byte(a), b}), string([]byte{b, byte(a)}))
		}
	}
	cases = append(cases, "\u3000sid", "sid\u2028", "\u0085sid\u00a0", "s i d", " sid ", "\x1fsid")
	for _, s := range cases {
		if got, want := trimPy(s), slow(s); got != want {
			t.Errorf("trimPy(%q) = %q, want %q", s, got, want)
		}
	}
}
