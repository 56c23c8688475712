package sessioncookie

import (
	"bytes"
	"crypto/aes"
	"crypto/sha256"
	"strings"
	"testing"
	"time"
)

// The seed corpora live in testdata/fuzz/<FuzzName>/; run for example
//
//	go test -run '^$' -fuzz '^FuzzReading$' -fuzztime 20s ./sessioncookie/

// FuzzParseSetCookie checks that ParseSetCookie never panics, that what it
// returns is well formed, and that Clear of the result deletes that cookie.
func FuzzParseSetCookie(f *testing.F) {
	f.Add("sid=abc; Path=/; Max-Age=0", int64(0))
	f.Add("sid=abc; Expires=Thu, 01-Jan-1970 00:00:01 GMT", int64(1_800_000_000))
	f.Fuzz(func(t *testing.T, line string, unix int64) {
		now := time.Unix(unix, 0)
		c, ok := ParseSetCookie(line, now)
		if !ok {
			if c != (SetCookie{}) {
				t.Fatalf("ParseSetCookie failed but returned %+v", c)
			}
			return
		}
		if !ValidName(c.Name) {
			t.Fatalf("invalid name %q", c.Name)
		}
		if _, valid := cookieValue(c.Value); !valid {
			t.Fatalf("invalid value %q", c.Value)
		}
		if c.Value == "" && !c.Deleted {
			t.Fatal("empty value not marked deleted")
		}
		if c.Path != "" && (c.Path[0] != '/' || !validAttrValue(c.Path)) {
			t.Fatalf("invalid path %q", c.Path)
		}
		if !validAttrValue(c.Domain) || strings.HasPrefix(c.Domain, ".") || strings.ToLower(c.Domain) != c.Domain {
			t.Fatalf("invalid domain %q", c.Domain)
		}
		// Clear of what was parsed deletes exactly that cookie.
		del, ok := ParseSetCookie(Clear(c.Name, c.Path, c.Domain), now)
		wantPath := c.Path
		if wantPath == "" {
			wantPath = "/"
		}
		if !ok || !del.Deleted || del.Name != c.Name || del.Path != wantPath || del.Domain != c.Domain {
			t.Fatalf("Clear(%q, %q, %q) parses as %+v, %v", c.Name, c.Path, c.Domain, del, ok)
		}
	})
}

// FuzzLaravelSessionID checks that SessionID never panics and only returns
// well-formed session IDs. Random cookie values almost never pass the MAC,
// so the fuzzer also encrypts its plaintext with the right key, to reach the
// padding, prefix and ID checks behind it.
func FuzzLaravelSessionID(f *testing.F) {
	vectors := loadVectors(f)
	v := vectors[0]
	l, err := NewLaravel(v.AppKey)
	if err != nil {
		f.Fatal(err)
	}
	prefix := string(l.prefix(v.CookieName))
	f.Add(v.CookieName, v.CookieValue, []byte(prefix+v.SessionID))
	f.Fuzz(func(t *testing.T, name, value string, plain []byte) {
		if id, ok := l.SessionID(name, value); ok != (id != "") || ok && !validLaravelID([]byte(id)) {
			t.Fatalf("SessionID(%q, %q) = %q, %v", name, value, id, ok)
		}
		if len(plain) > 2048 {
			return
		}
		// Whole blocks are needed for CBC; a ragged tail becomes zeros,
		// which is bad padding.
		if r := len(plain) % aes.BlockSize; r != 0 || len(plain) == 0 {
			plain = append(bytes.Clone(plain), make([]byte, aes.BlockSize-r)...)
		}
		iv := sha256.Sum256(plain) // deterministic: see encryptCBCWithIV
		id, ok := l.SessionID(name, encryptCBCWithIV(l.key, iv[:aes.BlockSize], plain, false, nil))
		// The reference: strip valid PKCS#7 padding, then the prefix.
		want, wantOK := "", false
		if n := int(plain[len(plain)-1]); n >= 1 && n <= aes.BlockSize &&
			bytes.Count(plain[len(plain)-n:], []byte{byte(n)}) == n {
			rest := string(plain[:len(plain)-n])
			if s, found := strings.CutPrefix(rest, string(l.prefix(name))); found && len(s) == 40 &&
				strings.Trim(s, alnum) == "" {
				want, wantOK = s, true
			}
		}
		if id != want || ok != wantOK {
			t.Fatalf("SessionID(%q, encrypt(%q)) = %q, %v; want %q, %v", name, plain, id, ok, want, wantOK)
		}
	})
}
