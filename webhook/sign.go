package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SecretPrefix starts every Standard Webhooks secret.
const SecretPrefix = "whsec_"

// MinSecretLen is the shortest key, in decoded bytes, that ParseSecret
// accepts: 24 bytes (192 bits), the lower bound the Standard Webhooks
// specification gives for secrets, and the length of the secrets common
// providers generate ("whsec_" followed by 32 base64 characters).
const MinSecretLen = 24

// Errors returned by ParseSecret and Verify, for errors.Is.
var (
	ErrSecretPrefix   = errors.New(`webhook secret must start with "whsec_"`)
	ErrSecretEncoding = errors.New("webhook secret is not valid base64 after whsec_")
	ErrSecretShort    = fmt.Errorf("webhook secret is too short: it must decode to at least %d bytes", MinSecretLen)
	ErrNoSignature    = errors.New("no matching webhook signature")
	ErrBadTimestamp   = errors.New("invalid webhook-timestamp")
)

// ParseSecret decodes a Standard Webhooks secret, "whsec_" followed by the
// standard (padded) base64 encoding of the key, and returns the key. The key
// must be at least MinSecretLen bytes long; generate one with
//
//	echo "whsec_$(head -c 32 /dev/urandom | base64)"
//
// The errors wrap ErrSecretPrefix, ErrSecretEncoding or ErrSecretShort and
// never contain the secret itself, so they are safe to log.
func ParseSecret(s string) ([]byte, error) {
	rest, ok := strings.CutPrefix(s, SecretPrefix)
	if !ok {
		return nil, ErrSecretPrefix
	}
	key, err := base64.StdEncoding.DecodeString(rest)
	if err != nil {
		// The base64 error names the offending byte offset, not the value.
		return nil, fmt.Errorf("%w: %w", ErrSecretEncoding, err)
	}
	if len(key) < MinSecretLen {
		return nil, fmt.Errorf("%w (got %d)", ErrSecretShort, len(key))
	}
	return key, nil
}

// Sign returns the webhook-signature header value for a message:
// "v1," followed by the base64 HMAC-SHA256, under key, of
// msgID + "." + ts in Unix seconds + "." + body.
func Sign(key []byte, msgID string, ts time.Time, body []byte) string {
	var sum [sha256.Size]byte
	mac := signature(sum[:0], key, msgID, ts.Unix(), body)
	out := make([]byte, 3, 3+base64.StdEncoding.EncodedLen(len(mac)))
	copy(out, "v1,")
	return string(base64.StdEncoding.AppendEncode(out, mac))
}

// signature appends the raw HMAC of the signed content to dst.
func signature(dst, key []byte, msgID string, unix int64, body []byte) []byte {
	h := hmac.New(sha256.New, key)
	var num [20]byte
	h.Write([]byte(msgID))
	h.Write([]byte{'.'})
	h.Write(strconv.AppendInt(num[:0], unix, 10))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(dst)
}

// Verify checks a received webhook the way a receiver does: tsHeader is the
// webhook-timestamp header (Unix seconds), sigHeader the webhook-signature
// header, which may hold several space-separated signatures (during a secret
// rotation); one valid "v1," signature is enough. Signatures are compared in
// constant time.
//
// Verify does not judge how old the timestamp is; a receiver that wants
// replay protection also checks that it is within a few minutes of its own
// clock (the Standard Webhooks libraries allow five).
func Verify(key []byte, msgID, tsHeader, sigHeader string, body []byte) error {
	ts, err := strconv.ParseInt(tsHeader, 10, 64)
	if err != nil {
		return ErrBadTimestamp
	}
	var sum [sha256.Size]byte
	want := signature(sum[:0], key, msgID, ts, body)
	var got [48]byte // DecodedLen(64): room for any signature we accept
	for _, s := range strings.Fields(sigHeader) {
		enc, ok := strings.CutPrefix(s, "v1,")
		if !ok || len(enc) > 64 {
			continue
		}
		n, err := base64.StdEncoding.Decode(got[:], []byte(enc))
		if err != nil {
			continue
		}
		if hmac.Equal(got[:n], want) {
			return nil
		}
	}
	return ErrNoSignature
}
