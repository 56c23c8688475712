package tests

// Receiver: the application's webhook endpoint, checking every delivery with
// the Standard Webhooks reference library, not with code of ours.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// TestSecret is the webhook secret of every test Caddyfile.
const TestSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// SessionData is the "data" of session.ended and session.started (docs/design.md).
// Times are parsed from RFC 3339; docs/design.md's example has whole seconds.
type SessionData struct {
	Session         string    `json:"session"`
	Zone            string    `json:"zone"`
	User            string    `json:"user"` // "" when JSON null (anonymous)
	Reason          string    `json:"reason"`
	StartedAt       time.Time `json:"started_at"`
	LastActivityAt  time.Time `json:"last_activity_at"`
	EndedAt         time.Time `json:"ended_at"`
	DurationSeconds float64   `json:"duration_seconds"`
	Requests        int       `json:"requests"`
}

// Event is one webhook message, counted once however often it was sent.
type Event struct {
	ID         string // webhook-id
	Type       string
	Timestamp  time.Time // the payload's "timestamp"
	Data       SessionData
	Raw        json.RawMessage // the whole body
	ReceivedAt time.Time       // first delivery answered 2xx
	Deliveries int             // deliveries answered 2xx (more than 1: redelivered after success)
	Attempts   int             // every verified attempt, failed ones included
}

// Attempt is one verified request, whatever the Receiver answered.
type Attempt struct {
	ID        string
	Type      string
	At        time.Time
	Timestamp string // webhook-timestamp header
	Status    int    // what the Receiver answered (0: hung up or garbage)
}

type receiverMode int

const (
	modeOK receiverMode = iota
	modeFail
	modeHang
	modeGarbage
)

// Receiver is a webhook endpoint on 127.0.0.1.
type Receiver struct {
	URL    string // base URL; Caddyfiles post to URL + "/hook"
	Secret string

	srv *httptest.Server
	wh  *standardwebhooks.Webhook

	mu         sync.Mutex
	mode       receiverMode
	failStatus int
	retryAfter string
	release    chan struct{} // closed to let hanging handlers go
	events     []*Event
	byID       map[string]*Event
	attempts   []Attempt
	invalid    []string // why each invalid request was refused
}

// NewReceiver starts a Receiver that verifies with TestSecret and answers
// 200. It closes when t ends.
func NewReceiver(t testing.TB) *Receiver {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(TestSecret)
	if err != nil {
		t.Fatal(err)
	}
	r := &Receiver{Secret: TestSecret, wh: wh, byID: map[string]*Event{}, release: make(chan struct{})}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve)) // 127.0.0.1:0
	r.URL = r.srv.URL
	t.Cleanup(func() {
		r.mu.Lock()
		close(r.release)
		r.release = nil
		r.mu.Unlock()
		r.srv.Close()
		if t.Failed() {
			t.Logf("receiver: %s", r.Summary())
		}
	})
	return r
}

// Hook is the URL to configure as the webhook.
func (r *Receiver) Hook() string { return r.URL + "/hook" }

func (r *Receiver) setMode(m receiverMode, status int, retryAfter string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mode == modeHang && m != modeHang && r.release != nil {
		close(r.release)
		r.release = make(chan struct{})
	}
	r.mode, r.failStatus, r.retryAfter = m, status, retryAfter
}

// Succeed makes the Receiver answer 200 (the default).
func (r *Receiver) Succeed() { r.setMode(modeOK, 0, "") }

// Fail makes the Receiver answer status, with Retry-After when retryAfter
// is not empty.
func (r *Receiver) Fail(status int, retryAfter string) { r.setMode(modeFail, status, retryAfter) }

// Hang makes the Receiver read the request and never answer (until the
// sender gives up, the mode changes or the test ends).
func (r *Receiver) Hang() { r.setMode(modeHang, 0, "") }

// Garbage makes the Receiver answer bytes that are not HTTP, then hang up.
func (r *Receiver) Garbage() { r.setMode(modeGarbage, 0, "") }

func (r *Receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return
	}
	now := time.Now()
	if req.Method != http.MethodPost {
		r.refuse(w, fmt.Sprintf("%s %s: method", req.Method, req.URL.Path))
		return
	}
	if err := r.wh.Verify(body, req.Header); err != nil {
		r.refuse(w, fmt.Sprintf("%s: %v", req.Header.Get("webhook-id"), err))
		return
	}
	var msg struct {
		Type      string          `json:"type"`
		Timestamp time.Time       `json:"timestamp"`
		Data      json.RawMessage `json:"data"`
	}
	var data SessionData
	if err := json.Unmarshal(body, &msg); err != nil || msg.Type == "" {
		r.refuse(w, fmt.Sprintf("signed body is not an event (%v): %q", err, body))
		return
	}
	if err := json.Unmarshal(msg.Data, &data); err != nil {
		r.refuse(w, fmt.Sprintf("signed body's data does not parse (%v): %q", err, body))
		return
	}
	id := req.Header.Get("webhook-id")

	r.mu.Lock()
	mode, failStatus, retryAfter, release := r.mode, r.failStatus, r.retryAfter, r.release
	status := 0
	switch mode {
	case modeOK:
		status = http.StatusOK
	case modeFail:
		status = failStatus
	}
	r.attempts = append(r.attempts, Attempt{ID: id, Type: msg.Type, At: now, Timestamp: req.Header.Get("webhook-timestamp"), Status: status})
	ev := r.byID[id]
	if ev == nil {
		ev = &Event{ID: id, Type: msg.Type, Timestamp: msg.Timestamp, Data: data, Raw: body}
		r.byID[id] = ev
	}
	ev.Attempts++
	if mode == modeOK {
		if ev.Deliveries == 0 {
			ev.ReceivedAt = now
			r.events = append(r.events, ev)
		}
		ev.Deliveries++
	}
	r.mu.Unlock()

	switch mode {
	case modeOK:
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, `{"ok":true}`)
	case modeFail:
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		w.WriteHeader(failStatus)
		io.WriteString(w, "failing on purpose\n")
	case modeHang:
		select {
		case <-req.Context().Done():
		case <-release:
		}
		// Hang up without an answer: returning would send an implicit
		// 200, a success for an attempt this Receiver did not count.
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			conn.Close()
		}
	case modeGarbage:
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		buf.WriteString("\x00\x17garbage, not HTTP\xff\xfe\r\n\r\n")
		buf.Flush()
		conn.Close()
	}
}

func (r *Receiver) refuse(w http.ResponseWriter, why string) {
	r.mu.Lock()
	r.invalid = append(r.invalid, why)
	r.mu.Unlock()
	http.Error(w, "invalid webhook: "+why, http.StatusBadRequest)
}

// Events are the distinct events delivered with a 2xx answer, in order of
// first delivery.
func (r *Receiver) Events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Event, len(r.events))
	for i, e := range r.events {
		out[i] = *e
	}
	return out
}

// Attempts are all verified requests in arrival order, failed ones included.
func (r *Receiver) Attempts() []Attempt {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Attempt(nil), r.attempts...)
}

// Invalid lists the requests whose signature (or body) did not verify.
func (r *Receiver) Invalid() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.invalid...)
}

// WaitEvents waits until at least n distinct events have been delivered and
// returns them all.
func (r *Receiver) WaitEvents(t testing.TB, n int, timeout time.Duration) []Event {
	t.Helper()
	Eventually(t, timeout, 20*time.Millisecond, func() error {
		if got := len(r.Events()); got < n {
			return fmt.Errorf("receiver has %d of %d events (%s)", got, n, r.Summary())
		}
		return nil
	})
	return r.Events()
}

// WaitAttempts waits until at least n verified attempts have arrived.
func (r *Receiver) WaitAttempts(t testing.TB, n int, timeout time.Duration) []Attempt {
	t.Helper()
	Eventually(t, timeout, 20*time.Millisecond, func() error {
		if got := len(r.Attempts()); got < n {
			return fmt.Errorf("receiver has %d of %d attempts (%s)", got, n, r.Summary())
		}
		return nil
	})
	return r.Attempts()
}

// Summary describes what the Receiver has seen, for failure messages.
func (r *Receiver) Summary() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "%d events, %d attempts, %d invalid", len(r.events), len(r.attempts), len(r.invalid))
	for _, e := range r.events {
		fmt.Fprintf(&b, "\n  event %s %s deliveries=%d attempts=%d %s", e.ID, e.Type, e.Deliveries, e.Attempts, e.Raw)
	}
	for _, why := range r.invalid {
		fmt.Fprintf(&b, "\n  invalid: %s", why)
	}
	return b.String()
}
