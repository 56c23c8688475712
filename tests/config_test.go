package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// configCaddyfile wraps one idle_session body. Nothing listens: validate and
// adapt only load it.
const configCaddyfile = `{
	admin off
	default_bind 127.0.0.1
}
http://127.0.0.1:9 {
	idle_session {
%s
	}
	reverse_proxy 127.0.0.1:9
}
`

const goodIdleBody = `		cookie sid
		idle 2s
		user_header X-Idle-User
		webhook http://127.0.0.1:9/hook {
			secret ` + TestSecret + `
		}`

// caddyfileCLI writes the Caddyfile and runs `caddy <verb>` on it.
func caddyfileCLI(t *testing.T, verb, body string) CLIResult {
	t.Helper()
	path := filepath.Join(t.TempDir(), "Caddyfile")
	if err := os.WriteFile(path, []byte(strings.Replace(configCaddyfile, "%s", body, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	return CaddyCLI(t, verb, "--config", path, "--adapter", "caddyfile")
}

func TestBadConfigFailsNamingOption(t *testing.T) {
	needCaddy(t)
	// The control: without it, "unrecognized directive idle_session" would
	// pass every case below.
	for _, verb := range []string{"adapt", "validate"} {
		if res := caddyfileCLI(t, verb, goodIdleBody); res.ExitCode != 0 {
			t.Fatalf("caddy %s of a good idle_session config: exit %d\n%s", verb, res.ExitCode, res.Output)
		}
	}

	cases := []struct {
		name string
		body string
		// words the error must contain
		names []string
		// parse errors must already fail `caddy adapt`; value checks may
		// wait for `caddy validate` (provisioning)
		adaptMustFail bool
	}{
		{
			name:          "unknown option",
			body:          strings.Replace(goodIdleBody, "idle 2s", "idle 2s\n\t\tbogus_option 1", 1),
			names:         []string{"bogus_option"},
			adaptMustFail: true,
		},
		{
			name:  "missing cookie",
			body:  strings.Replace(goodIdleBody, "cookie sid\n", "", 1),
			names: []string{"cookie"},
		},
		{
			name:  "negative idle",
			body:  strings.Replace(goodIdleBody, "idle 2s", "idle -5s", 1),
			names: []string{"idle", "-5s"},
		},
		{
			name:  "warning longer than idle",
			body:  strings.Replace(goodIdleBody, "idle 2s", "idle 2s\n\t\twarn_before 5s\n\t\tstatus_path /.idlegate/status\n\t\tinject_warning", 1),
			names: []string{"warn_before", "5s", "idle 2s"},
		},
		{
			name:  "bad webhook secret",
			body:  strings.Replace(goodIdleBody, TestSecret, "not-a-whsec-secret!", 1),
			names: []string{"secret"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			names := func(verb string, res CLIResult) {
				t.Helper()
				for _, w := range tc.names {
					if !strings.Contains(res.Output, w) {
						t.Errorf("caddy %s: error does not name %q:\n%s", verb, w, res.Output)
					}
				}
			}
			v := caddyfileCLI(t, "validate", tc.body)
			if v.ExitCode == 0 {
				t.Errorf("caddy validate accepted it:\n%s", v.Output)
			} else {
				names("validate", v)
			}
			a := caddyfileCLI(t, "adapt", tc.body)
			switch {
			case a.ExitCode != 0:
				names("adapt", a)
			case tc.adaptMustFail:
				t.Errorf("caddy adapt accepted a parse error:\n%s", a.Output)
			default:
				t.Logf("caddy adapt accepts it; validate refuses it")
			}
		})
	}
}
