package sessioncookie

import (
	"net/http"
	"slices"
	"strings"
	"testing"
)

// FuzzReading checks Read, Forward and Strip on any Cookie header (lines
// separated by '\n'), for every framework's session cookie name and
// profile and for ProfileSafe with each name:
//
//   - Read never panics;
//   - after Forward, the header has one Cookie line with exactly one pair
//     that Read reads as the session, with the same Value and no Problem;
//   - after Strip, Read finds no session pair;
//   - net/http (the Go profile's app, and one of those ProfileSafe answers
//     for) reads r.Value from the forwarded header and nothing from the
//     stripped one;
//   - where the corpus recorded what the real parsers read from this very
//     input (the seeds) and Forward leaves it as it is, r.Value is what the
//     framework read, or r.Problem is not ProblemNone (unless Caddy's
//     server refuses the input).
//
// Read gets the input as it is, not as Caddy's header parser trims it:
// the invariants hold for any header.
//
// The seeds are the corpus (testdata/cookiecorpus.jsonl). Run it with
//
//	go test -run '^$' -fuzz '^FuzzReading$' -fuzztime 60s ./sessioncookie/
func FuzzReading(f *testing.F) {
	// What the real parsers read from each seed, by the seed.
	rec := loadRecorded(f)
	recordedByInput := map[string]recorded{}
	// One seed per class of corpus entries: the differential test runs
	// the whole corpus through Read against the live parsers, and the
	// fuzzer measures the coverage of every seed before it starts (a
	// minute for all 6,600 on two busy cores).
	classes := map[string]bool{}
	for _, e := range loadCorpus(f) {
		input := strings.Join(e.header(), "\n")
		if r, ok := rec[e.ID]; ok {
			recordedByInput[input] = r
		}
		if classes[e.class()] {
			continue
		}
		classes[e.class()] = true
		f.Add(input)
	}
	checks := diffChecks()
	f.Fuzz(func(t *testing.T, input string) {
		if len(input) > 1<<16 {
			return
		}
		var lines []string
		if input != "" {
			lines = strings.Split(input, "\n")
		}
		rec, haveRec := recordedByInput[input]
		seen := map[[2]string]bool{}
		for _, c := range checks {
			d := readEntry(lines, c.name, c.profile)
			r := d.r
			key := [2]string{c.name, profileName(c.profile)}
			if !seen[key] {
				seen[key] = true
				if r.Problem == ProblemNone && r.Value != "" {
					if len(d.forwarded) != 1 {
						t.Fatalf("%s: Forward of %q leaves %d Cookie lines: %q", c, lines, len(d.forwarded), d.forwarded)
					}
					again := Read(http.Header{"Cookie": d.forwarded}, c.name, c.profile)
					if again.Value != r.Value || again.Pairs != 1 || again.Problem != ProblemNone {
						t.Fatalf("%s: Read(%q) = %s; after Forward %q: %s", c, lines, describeReading(r), d.forwarded, describeReading(again))
					}
				}
				if again := Read(http.Header{"Cookie": d.stripped}, c.name, c.profile); again.Pairs != 0 || again.Value != "" {
					t.Fatalf("%s: after Strip of %q, %q reads %s", c, lines, d.stripped, describeReading(again))
				}
			}
			if c.oracle == "go" {
				if r.Problem == ProblemNone {
					if got, _ := goCookies(d.forwarded).session("go", c.name); got != r.Value {
						t.Fatalf("%s: Read(%q) = %s; net/http reads %q from the forwarded %q", c, lines, describeReading(r), got, d.forwarded)
					}
				}
				if got, ok := goCookies(d.stripped).session("go", c.name); ok {
					t.Fatalf("%s: net/http reads %q from %q, Strip of %q", c, got, d.stripped, lines)
				}
			}
			// Where idlegate forwards the input as it is, the app reads what
			// it read from the input. (When Forward rewrites it, the
			// differential test asks the app about the rewritten header;
			// an input with a control byte never gets past Caddy's server.)
			if haveRec && r.Problem == ProblemNone && caddyAccepts(lines) && slices.Equal(d.forwarded, lines) {
				if got, _ := rec.of(c.oracle).session(c.oracle, c.name); got != r.Value {
					t.Fatalf("%s: %s reads %q from %q (recorded), Read = %s", c, c.oracle, got, lines, describeReading(r))
				}
			}
		}
	})
}
