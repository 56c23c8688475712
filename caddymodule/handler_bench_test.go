package caddymodule

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/idlegate/idlegate/engine"
	"github.com/idlegate/idlegate/idletrack"
	"github.com/idlegate/idlegate/sessioncookie"
	"github.com/idlegate/idlegate/storage"
)

// benchHandler returns a handler on a real bbolt store and engine, built
// without a Caddy context (as Provision would leave it), and n cookie
// values of sessions it tracks as established.
func benchHandler(b *testing.B, n int) (*Handler, []string) {
	b.Helper()
	st, err := storage.OpenBolt(filepath.Join(b.TempDir(), "sessions.db"), storage.BoltOptions{})
	if err != nil {
		b.Fatal(err)
	}
	eng := engine.New(st, engine.WebhookEvents{}, engine.Options{})
	b.Cleanup(func() { eng.Close(); st.Close() })
	h := &Handler{Cookie: "sessionid", Zone: "sessionid", UserHeader: "X-Idle-User", StatusPath: "/.idlegate/status", Idle: 30 * 60 * 1e9, MaxSessions: 2 * n,
		OnExpired: &OnExpired{Mode: "status", StatusCode: http.StatusUnauthorized}}
	h.applyDefaults()
	h.profile, _ = sessioncookie.ParseProfile(h.CookieParser) // as Provision reads it: django for sessionid
	h.logger = zap.NewNop()
	h.shared = &sharedEngine{store: st, engine: eng}
	initMetrics(prometheus.NewRegistry())
	z, err := eng.Configure(context.Background(), h.zoneConfig())
	if err != nil {
		b.Fatal(err)
	}
	h.z = z
	now := eng.Now()
	values := make([]string, n)
	for i := range values {
		values[i] = fmt.Sprintf("k%031d", i)
		z.Tracker().Load(idletrack.Session{ID: z.ID(values[i]), User: "42", StartedAt: now, LastActivity: now, Requests: 1})
	}
	return h, values
}

// nopResponseWriter is a ResponseWriter that keeps nothing, so the
// benchmark counts the handler's allocations, not the recorder's.
type nopResponseWriter struct{ h http.Header }

func (w *nopResponseWriter) Header() http.Header         { return w.h }
func (w *nopResponseWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *nopResponseWriter) WriteHeader(int)             {}

var okNext = caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
	w.WriteHeader(http.StatusOK)
	return nil
})

// BenchmarkServeHTTP is idlegate's whole share of a request of a known,
// active session: cookie lookup, HMAC, activity touch, and the response
// observer — with a next handler that only writes the status. Run with
//
//	go test -run '^$' -bench ServeHTTP -benchmem ./caddymodule
func BenchmarkServeHTTP(b *testing.B) {
	h, values := benchHandler(b, 10_000)
	reqs := make([]*http.Request, len(values))
	for i, v := range values {
		reqs[i] = httptest.NewRequest(http.MethodGet, "/page", nil)
		reqs[i].Header.Set("Cookie", "csrftoken=abc; sessionid="+v+"; theme=dark")
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		w := &nopResponseWriter{h: make(http.Header)}
		i := 0
		for pb.Next() {
			i++
			if err := h.ServeHTTP(w, reqs[i%len(reqs)], okNext); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkServeHTTPRefused is the refusal of a replayed cookie of an ended
// session (the tombstone cache answers; the 401 body is written).
func BenchmarkServeHTTPRefused(b *testing.B) {
	h, values := benchHandler(b, 1000)
	now := h.shared.engine.Now()
	reqs := make([]*http.Request, len(values))
	for i, v := range values {
		h.z.Tracker().End(h.z.ID(v), idletrack.ReasonLogout, now)
		reqs[i] = httptest.NewRequest(http.MethodGet, "/page", nil)
		reqs[i].Header.Set("Cookie", "sessionid="+v)
	}
	time.Sleep(10 * time.Millisecond)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w := &nopResponseWriter{h: make(http.Header)}
		if err := h.ServeHTTP(w, reqs[i%len(reqs)], okNext); err != nil {
			b.Fatal(err)
		}
	}
}
