package webhook

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/idlegate/idlegate/storage"
)

// clock is a fake clock. It starts at the current second so that the
// Standard Webhooks library, which checks webhook-timestamp against the real
// clock with five minutes' tolerance, accepts our messages.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now().Truncate(time.Second)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// recorder is an Observer.
type recorder struct {
	mu        sync.Mutex
	delivered []storage.Event
	lags      []time.Duration
	failed    []storage.Event
	errs      []error
	dead      []storage.Event
}

func (r *recorder) Delivered(e storage.Event, lag time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.delivered = append(r.delivered, e)
	r.lags = append(r.lags, lag)
}

func (r *recorder) Failed(e storage.Event, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failed = append(r.failed, e)
	r.errs = append(r.errs, err)
}

func (r *recorder) Dead(e storage.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.dead = append(r.dead, e)
}

func (r *recorder) counts() (delivered, failed, dead int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.delivered), len(r.failed), len(r.dead)
}

// hit is a request a receiver got.
type hit struct {
	header http.Header
	body   []byte
}

// receiver is a real HTTP server that records requests and answers with
// respond (200 when nil).
type receiver struct {
	*httptest.Server
	mu      sync.Mutex
	hits    []hit
	respond func(n int, w http.ResponseWriter, r *http.Request) // n counts from 1
}

func newReceiver(t *testing.T, respond func(n int, w http.ResponseWriter, r *http.Request)) *receiver {
	rc := &receiver{respond: respond}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.hits = append(rc.hits, hit{r.Header.Clone(), body})
		n := len(rc.hits)
		rc.mu.Unlock()
		if rc.respond != nil {
			rc.respond(n, w, r)
		}
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) got() []hit {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]hit(nil), rc.hits...)
}

func (rc *receiver) n() int { return len(rc.got()) }

var testKey = []byte("0123456789abcdef0123456789abcdef") // testSecret decoded

// verify checks a hit with the Standard Webhooks reference library.
func verify(t *testing.T, h hit) {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Verify(h.body, h.header); err != nil {
		t.Errorf("signature of %s rejected by the reference library: %v", h.header.Get("webhook-id"), err)
	}
}

// staticTargets maps zones to targets and can be changed while running.
type staticTargets struct {
	mu sync.Mutex
	m  map[string]Target
}

func targetsOf(m map[string]Target) *staticTargets { return &staticTargets{m: m} }

func (s *staticTargets) get(zone string) (Target, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.m[zone]
	return t, ok
}

func (s *staticTargets) set(zone string, t Target) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[zone] = t
}

// start runs w until the test ends and returns a function that stops it
// and waits for Run to return.
func start(t *testing.T, w *Worker) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	stop = func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("Run did not return within 5s of cancel")
		}
	}
	t.Cleanup(stop)
	return stop
}

// eventually polls cond until it holds or 5s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func event(id, zone string, c *clock) storage.Event {
	now := c.Now()
	return storage.Event{
		ID: id, Zone: zone, Type: TypeSessionEnded,
		Body: []byte(`{"type":"session.ended","id":"` + id + `"}`),
		At:   now.Add(-90 * time.Second).UnixNano(), NextAt: now.UnixNano(),
	}
}

func opts(c *clock, r *recorder) Options {
	return Options{Now: c.Now, Observer: r, Rand: func() float64 { return 0 }, PollInterval: 20 * time.Millisecond}
}

func TestDeliverFirstTry(t *testing.T) {
	c, r, ob := newClock(), &recorder{}, &memOutbox{}
	rc := newReceiver(t, nil)
	e := event("msg_1", "z", c)
	ob.add(e)
	w := NewWorker(ob, targetsOf(map[string]Target{"z": {URL: rc.URL, Key: testKey}}).get, opts(c, r))
	start(t, w)
	eventually(t, "delivery", func() bool { p, _, _ := ob.counts(); return p == 0 })

	hits := rc.got()
	if len(hits) != 1 {
		t.Fatalf("%d requests, want 1", len(hits))
	}
	h := hits[0]
	verify(t, h)
	if string(h.body) != string(e.Body) {
		t.Errorf("body %s, want %s", h.body, e.Body)
	}
	for k, want := range map[string]string{
		"webhook-id":        "msg_1",
		"webhook-timestamp": fmt.Sprint(c.Now().Unix()),
		"content-type":      "application/json",
		"user-agent":        "idlegate",
	} {
		if got := h.header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if !strings.HasPrefix(h.header.Get("webhook-signature"), "v1,") {
		t.Errorf("webhook-signature = %q", h.header.Get("webhook-signature"))
	}
	d, f, dead := r.counts()
	if d != 1 || f != 0 || dead != 0 {
		t.Fatalf("observer: %d delivered, %d failed, %d dead", d, f, dead)
	}
	if r.lags[0] != 90*time.Second {
		t.Errorf("lag = %v, want 90s (now − Event.At)", r.lags[0])
	}
}

// TestRetryUntilSuccess: 500 three times, then 200: exactly four attempts,
// one webhook-id, increasing webhook-timestamp, each correctly signed.
func TestRetryUntilSuccess(t *testing.T) {
	c, r, ob := newClock(), &recorder{}, &memOutbox{}
	rc := newReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		c.Add(time.Second) // time passes between attempts
		if n <= 3 {
			w.WriteHeader(http.StatusInternalServerError)
		}
	})
	ob.add(event("msg_retry", "z", c))
	w := NewWorker(ob, targetsOf(map[string]Target{"z": {URL: rc.URL, Key: testKey}}).get, opts(c, r))
	start(t, w)
	eventually(t, "delivery", func() bool { d, _, _ := r.counts(); return d == 1 })

	hits := rc.got()
	if len(hits) != 4 {
		t.Fatalf("%d attempts, want 4", len(hits))
	}
	prev := int64(0)
	for i, h := range hits {
		verify(t, h)
		if id := h.header.Get("webhook-id"); id != "msg_retry" {
			t.Errorf("attempt %d: webhook-id %q", i+1, id)
		}
		var ts int64
		fmt.Sscan(h.header.Get("webhook-timestamp"), &ts)
		if ts <= prev {
			t.Errorf("attempt %d: webhook-timestamp %d not after %d", i+1, ts, prev)
		}
		prev = ts
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, e := range r.failed {
		if e.Attempts != i+1 || e.LastError != "HTTP 500 Internal Server Error" {
			t.Errorf("failure %d: attempts %d, last error %q", i+1, e.Attempts, e.LastError)
		}
	}
	if len(r.failed) != 3 || len(r.dead) != 0 {
		t.Errorf("%d failures, %d dead; want 3, 0", len(r.failed), len(r.dead))
	}
}

// waitAttempts waits until the pending event id has the given attempts.
func waitAttempts(t *testing.T, ob *memOutbox, id string, n int) storage.Event {
	t.Helper()
	var e storage.Event
	eventually(t, fmt.Sprintf("%s to have %d attempts", id, n), func() bool {
		var ok bool
		e, ok = ob.get(id)
		return ok && e.Attempts == n
	})
	return e
}

// waitPolls waits until the worker has asked the outbox twice more, so
// that anything it would do now has been done.
func waitPolls(t *testing.T, ob *memOutbox, w *Worker) {
	t.Helper()
	_, _, before := ob.counts()
	eventually(t, "two more polls", func() bool {
		w.Kick()
		_, _, n := ob.counts()
		return n >= before+2
	})
}

func testRetryAfter(t *testing.T, header func(now time.Time) string, want time.Duration) {
	c, r, ob := newClock(), &recorder{}, &memOutbox{}
	t0 := c.Now()
	rc := newReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n == 1 {
			w.Header().Set("Retry-After", header(t0))
			w.WriteHeader(http.StatusTooManyRequests)
		}
	})
	ob.add(event("msg_ra", "z", c))
	w := NewWorker(ob, targetsOf(map[string]Target{"z": {URL: rc.URL, Key: testKey}}).get, opts(c, r))
	start(t, w)

	e := waitAttempts(t, ob, "msg_ra", 1)
	if got := time.Duration(e.NextAt - t0.UnixNano()); got != want {
		t.Fatalf("rescheduled in %v, want %v (Retry-After as the minimum; jitter is 0)", got, want)
	}
	if e.LastError != "HTTP 429 Too Many Requests" {
		t.Errorf("last error %q", e.LastError)
	}
	// Not due yet: polls change nothing.
	c.Add(want - time.Second)
	waitPolls(t, ob, w)
	if n := rc.n(); n != 1 {
		t.Fatalf("%d attempts before Retry-After passed, want 1", n)
	}
	c.Add(time.Second)
	w.Kick()
	eventually(t, "delivery after Retry-After", func() bool { d, _, _ := r.counts(); return d == 1 })
	hits := rc.got()
	if ts := hits[1].header.Get("webhook-timestamp"); ts != fmt.Sprint(t0.Add(want).Unix()) {
		t.Errorf("second attempt at %s, want %d", ts, t0.Add(want).Unix())
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	testRetryAfter(t, func(time.Time) string { return "2" }, 2*time.Second)
}

func TestRetryAfterHTTPDate(t *testing.T) {
	testRetryAfter(t, func(now time.Time) string {
		return now.Add(90 * time.Second).UTC().Format(http.TimeFormat)
	}, 90*time.Second)
}

func TestDeadLetter(t *testing.T) {
	c, r, ob := newClock(), &recorder{}, &memOutbox{}
	rc := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	ob.add(event("msg_dead", "z", c))
	w := NewWorker(ob, targetsOf(map[string]Target{"z": {URL: rc.URL, Key: testKey, MaxAttempts: 3}}).get, opts(c, r))
	start(t, w)
	eventually(t, "dead letter", func() bool { _, dead, _ := ob.counts(); return dead == 1 })
	waitPolls(t, ob, w)

	if n := rc.n(); n != 3 {
		t.Fatalf("%d attempts, want MaxAttempts = 3", n)
	}
	dl, _ := ob.DeadLetters(context.Background(), 10)
	if dl[0].ID != "msg_dead" || dl[0].Attempts != 3 || dl[0].LastError != "HTTP 503 Service Unavailable" {
		t.Errorf("dead letter %+v", dl[0])
	}
	if d, f, dead := r.counts(); d != 0 || f != 3 || dead != 1 {
		t.Errorf("observer: %d delivered, %d failed, %d dead; want 0, 3, 1", d, f, dead)
	}
}

// TestHangingReceiver: a receiver that never answers holds one slot; the
// other events are delivered meanwhile, the hanging event is attempted
// once at a time, Kick never blocks, and cancelling Run abandons the
// attempt promptly, leaving the event pending as it was.
func TestHangingReceiver(t *testing.T) {
	c, r, ob := newClock(), &recorder{}, &memOutbox{}
	release := make(chan struct{})
	var hanging atomic.Int32
	slow := newReceiver(t, func(_ int, w http.ResponseWriter, req *http.Request) {
		hanging.Add(1)
		defer hanging.Add(-1)
		select {
		case <-release:
		case <-req.Context().Done():
		}
	})
	defer close(release)
	fast := newReceiver(t, nil)
	ob.add(event("msg_0slow", "slow", c))
	for i := range 20 {
		ob.add(event(fmt.Sprintf("msg_fast%02d", i), "fast", c))
	}
	o := opts(c, r)
	o.Concurrency = 2
	o.PollInterval = time.Millisecond
	w := NewWorker(ob, targetsOf(map[string]Target{
		"slow": {URL: slow.URL, Key: testKey, Timeout: time.Minute},
		"fast": {URL: fast.URL, Key: testKey},
	}).get, o)
	stop := start(t, w)

	eventually(t, "fast events delivered", func() bool { return fast.n() == 20 })
	if hanging.Load() != 1 || slow.n() != 1 {
		t.Fatalf("slow receiver: %d hanging, %d requests; want one attempt, still hanging", hanging.Load(), slow.n())
	}
	waitPolls(t, ob, w) // polls while the slot is taken do not start a second attempt
	if slow.n() != 1 {
		t.Fatalf("%d concurrent attempts of the same event", slow.n())
	}

	t0 := time.Now()
	for range 10000 {
		w.Kick()
	}
	if d := time.Since(t0); d > time.Second {
		t.Errorf("10000 Kicks took %v", d)
	}

	t0 = time.Now()
	stop()
	if d := time.Since(t0); d > time.Second {
		t.Errorf("Run took %v to stop", d)
	}
	e, ok := ob.get("msg_0slow")
	if !ok || e.Attempts != 0 || e.LastError != "" || e.NextAt != c.Now().UnixNano() {
		t.Errorf("abandoned event %+v (pending %v); want it untouched", e, ok)
	}
	if _, f, _ := r.counts(); f != 0 {
		t.Errorf("an abandoned attempt was reported as failed")
	}
}

func TestAttemptTimeout(t *testing.T) {
	c, r, ob := newClock(), &recorder{}, &memOutbox{}
	slow := newReceiver(t, func(_ int, _ http.ResponseWriter, req *http.Request) {
		<-req.Context().Done()
	})
	ob.add(event("msg_slow", "z", c))
	w := NewWorker(ob, targetsOf(map[string]Target{"z": {URL: slow.URL, Key: testKey, Timeout: 100 * time.Millisecond, MaxAttempts: 1}}).get, opts(c, r))
	t0 := time.Now()
	start(t, w)
	eventually(t, "dead letter", func() bool { _, dead, _ := ob.counts(); return dead == 1 })
	if d := time.Since(t0); d > 2*time.Second {
		t.Errorf("a 100ms attempt took %v", d)
	}
	dl, _ := ob.DeadLetters(context.Background(), 1)
	if !strings.HasPrefix(dl[0].LastError, "timeout after 100ms") {
		t.Errorf("last error %q", dl[0].LastError)
	}
}

// rawServer accepts connections and hands each to serve.
func rawServer(t *testing.T, serve func(net.Conn)) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer conn.Close(); serve(conn) }()
		}
	}()
	return "http://" + ln.Addr().String() + "/hook"
}

// TestBadReceivers: garbage, a closed connection, a redirect, nothing
// listening, an invalid URL: each is a failed attempt, none a crash, and
// LastError stays short and names no URL.
func TestBadReceivers(t *testing.T) {
	redirected := newReceiver(t, nil)
	redirect := newReceiver(t, func(_ int, w http.ResponseWriter, req *http.Request) {
		http.Redirect(w, req, redirected.URL, http.StatusTemporaryRedirect)
	})
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedURL := "http://" + closed.Addr().String() + "/hook"
	closed.Close()

	readRequest := func(conn net.Conn) {
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 4096)
		conn.Read(buf)
	}
	urls := map[string]string{
		"garbage": rawServer(t, func(conn net.Conn) {
			readRequest(conn)
			io.WriteString(conn, strings.Repeat("\x00garbage\xff", 1000)+"\r\n\r\n")
		}),
		"hangup": rawServer(t, func(conn net.Conn) { readRequest(conn) }),
		"half": rawServer(t, func(conn net.Conn) {
			readRequest(conn)
			io.WriteString(conn, "HTTP/1.1 500 Oops\r\nContent-Length: 100000\r\n\r\npartial")
		}),
		"redirect": redirect.URL,
		"refused":  closedURL,
		"invalid":  "http://[::1:bad/?token=SECRET",
	}
	c, r, ob := newClock(), &recorder{}, &memOutbox{}
	tg := targetsOf(map[string]Target{})
	for name, u := range urls {
		tg.set(name, Target{URL: u, Key: testKey, MaxAttempts: 1, Timeout: 2 * time.Second})
		ob.add(event("msg_"+name, name, c))
	}
	w := NewWorker(ob, tg.get, opts(c, r))
	start(t, w)
	eventually(t, "every event dead", func() bool { _, dead, _ := ob.counts(); return dead == len(urls) })

	dl, _ := ob.DeadLetters(context.Background(), 100)
	for _, e := range dl {
		t.Logf("%s: %s", e.Zone, e.LastError)
		if e.LastError == "" || len(e.LastError) > 200 || !utf8.ValidString(e.LastError) {
			t.Errorf("%s: last error %q", e.Zone, e.LastError)
		}
		if strings.Contains(e.LastError, "SECRET") || strings.Contains(e.LastError, "/hook") {
			t.Errorf("%s: last error %q reveals the URL", e.Zone, e.LastError)
		}
		if want := map[string]string{
			"garbage":  "malformed HTTP response",
			"hangup":   "connection closed without a response: EOF",
			"half":     "HTTP 500 Internal Server Error",
			"redirect": "HTTP 307 Temporary Redirect",
			"invalid":  "invalid webhook URL",
		}[e.Zone]; want != "" && e.LastError != want {
			t.Errorf("%s: last error %q, want %q", e.Zone, e.LastError, want)
		}
	}
	if redirected.n() != 0 {
		t.Errorf("the redirect was followed")
	}
}

// TestLargeResponseBody: a 2xx answer with a large body is a success; the
// worker reads at most 64 KiB of it.
func TestLargeResponseBody(t *testing.T) {
	c, r, ob := newClock(), &recorder{}, &memOutbox{}
	var written atomic.Int64
	rc := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		chunk := make([]byte, 16<<10)
		for range 1024 { // 16 MiB
			n, err := w.Write(chunk)
			written.Add(int64(n))
			if err != nil {
				return
			}
		}
	})
	ob.add(event("msg_big", "z", c))
	w := NewWorker(ob, targetsOf(map[string]Target{"z": {URL: rc.URL, Key: testKey}}).get, opts(c, r))
	start(t, w)
	eventually(t, "delivery", func() bool { d, _, _ := r.counts(); return d == 1 })
	if n := written.Load(); n >= 16<<20 {
		t.Errorf("the whole %d-byte body was read", n)
	}
}

// TestNoTarget: an event whose zone has no webhook stays pending untouched
// and does not hold up later events; configuring the zone delivers it.
func TestNoTarget(t *testing.T) {
	c, r, ob := newClock(), &recorder{}, &memOutbox{}
	rc := newReceiver(t, nil)
	for i := range 5 {
		e := event(fmt.Sprintf("msg_orphan%d", i), "orphan", c)
		e.NextAt -= int64(time.Minute) // due before the others
		ob.add(e)
	}
	ob.add(event("msg_ok", "z", c))
	tg := targetsOf(map[string]Target{"z": {URL: rc.URL, Key: testKey}})
	o := opts(c, r)
	o.Concurrency = 1
	w := NewWorker(ob, tg.get, o)
	start(t, w)
	eventually(t, "the configured zone's event", func() bool { d, _, _ := r.counts(); return d == 1 })
	waitPolls(t, ob, w)
	for i := range 5 {
		e, ok := ob.get(fmt.Sprintf("msg_orphan%d", i))
		if !ok || e.Attempts != 0 || e.NextAt != c.Now().Add(-time.Minute).UnixNano() {
			t.Fatalf("orphan %d: %+v (pending %v); want it untouched", i, e, ok)
		}
	}
	if rc.n() != 1 {
		t.Fatalf("%d requests, want 1", rc.n())
	}
	tg.set("orphan", Target{URL: rc.URL, Key: testKey})
	w.Kick()
	eventually(t, "orphans delivered", func() bool { d, _, _ := r.counts(); return d == 6 })
}

// TestTargetChanged: the URL is looked up at every attempt, so a fixed
// configuration receives the retries.
func TestTargetChanged(t *testing.T) {
	c, r, ob := newClock(), &recorder{}, &memOutbox{}
	wrong := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNotFound) })
	right := newReceiver(t, nil)
	tg := targetsOf(map[string]Target{"z": {URL: wrong.URL, Key: testKey}})
	ob.add(event("msg_move", "z", c))
	o := opts(c, r)
	o.Rand = func() float64 { return 0.5 }
	w := NewWorker(ob, tg.get, o)
	start(t, w)
	e := waitAttempts(t, ob, "msg_move", 1)
	if want := c.Now().Add(500 * time.Millisecond).UnixNano(); e.NextAt != want {
		t.Errorf("NextAt = +%v, want +500ms (half of BaseBackoff)", time.Duration(e.NextAt-c.Now().UnixNano()))
	}
	tg.set("z", Target{URL: right.URL, Key: testKey})
	c.Add(time.Second)
	w.Kick()
	eventually(t, "delivery to the new URL", func() bool { return right.n() == 1 })
	if wrong.n() != 1 {
		t.Errorf("old URL got %d requests, want 1", wrong.n())
	}
	verify(t, right.got()[0])
}

// TestStoreErrors: a failing outbox is logged and retried; nothing panics
// and the event is delivered once the store recovers.
func TestStoreErrors(t *testing.T) {
	c, r, ob := newClock(), &recorder{}, &memOutbox{failDue: 3, failWrite: 1}
	rc := newReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n == 1 {
			w.WriteHeader(http.StatusBadGateway)
		}
	})
	ob.add(event("msg_store", "z", c))
	core, logs := observer.New(zapcore.DebugLevel)
	o := opts(c, r)
	o.Logger = zap.New(core)
	w := NewWorker(ob, targetsOf(map[string]Target{"z": {URL: rc.URL, Key: testKey}}).get, o)
	start(t, w)
	eventually(t, "delivery", func() bool { p, _, _ := ob.counts(); return p == 0 })
	if n := logs.FilterMessage("reading the webhook outbox").Len(); n != 3 {
		t.Errorf("%d Due errors logged, want 3", n)
	}
	if n := logs.FilterMessage("rescheduling a webhook").Len(); n != 1 {
		t.Errorf("%d Reschedule errors logged, want 1", n)
	}
	// The failed Reschedule left the event as it was: the retry counts
	// from the stored state.
	if rc.n() != 2 {
		t.Errorf("%d attempts, want 2", rc.n())
	}
}

func TestRunStopsWhenIdle(t *testing.T) {
	w := NewWorker(&memOutbox{}, targetsOf(nil).get, Options{PollInterval: time.Hour})
	stop := start(t, w)
	w.Kick()
	t0 := time.Now()
	stop()
	if d := time.Since(t0); d > time.Second {
		t.Errorf("Run took %v to stop", d)
	}
}

func TestBackoff(t *testing.T) {
	rnd := 0.999999
	w := NewWorker(&memOutbox{}, nil, Options{
		BaseBackoff: time.Second, MaxBackoff: time.Minute,
		Rand: func() float64 { return rnd },
	})
	for _, tc := range []struct {
		attempts   int
		retryAfter time.Duration
		want       time.Duration // ≈ ceiling with rnd ≈ 1
	}{
		{1, 0, time.Second},
		{2, 0, 2 * time.Second},
		{3, 0, 4 * time.Second},
		{6, 0, 32 * time.Second},
		{7, 0, time.Minute},
		{1000, 0, time.Minute},
		{1, 10 * time.Second, 10 * time.Second},
		{7, 10 * time.Second, time.Minute},
		{1, time.Hour, time.Minute}, // Retry-After capped too
	} {
		var err error = &StatusError{StatusCode: 503, RetryAfter: tc.retryAfter}
		got := w.backoff(tc.attempts, err)
		if got > tc.want || got < tc.want-tc.want/1000 {
			t.Errorf("backoff(%d, Retry-After %v) = %v, want ≈ %v", tc.attempts, tc.retryAfter, got, tc.want)
		}
	}
	rnd = 0
	if got := w.backoff(5, nil); got != 0 {
		t.Errorf("full jitter with Rand 0: %v, want 0", got)
	}
	rnd = 0.25
	if got := w.backoff(3, nil); got != time.Second {
		t.Errorf("backoff(3) with Rand 0.25 = %v, want 1s", got)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 21, 9, 30, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"":                                 0,
		"0":                                0,
		"120":                              2 * time.Minute,
		" 5 ":                              5 * time.Second,
		"-5":                               0,
		"1.5":                              0,
		"soon":                             0,
		"99999999999999999999999":          time.Duration(1<<63 - 1),
		"Sat, 21 Nov 2026 09:31:00 GMT":    time.Minute,
		"Sat, 21 Nov 2026 09:29:00 GMT":    0,                // in the past
		"Saturday, 21-Nov-26 09:30:30 GMT": 30 * time.Second, // RFC 850
	} {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestLastError(t *testing.T) {
	long := strings.Repeat("é", 150) // 300 bytes
	got := lastError(errorString(long))
	if len(got) > 200 || !utf8.ValidString(got) || len(got) < 198 {
		t.Errorf("lastError: %d bytes, valid %v", len(got), utf8.ValidString(got))
	}
}

// racyOutbox reproduces a store whose Due reads a snapshot (a read
// transaction) that began before a concurrent attempt's outcome was stored:
// the Due call it is told to hold takes its snapshot, then waits until the
// attempt has settled, and only then applies skip.
type racyOutbox struct {
	*memOutbox
	hold    chan chan struct{} // a Due call receives from it: take the snapshot, then wait
	settled func() bool
	calls   atomic.Int32
}

func (s *racyOutbox) Due(ctx context.Context, now int64, limit int, skip func(string) bool) ([]storage.Event, error) {
	s.calls.Add(1)
	snap, err := s.memOutbox.Due(ctx, now, limit, nil)
	if err != nil {
		return nil, err
	}
	select {
	case ack := <-s.hold:
		for !s.settled() {
			time.Sleep(time.Millisecond)
		}
		defer close(ack)
	default:
	}
	var out []storage.Event
	for _, e := range snap {
		if skip == nil || !skip(e.ID) {
			out = append(out, e)
		}
	}
	return out, nil
}

func TestDeliveredEventIsNotResentFromAnOlderSnapshot(t *testing.T) {
	c, r := newClock(), &recorder{}
	release := make(chan struct{})
	rc := newReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n == 1 {
			<-release // the first attempt is in flight while the next poll snapshots
		}
	})
	ob := &racyOutbox{memOutbox: &memOutbox{}, hold: make(chan chan struct{}, 1)}
	var w *Worker
	ob.settled = func() bool {
		if p, _, _ := ob.counts(); p != 0 {
			return false
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		return len(w.inflight) == 0
	}
	ob.add(event("msg_1", "z", c))
	w = NewWorker(ob, targetsOf(map[string]Target{"z": {URL: rc.URL, Key: testKey}}).get, opts(c, r))
	start(t, w)
	eventually(t, "the first attempt", func() bool { return rc.n() == 1 })

	ack := make(chan struct{})
	ob.hold <- ack // the next poll snapshots msg_1 as pending...
	w.Kick()
	eventually(t, "the poll to take its snapshot", func() bool { return len(ob.hold) == 0 })
	close(release) // ...then the delivery completes and is stored
	<-ack
	// Polls run one at a time: once a later one has called Due, the racing
	// poll has dispatched whatever it was going to; then let that finish.
	k := ob.calls.Load()
	w.Kick()
	eventually(t, "a later poll", func() bool { return ob.calls.Load() > k })
	eventually(t, "attempts in flight to finish", func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return len(w.inflight) == 0
	})
	if n := rc.n(); n != 1 {
		t.Fatalf("msg_1 was sent %d times: a poll whose snapshot predates the stored delivery sent it again", n)
	}
}
