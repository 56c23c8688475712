package tests

// Waiting with deadlines, and an HTTP client that behaves like a test needs
// rather than like a browser: no redirects followed, no cookie jar.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Eventually calls fn every interval until it returns nil, and fails t with
// fn's last error once timeout has passed.
func Eventually(t testing.TB, timeout, interval time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not true within %s: %v", timeout, err)
		}
		<-tick.C
	}
}

// Consistently calls fn every interval for the whole of d and fails t the
// first time it returns an error. It is for "and nothing else happens":
// exactly one webhook, the process stays up.
func Consistently(t testing.TB, d, interval time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if err := fn(); err != nil {
			t.Fatalf("stopped holding after %s of %s: %v", d-time.Until(deadline), d, err)
		}
		if time.Now().After(deadline) {
			return
		}
		<-tick.C
	}
}

// Client sends requests to one base URL. It never follows redirects and has
// no cookie jar: tests put the Cookie header on each request themselves, so
// they can replay old values. Keep-alives are off, so a restarted Caddy
// never meets a stale connection.
type Client struct {
	Base string
	HC   *http.Client
}

// NewClient returns a Client for base (e.g. "http://127.0.0.1:8080").
func NewClient(base string) *Client {
	return &Client{
		Base: strings.TrimRight(base, "/"),
		HC: &http.Client{
			Timeout:       15 * time.Second,
			Transport:     &http.Transport{Proxy: nil, DisableKeepAlives: true},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

// ReqOption shapes one request.
type ReqOption func(*http.Request)

// WithCookie adds name=value to the Cookie header.
func WithCookie(name, value string) ReqOption {
	return func(r *http.Request) { r.AddCookie(&http.Cookie{Name: name, Value: value}) }
}

// WithRawCookie sets the Cookie header verbatim (duplicates, junk).
func WithRawCookie(raw string) ReqOption {
	return func(r *http.Request) { r.Header.Set("Cookie", raw) }
}

// WithHeader sets a request header.
func WithHeader(key, value string) ReqOption {
	return func(r *http.Request) { r.Header.Set(key, value) }
}

// Navigation marks the request as a browser's top-level navigation.
func Navigation() ReqOption {
	return func(r *http.Request) {
		r.Header.Set("Sec-Fetch-Mode", "navigate")
		r.Header.Set("Sec-Fetch-Dest", "document")
		r.Header.Set("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
	}
}

// XHR marks the request as a script's JSON call.
func XHR() ReqOption {
	return func(r *http.Request) {
		r.Header.Set("Sec-Fetch-Mode", "cors")
		r.Header.Set("X-Requested-With", "XMLHttpRequest")
		r.Header.Set("Accept", "application/json")
	}
}

// Response is a fully read response.
type Response struct {
	StatusCode int
	Header     http.Header
	Body       []byte
	At         time.Time // when the response was read
}

// wallNow is the time on the wall clock alone, without Go's monotonic
// reading. idlegate's deadlines and grace periods, and the times and
// durations its webhooks report, run on the wall clock, so a test that
// compares them with times of its own must take those from the wall clock
// too. The two clocks part when the machine is paused and resumed (a VM on
// a busy host): the monotonic clock does not count the pause, and the
// wall clock is stepped forward over it afterwards.
func wallNow() time.Time { return time.Now().Round(0) }

// Do sends the request and fails t on a transport error.
func (c *Client) Do(t testing.TB, method, path string, opts ...ReqOption) *Response {
	t.Helper()
	resp, err := c.Try(method, path, opts...)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp
}

// Get is Do with GET.
func (c *Client) Get(t testing.TB, path string, opts ...ReqOption) *Response {
	t.Helper()
	return c.Do(t, http.MethodGet, path, opts...)
}

// Post is Do with POST and an empty body.
func (c *Client) Post(t testing.TB, path string, opts ...ReqOption) *Response {
	t.Helper()
	return c.Do(t, http.MethodPost, path, opts...)
}

// Try sends the request and returns transport errors.
func (c *Client) Try(method, path string, opts ...ReqOption) (*Response, error) {
	req, err := http.NewRequest(method, c.Base+path, nil)
	if err != nil {
		return nil, err
	}
	for _, o := range opts {
		o(req)
	}
	resp, err := c.HC.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return &Response{StatusCode: resp.StatusCode, Header: resp.Header, Body: body, At: wallNow()}, nil
}

// SetCookie is the response's Set-Cookie for name, or nil.
func (r *Response) SetCookie(name string) *http.Cookie {
	for _, line := range r.Header.Values("Set-Cookie") {
		if c, err := http.ParseSetCookie(line); err == nil && c.Name == name {
			return c
		}
	}
	return nil
}

// ClearsCookie reports whether the response deletes cookie name
// (Max-Age=0 or negative, or Expires in the past).
func (r *Response) ClearsCookie(name string) bool {
	c := r.SetCookie(name)
	if c == nil {
		return false
	}
	return c.MaxAge < 0 || (!c.Expires.IsZero() && c.Expires.Before(time.Now()))
}

// JSON decodes the body into v and fails t if it is not JSON.
func (r *Response) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("response body is not JSON (%v): %q", err, r.Body)
	}
}

func (r *Response) String() string {
	return fmt.Sprintf("%d %v %q", r.StatusCode, r.Header, r.Body)
}

// RawHTTP writes raw to addr as is (header bytes the Go client refuses to
// send: NUL, bare CR, ...) and reads one response.
func RawHTTP(addr string, raw []byte) (*http.Response, []byte, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, nil, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := conn.Write(raw); err != nil {
		return nil, nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body, nil
}
