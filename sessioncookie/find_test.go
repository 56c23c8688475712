package sessioncookie

import (
	"net/http"
	"slices"
	"strings"
	"testing"
)

func TestFind(t *testing.T) {
	big := strings.Repeat("junk_cookie=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; ", 150) // ~10 KiB
	tests := []struct {
		name      string
		lines     []string
		want      string
		wantCount int
	}{
		{"absent header", nil, "", 0},
		{"absent cookie", []string{"a=1; b=2"}, "", 0},
		{"single", []string{"sid=abc"}, "abc", 1},
		{"among others", []string{"a=1; sid=abc; b=2"}, "abc", 1},
		{"first wins", []string{"sid=one; sid=two"}, "one", 2},
		{"first non-empty wins", []string{"sid=; sid=two"}, "two", 2},
		{"only empty", []string{"sid=; sid="}, "", 2},
		{"name without =", []string{"sid; sid=x"}, "x", 2},
		{"quoted", []string{`sid="abc"`}, "abc", 1},
		{"lone quote", []string{`sid="`}, "", 1},
		{"empty quotes", []string{`sid=""; sid=x`}, "x", 2},
		{"inner quote is invalid", []string{`sid=a"b; sid=c`}, "c", 2},
		{"backslash is invalid", []string{`sid=a\b`}, "", 1},
		{"control byte is invalid", []string{"sid=a\x01b"}, "", 1},
		{"non-ASCII is invalid", []string{"sid=caf\xc3\xa9"}, "", 1},
		{"spaces around pair", []string{"  a=1 ;   sid=abc  ;b=2"}, "abc", 1},
		{"tabs around pair", []string{"\tsid=abc\t"}, "abc", 1},
		{"space around name", []string{"a=1; sid =abc"}, "abc", 1},
		{"space inside value kept, like net/http", []string{"sid=a b"}, "a b", 1},
		{"name is case-sensitive", []string{"SID=abc"}, "", 0},
		{"prefix of name", []string{"sidx=abc; xsid=abc"}, "", 0},
		{"value with =", []string{"sid=a=b=="}, "a=b==", 1},
		{"several lines", []string{"a=1", "b=2", "sid=abc", "sid=def"}, "abc", 2},
		{"empty line then value", []string{"", ";;;", "sid=abc"}, "abc", 1},
		{"invalid name skipped", []string{"s(d=1; sid=abc"}, "abc", 1},
		{"8 KiB+ line", []string{big + "sid=abc; " + big}, "abc", 1},
		{"garbage", []string{"\x00\xff;=;==;\";sid"}, "", 1},
		{"only separators", []string{";;; ; ;"}, "", 0},
		// Find jumps to each occurrence of the name; these are occurrences
		// that are not a pair of that name.
		{"name inside a value", []string{"a=sid=1; b=xsid"}, "", 0},
		{"name after a space inside a value", []string{"a= sid=1"}, "", 0},
		{"name within a longer name", []string{"ssid=1; sidsid=2; sid=3"}, "3", 1},
		{"name then another word", []string{"sid x=1; sid=2"}, "2", 1},
		{"name ending the line", []string{"a=1; sid"}, "", 1},
		{"spaces before the next pair", []string{"sid=abc 	 ; b=2"}, "abc", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for _, l := range tt.lines {
				h.Add("Cookie", l)
			}
			got, n := Find(h, "sid")
			if got != tt.want || n != tt.wantCount {
				t.Errorf("Find = %q, %d; want %q, %d", got, n, tt.want, tt.wantCount)
			}
		})
	}
}

func TestFindEmptyName(t *testing.T) {
	h := http.Header{"Cookie": {"=x; a=1"}}
	if v, n := Find(h, ""); v != "" || n != 0 {
		t.Errorf(`Find(h, "") = %q, %d; want "", 0`, v, n)
	}
}

// TestFindAgreesWithNetHTTP checks Find against net/http on the table inputs
// and on a few extra shapes: Find must return the first non-empty value that
// Request.Cookies returns for the name.
func TestFindAgreesWithNetHTTP(t *testing.T) {
	for _, lines := range [][]string{
		{"sid=a; sid=b"},
		{`sid=""; sid="x y"`},
		{"sid= leading; sid=x"},
		{"a=1", "sid=2"},
		{`sid="unterminated; sid=ok`},
	} {
		h := http.Header{"Cookie": lines}
		got, _ := Find(h, "sid")
		if want := netHTTPFirst(h, "sid"); got != want {
			t.Errorf("%q: Find = %q, net/http = %q", lines, got, want)
		}
	}
}

// netHTTPFirst is the reference for Find: the first non-empty value that
// net/http parses for name.
func netHTTPFirst(h http.Header, name string) string {
	r := &http.Request{Header: h}
	for _, c := range r.Cookies() {
		if c.Name == name && c.Value != "" {
			return c.Value
		}
	}
	return ""
}

func TestNames(t *testing.T) {
	h := http.Header{"Cookie": {"a=1; b=2; ; bad name=3", "a=4;c"}}
	got := slices.Collect(Names(h))
	want := []string{"a", "b", "a", "c"}
	if !slices.Equal(got, want) {
		t.Errorf("Names = %q, want %q", got, want)
	}
	// Stopping early must stop the iteration.
	for name := range Names(h) {
		if name != "a" {
			t.Fatalf("first name = %q", name)
		}
		break
	}
}

func BenchmarkFind(b *testing.B) {
	sid := "eyJpdiI6IlRrUXZITXhTVUszSUxJYmRueG9XMFE9PSIsInZhbHVlIjoiOUl5VVlaMG81T2RpNGpmajlONHdzdTFxV2tOR2RYb2lHcVBYSzBwdWo4TEVEVlJKbVQ5THpOb3gySjlIc09QUDVLNkVCMGlobDFFZ0E4ZnlYL0ZRdXRhOUlCZklieHBKbWpzaHFLYW5FeGx3SnRWQTdQVkJ6TWI0TTNwd2M0Y1IiLCJtYWMiOiJhYTY5MzQxMjdmZTNhZDY5NzVmNWI5NjQxNTZhZDU4OGMyNzhkZDJlODFjY2U5NzhhNGEyMDQ5NmVkMjU5YmZhIiwidGFnIjoiIn0%3D"
	cases := map[string]http.Header{
		"typical":  {"Cookie": {"_ga=GA1.1.123456789.1700000000; XSRF-TOKEN=eyJpdiI6Ik1; laravel_session=" + sid + "; remember_web_59ba=eyJpdiI6"}},
		"h2-lines": {"Cookie": {"_ga=GA1.1.123456789.1700000000", "XSRF-TOKEN=eyJpdiI6Ik1", "laravel_session=" + sid}},
		"8KiB":     {"Cookie": {strings.Repeat("junk=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; ", 200) + "laravel_session=" + sid}},
		"absent":   {"Cookie": {"_ga=GA1.1.123456789.1700000000; XSRF-TOKEN=eyJpdiI6Ik1"}},
	}
	for _, name := range []string{"typical", "h2-lines", "8KiB", "absent"} {
		h := cases[name]
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Find(h, "laravel_session")
			}
		})
	}
}

// TestFindDoesNotAllocate keeps the claim of BenchmarkFind in the normal
// test run.
func TestFindDoesNotAllocate(t *testing.T) {
	h := http.Header{"Cookie": {"a=1; sid=\"abc\"; b=2", "sid=x"}}
	if n := testing.AllocsPerRun(100, func() { Find(h, "sid") }); n != 0 {
		t.Errorf("Find allocates %v times per call, want 0", n)
	}
}
