package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/idlegate/idlegate/storage"
)

// Defaults of Target and Options.
const (
	DefaultTimeout      = 10 * time.Second
	DefaultMaxAttempts  = 10
	DefaultConcurrency  = 8
	DefaultBaseBackoff  = time.Second
	DefaultMaxBackoff   = time.Hour
	DefaultPollInterval = time.Second
)

const (
	// maxDrain bounds how much of a response body is read (and discarded)
	// so the connection can be reused; a larger body costs the connection.
	maxDrain = 64 << 10
	// maxLastError bounds Event.LastError, in bytes.
	maxLastError = 200
	// storeTimeout bounds the outbox write that records an attempt's
	// outcome. It runs even when Run's context is done, so that a delivery
	// that succeeded is not sent again needlessly.
	storeTimeout = 5 * time.Second
	// parkReset is how often the set of events parked for lack of a target
	// is forgotten, so events that left the outbox some other way (another
	// instance sharing the store) do not linger in memory.
	parkReset = time.Minute
	// maxDueBatch bounds one Due call when it has to look past parked events.
	maxDueBatch = 1024
)

// errMalformed is an answer that is not HTTP.
var errMalformed = errors.New("malformed HTTP response")

// Target is where a zone's events go, as configured now.
type Target struct {
	// URL receives the POST requests.
	URL string
	// Key signs them: the decoded whsec_ secret (see ParseSecret).
	Key []byte
	// Timeout bounds one attempt, from connecting to reading the status
	// line and draining the body. Default: 10s.
	Timeout time.Duration
	// MaxAttempts is how many failed attempts move an event to the dead
	// letters. Default: 10.
	MaxAttempts int
}

// Targets returns the webhook configured for zone at the moment of the
// call, and false when the zone has none. The Worker asks it before every
// attempt, so an event queued under an old configuration goes to the
// webhook configured now, and fixing a URL redirects the retries that were
// waiting. It must be safe for concurrent use and fast: it is called with
// no lock held, but on the worker's polling path.
type Targets func(zone string) (Target, bool)

// Observer is told the outcome of every attempt; it feeds the metrics. Its
// methods are called from several goroutines at once and must not block.
type Observer interface {
	// Delivered reports an event the receiver accepted with 2xx; lag is
	// from the event (Event.At, the end of the session) to now. It is
	// reported even if removing the event from the outbox then fails (the
	// event will be delivered again: at least once).
	Delivered(e storage.Event, lag time.Duration)
	// Failed reports a failed attempt: e carries the new Attempts and
	// LastError. err is a *StatusError when the receiver answered.
	Failed(e storage.Event, err error)
	// Dead reports an event moved to the dead letters after its last
	// failed attempt (Failed was reported for that attempt first).
	Dead(e storage.Event)
}

// Options tune a Worker. The zero value is usable: every field has a
// default.
type Options struct {
	// Concurrency bounds the attempts in flight at once. A receiver that
	// hangs holds at most that many slots, each for at most its Timeout.
	// Default: 8.
	Concurrency int
	// Client sends the requests. The Worker uses a copy whose redirect
	// policy is replaced: redirects are never followed, because the
	// signature is not for a URL the operator did not configure, so a 3xx
	// answer is a failed attempt. Its Timeout, if any, applies on top of
	// Target.Timeout. Default: a client with its own connection pool of
	// Concurrency idle connections per host.
	Client *http.Client
	// Now is the clock: webhook-timestamp, due times, backoff and the lag.
	// Default: time.Now.
	Now func() time.Time
	// BaseBackoff is the backoff ceiling after the first failed attempt;
	// it doubles with every further failure. Default: 1s.
	BaseBackoff time.Duration
	// MaxBackoff caps the backoff and any Retry-After. Default: 1h.
	MaxBackoff time.Duration
	// Rand returns a number in [0, 1) for the jitter. Calls are
	// serialised. Default: math/rand/v2.Float64.
	Rand func() float64
	// Observer, when not nil, is told the outcome of every attempt.
	Observer Observer
	// Logger receives failed attempts (info), dead letters (warn) and
	// outbox errors (error). It never receives a URL, a secret or a
	// response body. Default: no logging.
	Logger *zap.Logger
	// PollInterval is how often the outbox is asked for due events when
	// nobody calls Kick. Default: 1s.
	PollInterval time.Duration
}

// Worker delivers the events of an outbox: it polls Outbox.Due, POSTs each
// event to its zone's current Target with Standard Webhooks headers, and
// records the outcome: Delivered on 2xx; otherwise Reschedule with
// exponential backoff and full jitter, honouring Retry-After as a minimum;
// Bury once Target.MaxAttempts attempts have failed.
//
// At most Options.Concurrency attempts run at once and an event is never
// attempted twice at the same time. Events whose zone has no target stay
// pending, untouched, until one is configured.
//
// Outbox errors are logged and the work retried on the next poll; a
// receiver can make an attempt fail but never the Worker crash.
type Worker struct {
	ob      storage.Outbox
	targets Targets
	o       Options
	client  *http.Client
	obs     Observer
	log     *zap.Logger

	kick    chan struct{}
	running atomic.Bool

	mu       sync.Mutex
	inflight map[string]struct{} // IDs being attempted
	// settled holds the IDs whose outcome was stored during the current
	// poll (by poll number). Due reads a snapshot that may predate that
	// write, so without this an event just delivered could be sent again.
	settled  map[string]uint64
	polls    uint64
	parked   map[string]string // ID → zone: due, but the zone has no target
	parkedAt time.Time         // when parked was last emptied

	randMu sync.Mutex
}

// NewWorker returns a Worker for ob that finds each zone's webhook with
// targets (nil: no zone has one). Start it with Run.
func NewWorker(ob storage.Outbox, targets Targets, o Options) *Worker {
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.BaseBackoff <= 0 {
		o.BaseBackoff = DefaultBaseBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	if o.Rand == nil {
		o.Rand = rand.Float64
	}
	if o.PollInterval <= 0 {
		o.PollInterval = DefaultPollInterval
	}
	w := &Worker{
		ob:       ob,
		targets:  targets,
		o:        o,
		obs:      o.Observer,
		log:      o.Logger,
		kick:     make(chan struct{}, 1),
		inflight: make(map[string]struct{}),
		settled:  make(map[string]uint64),
		parked:   make(map[string]string),
	}
	if w.targets == nil {
		w.targets = func(string) (Target, bool) { return Target{}, false }
	}
	if w.obs == nil {
		w.obs = nopObserver{}
	}
	if w.log == nil {
		w.log = zap.NewNop()
	}
	w.client = new(http.Client)
	if o.Client != nil {
		*w.client = *o.Client
	} else if dt, ok := http.DefaultTransport.(*http.Transport); ok {
		t := dt.Clone()
		t.MaxIdleConnsPerHost = o.Concurrency
		w.client.Transport = t
	}
	w.client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return w
}

// Kick asks the Worker to poll now rather than at the next PollInterval:
// call it after queueing events so that delivery starts within
// milliseconds. It never blocks, and kicks that arrive while one is
// pending coalesce into one poll.
func (w *Worker) Kick() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// Run delivers events until ctx is done, then returns once every attempt in
// flight has finished or been abandoned. An abandoned attempt leaves its
// event pending as it was (same Attempts, same NextAt): it is delivered
// again later, by this process or the next (at least once). A delivery that
// succeeded just before ctx was done is still recorded.
//
// Run polls once at the start, then on every Kick and every PollInterval.
// A Worker runs once at a time: a second concurrent Run returns at once.
func (w *Worker) Run(ctx context.Context) {
	if !w.running.CompareAndSwap(false, true) {
		w.log.Error("webhook worker is already running")
		return
	}
	defer w.running.Store(false)
	var wg sync.WaitGroup
	defer wg.Wait()

	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.kick:
		case <-t.C:
		}
		w.poll(ctx, &wg)
		t.Reset(w.o.PollInterval)
	}
}

// poll starts attempts for due events in the free slots.
func (w *Worker) poll(ctx context.Context, wg *sync.WaitGroup) {
	w.mu.Lock()
	w.polls++
	for id, n := range w.settled {
		if n < w.polls { // stored before this poll began: no snapshot of it shows the event any more
			delete(w.settled, id)
		}
	}
	free := w.o.Concurrency - len(w.inflight)
	w.mu.Unlock()
	if free <= 0 {
		return // a finishing attempt kicks
	}
	w.unpark()

	now := w.o.Now().UnixNano()
	limit := free
	for {
		evs, err := w.ob.Due(ctx, now, limit, w.skip)
		if err != nil {
			if ctx.Err() == nil {
				w.log.Error("reading the webhook outbox", zap.Error(err))
			}
			return
		}
		for _, e := range evs {
			t, ok := w.targets(e.Zone)
			if !ok {
				w.mu.Lock()
				w.parked[e.ID] = e.Zone
				w.mu.Unlock()
				continue
			}
			if free == 0 {
				continue // more than we asked for room; the next poll takes it
			}
			free--
			w.mu.Lock()
			w.inflight[e.ID] = struct{}{}
			w.mu.Unlock()
			wg.Add(1)
			go w.deliver(ctx, wg, e, t)
		}
		// Done when every slot is taken or nothing more is due.
		// Otherwise some events were just parked: look behind them, with
		// a larger batch in case there are many.
		if free == 0 || len(evs) < limit {
			return
		}
		limit = min(2*limit, maxDueBatch)
	}
}

// skip is the filter passed to Outbox.Due: events in flight and events
// parked for lack of a target.
func (w *Worker) skip(id string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.inflight[id]; ok {
		return true
	}
	if _, ok := w.settled[id]; ok {
		return true
	}
	_, ok := w.parked[id]
	return ok
}

// unpark releases parked events whose zone has a target now, and all of
// them every parkReset. Targets is called without the lock held.
func (w *Worker) unpark() {
	w.mu.Lock()
	if len(w.parked) == 0 || time.Since(w.parkedAt) >= parkReset {
		clear(w.parked)
		w.parkedAt = time.Now()
		w.mu.Unlock()
		return
	}
	zones := make(map[string]bool)
	for _, z := range w.parked {
		zones[z] = false
	}
	w.mu.Unlock()

	for z := range zones {
		_, zones[z] = w.targets(z)
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	for id, z := range w.parked {
		if zones[z] {
			delete(w.parked, id)
		}
	}
}

// deliver makes one attempt at e and records its outcome.
func (w *Worker) deliver(ctx context.Context, wg *sync.WaitGroup, e storage.Event, t Target) {
	defer wg.Done()
	defer func() {
		w.mu.Lock()
		delete(w.inflight, e.ID)
		w.settled[e.ID] = w.polls
		w.mu.Unlock()
		w.Kick() // a slot is free
	}()

	err := w.attempt(ctx, e, t)
	if err != nil && ctx.Err() != nil {
		return // abandoned: the event stays pending as it was
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	now := w.o.Now()
	log := w.log.With(zap.String("id", e.ID), zap.String("zone", e.Zone), zap.String("type", e.Type))

	if err == nil {
		if serr := w.ob.Delivered(sctx, e); serr != nil {
			log.Error("removing a delivered webhook from the outbox; it will be sent again", zap.Error(serr))
		}
		w.obs.Delivered(e, now.Sub(time.Unix(0, e.At)))
		log.Debug("webhook delivered", zap.Int("attempt", e.Attempts+1))
		return
	}

	e.Attempts++
	e.LastError = lastError(err)
	w.obs.Failed(e, err)
	maxAttempts := t.MaxAttempts
	if maxAttempts <= 0 {
		maxAttempts = DefaultMaxAttempts
	}
	if e.Attempts >= maxAttempts {
		if serr := w.ob.Bury(sctx, e); serr != nil {
			log.Error("moving a webhook to the dead letters", zap.Error(serr))
			return
		}
		w.obs.Dead(e)
		log.Warn("webhook failed for the last time; moved to the dead letters",
			zap.Int("attempts", e.Attempts), zap.String("error", e.LastError))
		return
	}
	delay := w.backoff(e.Attempts, err)
	e.NextAt = now.Add(delay).UnixNano()
	if serr := w.ob.Reschedule(sctx, e); serr != nil {
		log.Error("rescheduling a webhook", zap.Error(serr))
		return
	}
	log.Info("webhook attempt failed; will retry",
		zap.Int("attempts", e.Attempts), zap.String("error", e.LastError), zap.Duration("retry_in", delay))
}

// attempt POSTs e to t once. It returns nil on 2xx, a *StatusError for any
// other answer, and otherwise the transport error without the URL (which
// may carry a token).
func (w *Worker) attempt(ctx context.Context, e storage.Event, t Target) error {
	timeout := t.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	now := w.o.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.URL, bytes.NewReader(e.Body))
	if err != nil {
		return errors.New("invalid webhook URL")
	}
	// Header names are case-insensitive; Go sends them canonicalised
	// (Webhook-Id), HTTP/2 in lower case.
	req.Header.Set("webhook-id", e.ID)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
	req.Header.Set("webhook-signature", Sign(t.Key, e.ID, now, e.Body))
	req.Header.Set("content-type", "application/json")
	req.Header.Set("user-agent", "idlegate")

	resp, err := w.client.Do(req)
	if err != nil {
		if ue, ok := err.(*url.Error); ok {
			err = ue.Err
		}
		switch {
		case errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil:
			return fmt.Errorf("timeout after %s: %w", timeout, err)
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			return fmt.Errorf("connection closed without a response: %w", err)
		case strings.Contains(err.Error(), "malformed"):
			// net/http quotes the offending bytes; LastError is not the
			// place for what a receiver sent.
			return errMalformed
		}
		return err
	}
	// Read a bounded amount so the connection can be reused; the content
	// is never looked at.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	return &StatusError{
		StatusCode: resp.StatusCode,
		RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), now),
	}
}

type nopObserver struct{}

func (nopObserver) Delivered(storage.Event, time.Duration) {}
func (nopObserver) Failed(storage.Event, error)            {}
func (nopObserver) Dead(storage.Event)                     {}

// Interface guards.
var _ Observer = nopObserver{}
