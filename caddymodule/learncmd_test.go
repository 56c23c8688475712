package caddymodule

import (
	"bytes"
	"crypto/rand"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"

	"github.com/idlegate/idlegate/learn"
)

// The learning proxy passes a request body on byte for byte, also past the
// 64 KiB it reads, and names the form fields of what it read.
func TestLearnerPassesBody(t *testing.T) {
	var got []byte
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, _ = io.ReadAll(r.Body)
		http.SetCookie(w, &http.Cookie{Name: "sid", Value: "secret-value-1", Path: "/"})
		w.WriteHeader(http.StatusFound)
	}))
	defer app.Close()
	target, _ := url.Parse(app.URL)
	l := &learner{rec: learn.NewRecorder("alice"), upstream: app.URL, done: make(chan struct{})}
	l.proxy = &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(target) }, ModifyResponse: l.record}
	front := httptest.NewServer(l)
	defer front.Close()

	pad := make([]byte, 100<<10)
	rand.Read(pad)
	body := append([]byte("user=alice&pw=x&pad="), []byte(url.QueryEscape(string(pad)))...)
	resp, err := http.Post(front.URL+"/login", "application/x-www-form-urlencoded", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if !bytes.Equal(got, body) {
		t.Fatalf("the app got %d bytes, want the %d sent, unchanged", len(got), len(body))
	}
	ex := l.rec.Exchanges()
	if len(ex) != 1 || len(ex[0].Form) < 2 || ex[0].Form[0].Name != "user" || !ex[0].Form[0].IsUser {
		t.Fatalf("recorded %+v", ex)
	}

	// The done path answers the suggestion and ends the run.
	resp, err = http.Get(front.URL + learnDonePath)
	if err != nil {
		t.Fatal(err)
	}
	text, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(text), "idle_session {") || strings.Contains(string(text), "secret-value") {
		t.Errorf("done: %d %s", resp.StatusCode, text)
	}
	select {
	case <-l.done:
	default:
		t.Error("done did not end the run")
	}
}

// The learner records the path the browser asked for, not the upstream's
// (an upstream URL with a path prefixes it), and leaves other bodies alone.
func TestLearnerRecordsInboundPath(t *testing.T) {
	var gotPath string
	var gotBody []byte
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotPath = r.URL.Path
		gotBody, _ = io.ReadAll(r.Body)
	}))
	defer app.Close()
	target, _ := url.Parse(app.URL + "/base")
	l := &learner{rec: learn.NewRecorder(""), upstream: target.String(), done: make(chan struct{})}
	l.proxy = &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(target) }, ModifyResponse: l.record}
	front := httptest.NewServer(l)
	defer front.Close()
	body := []byte("user=alice&\x00binary")
	resp, err := http.Post(front.URL+"/upload?x=1", "application/octet-stream", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if gotPath != "/base/upload" || !bytes.Equal(gotBody, body) {
		t.Fatalf("the app got %q %q", gotPath, gotBody)
	}
	ex := l.rec.Exchanges()
	if len(ex) != 1 || ex[0].Path != "/upload" || len(ex[0].Form) != 0 {
		t.Fatalf("recorded %+v", ex)
	}
}
