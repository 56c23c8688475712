package webhook

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// StatusError is a failed attempt that the receiver answered: any status
// other than 2xx, including 3xx (redirects are not followed).
type StatusError struct {
	StatusCode int
	// RetryAfter is the delay the receiver asked for with Retry-After
	// (delta-seconds or HTTP-date), 0 when it did not.
	RetryAfter time.Duration
}

// Error returns the status, e.g. "HTTP 503 Service Unavailable".
func (e *StatusError) Error() string {
	if t := http.StatusText(e.StatusCode); t != "" {
		return "HTTP " + strconv.Itoa(e.StatusCode) + " " + t
	}
	return "HTTP " + strconv.Itoa(e.StatusCode)
}

// backoff is the delay before the next attempt after the attempts-th
// failure: full jitter, a uniform random delay up to
// min(MaxBackoff, BaseBackoff·2^(attempts−1)), but never less than the
// receiver's Retry-After (itself capped at MaxBackoff).
func (w *Worker) backoff(attempts int, err error) time.Duration {
	ceil := w.o.BaseBackoff
	for i := 1; i < attempts && ceil < w.o.MaxBackoff; i++ {
		if ceil > w.o.MaxBackoff/2 {
			ceil = w.o.MaxBackoff
			break
		}
		ceil *= 2
	}
	ceil = min(ceil, w.o.MaxBackoff)

	w.randMu.Lock()
	r := w.o.Rand()
	w.randMu.Unlock()
	d := time.Duration(r * float64(ceil))
	if d < 0 || d > ceil {
		d = ceil // a Rand outside [0, 1)
	}

	var se *StatusError
	if errors.As(err, &se) && se.RetryAfter > 0 {
		d = max(d, min(se.RetryAfter, w.o.MaxBackoff))
	}
	return d
}

// parseRetryAfter reads a Retry-After value, delta-seconds or an
// HTTP-date, as a delay from now. Anything else, and dates in the past,
// give 0.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseUint(v, 10, 64); err == nil {
		const maxSeconds = uint64(1<<63-1) / uint64(time.Second)
		return time.Duration(min(n, maxSeconds)) * time.Second
	} else if errors.Is(err, strconv.ErrRange) {
		return time.Duration(1<<63 - 1)
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// lastError is the Event.LastError of a failed attempt: the status or the
// error, at most maxLastError bytes of valid UTF-8.
func lastError(err error) string {
	s := err.Error()
	if len(s) > maxLastError {
		s = s[:maxLastError]
	}
	return strings.ToValidUTF8(s, "") // drops a rune cut in two
}

// Interface guards.
var _ error = (*StatusError)(nil)
