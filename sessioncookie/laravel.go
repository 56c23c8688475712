package sessioncookie

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// MaxLaravelCookie is the longest cookie value [Laravel.SessionID] looks at.
// A Laravel session cookie is about 300 bytes and browsers refuse cookies
// over 4 KiB, so anything longer is garbage and is refused before any
// decoding.
const MaxLaravelCookie = 8 << 10

// laravelIDLen is the length of a Laravel session ID (Str::random(40)).
const laravelIDLen = 40

// Laravel decrypts the cookies that Laravel's EncryptCookies middleware
// writes, to find the session ID inside. The cookie value changes on every
// response (a fresh IV each time), while the session ID it carries changes
// only when Laravel regenerates the session, so the ID is what identifies a
// session.
//
// A Laravel is safe for concurrent use.
type Laravel struct {
	key   []byte
	block cipher.Block
}

// NewLaravel returns a Laravel for the application key appKey, written as
// in Laravel's .env: "base64:" followed by the base64 of the key, or the raw
// key itself. The key must be 16 bytes (AES-128-CBC, AES-128-GCM) or 32 bytes
// (AES-256-CBC, the default, and AES-256-GCM); which of CBC and GCM the
// application uses is read from each cookie. Errors never contain the key.
func NewLaravel(appKey string) (*Laravel, error) {
	if appKey == "" {
		return nil, errors.New("laravel_key is empty; copy APP_KEY from the application's .env")
	}
	key := []byte(appKey)
	if enc, ok := strings.CutPrefix(appKey, "base64:"); ok {
		var err error
		key, err = base64.StdEncoding.DecodeString(enc)
		if err != nil {
			key, err = base64.RawStdEncoding.DecodeString(enc)
		}
		if err != nil {
			return nil, errors.New(`laravel_key: the part after "base64:" is not valid base64`)
		}
	}
	if len(key) != 16 && len(key) != 32 {
		return nil, fmt.Errorf("laravel_key: key is %d bytes; Laravel needs 32 bytes (AES-256, the default) or 16 bytes (AES-128); APP_KEY usually looks like \"base64:\" followed by 44 characters", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil { // not reached: the length is checked above
		return nil, fmt.Errorf("laravel_key: %w", err)
	}
	return &Laravel{key: key, block: block}, nil
}

// laravelPayload is the JSON inside a Laravel cookie. Pointers tell a
// missing field from an empty one, as PHP's isset does.
type laravelPayload struct {
	IV    *string `json:"iv"`
	Value *string `json:"value"`
	MAC   *string `json:"mac"`
	Tag   *string `json:"tag"`
}

// SessionID returns the session ID carried by cookieValue, the value of the
// cookie called cookieName exactly as the browser sends it (URL-encoded):
// it is [Laravel.SessionIDDecoded] of the value as PHP percent-decodes it.
func (l *Laravel) SessionID(cookieName, cookieValue string) (id string, ok bool) {
	return l.SessionIDDecoded(cookieName, Decode(cookieValue, ProfilePHP))
}

// SessionIDDecoded returns the session ID carried by value, the cookie
// called cookieName as PHP hands it to Laravel ($_COOKIE: percent-decoded
// once; see [Decode] with [ProfilePHP]).
//
// It repeats what Laravel 8's EncryptCookies and Encrypter do, including
// where PHP is lenient: base64_decode skips every byte outside the base64
// alphabet (an attacker's '.' or '%' changes nothing), json_decode matches
// keys exactly (Go's encoding/json would also match "IV" for iv) and keeps
// the last of duplicate keys; then the MAC (HMAC-SHA256 over iv.value, hex)
// is checked in constant time or, for GCM, the tag; the value is decrypted,
// the PKCS#7 padding stripped, and the prefix
// hash_hmac('sha1', cookieName.'v2', key).'|' that binds the value to the
// cookie's name checked and stripped. The result must look like a Laravel
// session ID: 40 ASCII letters and digits.
//
// ok is false for anything else: a value encrypted with another key or for
// another cookie, tampered, truncated, or garbage. It never panics.
func (l *Laravel) SessionIDDecoded(cookieName, value string) (id string, ok bool) {
	if l == nil || len(value) == 0 || len(value) > MaxLaravelCookie {
		return "", false
	}
	plain, ok := l.decrypt(value)
	if !ok {
		return "", false
	}
	prefix := l.prefix(cookieName)
	if len(plain) < len(prefix) || subtle.ConstantTimeCompare(plain[:len(prefix)], prefix) != 1 {
		return "", false
	}
	sid := plain[len(prefix):]
	if !validLaravelID(sid) {
		return "", false
	}
	return string(sid), true
}

// decrypt undoes Encrypter::encrypt($value, false) on a cookie value as
// PHP decoded it.
func (l *Laravel) decrypt(value string) ([]byte, bool) {
	raw := phpBase64Decode(value)
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return nil, false
	}
	var p laravelPayload
	for key, dst := range map[string]**string{"iv": &p.IV, "value": &p.Value, "mac": &p.MAC, "tag": &p.Tag} {
		if v, ok := fields[key]; ok {
			var s string
			if json.Unmarshal(v, &s) != nil {
				return nil, false // not a string: PHP's checks fail on it too
			}
			*dst = &s
		}
	}
	if p.IV == nil || p.Value == nil || p.MAC == nil {
		return nil, false
	}
	iv, err := base64.StdEncoding.Strict().DecodeString(*p.IV)
	if err != nil {
		return nil, false
	}
	ct, err := base64.StdEncoding.DecodeString(*p.Value)
	if err != nil || len(ct) == 0 {
		return nil, false
	}
	if p.Tag != nil && *p.Tag != "" {
		return l.openGCM(iv, ct, *p.Tag)
	}
	return l.openCBC(iv, ct, *p.IV, *p.Value, *p.MAC)
}

// openCBC checks the MAC, then decrypts AES-CBC and removes the padding.
// The MAC is checked before any decryption, so there is no padding oracle.
func (l *Laravel) openCBC(iv, ct []byte, ivB64, valueB64, mac string) ([]byte, bool) {
	if len(iv) != aes.BlockSize || len(ct)%aes.BlockSize != 0 {
		return nil, false
	}
	h := hmac.New(sha256.New, l.key)
	h.Write([]byte(ivB64))
	h.Write([]byte(valueB64))
	var want [2 * sha256.Size]byte
	hex.Encode(want[:], h.Sum(nil))
	// PHP's hash_equals: exact, case-sensitive, constant time.
	if subtle.ConstantTimeCompare(want[:], []byte(mac)) != 1 {
		return nil, false
	}
	plain := make([]byte, len(ct))
	cipher.NewCBCDecrypter(l.block, iv).CryptBlocks(plain, ct)
	return unpad(plain)
}

// openGCM decrypts AES-GCM with its 16-byte tag, as Encrypter does for the
// aes-*-gcm ciphers (12-byte IV, no additional data, mac field empty).
func (l *Laravel) openGCM(iv, ct []byte, tagB64 string) ([]byte, bool) {
	tag, err := base64.StdEncoding.Strict().DecodeString(tagB64)
	if err != nil || len(tag) != 16 || len(iv) != 12 {
		return nil, false
	}
	aead, err := cipher.NewGCM(l.block)
	if err != nil {
		return nil, false
	}
	sealed := make([]byte, 0, len(ct)+len(tag))
	sealed = append(append(sealed, ct...), tag...)
	plain, err := aead.Open(sealed[:0], iv, sealed, nil)
	if err != nil {
		return nil, false
	}
	return plain, true
}

// unpad removes PKCS#7 padding, checking every padding byte.
func unpad(b []byte) ([]byte, bool) {
	if len(b) == 0 {
		return nil, false
	}
	n := int(b[len(b)-1])
	if n == 0 || n > aes.BlockSize || n > len(b) {
		return nil, false
	}
	if !bytes.Equal(b[len(b)-n:], bytes.Repeat([]byte{byte(n)}, n)) {
		return nil, false
	}
	return b[:len(b)-n], true
}

// prefix is CookieValuePrefix::create($cookieName, $key):
// hash_hmac('sha1', $cookieName.'v2', $key).'|'.
func (l *Laravel) prefix(cookieName string) []byte {
	h := hmac.New(sha1.New, l.key)
	h.Write([]byte(cookieName))
	h.Write([]byte("v2"))
	out := make([]byte, 2*sha1.Size+1)
	hex.Encode(out, h.Sum(nil))
	out[len(out)-1] = '|'
	return out
}

// phpBase64Decode is PHP's base64_decode($s) without strict: every byte
// outside the alphabet, '=' included, is skipped wherever it stands, and a
// last lone character is dropped.
func phpBase64Decode(s string) []byte {
	buf := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/' {
			buf = append(buf, c)
		}
	}
	if len(buf)%4 == 1 {
		buf = buf[:len(buf)-1]
	}
	out := make([]byte, base64.RawStdEncoding.DecodedLen(len(buf)))
	n, _ := base64.RawStdEncoding.Decode(out, buf) // cannot fail: alphabet only, no lone char
	return out[:n]
}

// validLaravelID is Illuminate\Session\Store::isValidId: 40 characters,
// all ASCII letters or digits.
func validLaravelID(id []byte) bool {
	if len(id) != laravelIDLen {
		return false
	}
	for _, c := range id {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}
