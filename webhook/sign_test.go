package webhook

import (
	"bytes"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// testSecret is a 32-byte Standard Webhooks secret.
var testSecret = "whsec_" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))

func TestParseSecret(t *testing.T) {
	key, err := ParseSecret(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	if string(key) != "0123456789abcdef0123456789abcdef" {
		t.Fatalf("key = %q", key)
	}
	short := "whsec_" + base64.StdEncoding.EncodeToString(make([]byte, MinSecretLen-1))
	exact := "whsec_" + base64.StdEncoding.EncodeToString(make([]byte, MinSecretLen))
	if _, err := ParseSecret(exact); err != nil {
		t.Errorf("secret of MinSecretLen bytes: %v", err)
	}
	for _, tc := range []struct {
		in   string
		want error
	}{
		{"", ErrSecretPrefix},
		{strings.TrimPrefix(testSecret, "whsec_"), ErrSecretPrefix},
		{"WHSEC_" + strings.TrimPrefix(testSecret, "whsec_"), ErrSecretPrefix},
		{"whsec_", ErrSecretShort},
		{"whsec_not*base64!", ErrSecretEncoding},
		{"whsec_" + base64.RawStdEncoding.EncodeToString([]byte("0123456789abcdef012345678")), ErrSecretEncoding}, // padding missing
		{short, ErrSecretShort},
	} {
		_, err := ParseSecret(tc.in)
		if !errors.Is(err, tc.want) {
			t.Errorf("ParseSecret(%q) = %v, want %v", tc.in, err, tc.want)
		}
		if err != nil && len(tc.in) > 10 && strings.Contains(err.Error(), tc.in[6:]) {
			t.Errorf("error %q reveals the secret", err)
		}
	}
}

// TestSignMatchesStandardWebhooks checks Sign against the reference Go
// library of the Standard Webhooks project, which we did not write.
func TestSignMatchesStandardWebhooks(t *testing.T) {
	key, err := ParseSecret(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	wh, err := standardwebhooks.NewWebhook(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"type":"session.ended","data":{"user":"ü\u0000"}}`)
	now := time.Now()
	sig := Sign(key, "msg_01JD0000000000000000000000", now, body)
	ref, err := wh.Sign("msg_01JD0000000000000000000000", now, body)
	if err != nil {
		t.Fatal(err)
	}
	if sig != ref {
		t.Fatalf("Sign = %q, reference library = %q", sig, ref)
	}
	h := http.Header{}
	h.Set("webhook-id", "msg_01JD0000000000000000000000")
	h.Set("webhook-timestamp", itoa(now.Unix()))
	h.Set("webhook-signature", sig)
	if err := wh.Verify(body, h); err != nil {
		t.Fatalf("reference library rejects our signature: %v", err)
	}
}

func TestVerify(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	other := []byte("fedcba9876543210fedcba9876543210")
	body := []byte(`{"a":1}`)
	ts := time.Unix(1_800_000_000, 0)
	good := Sign(key, "msg_1", ts, body)
	bad := Sign(other, "msg_1", ts, body)

	ok := []string{
		good,
		bad + " " + good,   // rotation: several signatures
		"v2,abc " + good,   // unknown versions are skipped
		"  " + good + "  ", // extra spaces
		"v1,!!!! " + good,  // garbage is skipped
		"v1," + strings.Repeat("A", 200) + " " + good, // oversized is skipped
	}
	for _, h := range ok {
		if err := Verify(key, "msg_1", "1800000000", h, body); err != nil {
			t.Errorf("Verify(%q) = %v", h, err)
		}
	}
	for name, fn := range map[string]func() error{
		"wrong key":       func() error { return Verify(key, "msg_1", "1800000000", bad, body) },
		"wrong id":        func() error { return Verify(key, "msg_2", "1800000000", good, body) },
		"wrong timestamp": func() error { return Verify(key, "msg_1", "1800000001", good, body) },
		"wrong body":      func() error { return Verify(key, "msg_1", "1800000000", good, []byte(`{"a":2}`)) },
		"empty header":    func() error { return Verify(key, "msg_1", "1800000000", "", body) },
		"no version":      func() error { return Verify(key, "msg_1", "1800000000", strings.TrimPrefix(good, "v1,"), body) },
		"truncated":       func() error { return Verify(key, "msg_1", "1800000000", good[:len(good)-4], body) },
	} {
		if err := fn(); !errors.Is(err, ErrNoSignature) {
			t.Errorf("%s: Verify = %v, want ErrNoSignature", name, err)
		}
	}
	if err := Verify(key, "msg_1", "soon", good, body); !errors.Is(err, ErrBadTimestamp) {
		t.Errorf("bad timestamp: Verify = %v", err)
	}
	if !bytes.HasPrefix([]byte(good), []byte("v1,")) || len(good) != 3+44 {
		t.Errorf("signature %q: want v1, and 44 base64 characters", good)
	}
}

func BenchmarkSign(b *testing.B) {
	key := []byte("0123456789abcdef0123456789abcdef")
	body := bytes.Repeat([]byte("x"), 300)
	ts := time.Unix(1_800_000_000, 0)
	b.ReportAllocs()
	for b.Loop() {
		Sign(key, "msg_01JD0000000000000000000000", ts, body)
	}
}
