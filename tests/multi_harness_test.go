package tests

// The several-instances harness: redis-server processes (a single node or a
// three-node Cluster) that the tests start on 127.0.0.1 and stop by PID,
// and a fleet of Caddy instances sharing one Redis store.

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idlegate/idlegate/internal/redistest"
)

// startRedis starts a server (internal/redistest) with an append-only file
// fsynced on every write, so a SIGKILL and a start on the same directory
// lose nothing.
func startRedis(t testing.TB, extra ...string) *redistest.Server {
	return redistest.Start(t, append([]string{"--appendonly", "yes", "--appendfsync", "always"}, extra...)...)
}

// hookTap sits between the instances and the Receiver and records which
// instance made each attempt: instance i posts to <tap>/hook?from=i.
type hookTap struct {
	URL  string
	mu   sync.Mutex
	from []string // in arrival order
}

func newHookTap(t testing.TB, recv *Receiver) *hookTap {
	target, _ := url.Parse(recv.URL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	h := &hookTap{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		h.from = append(h.from, r.URL.Query().Get("from"))
		h.mu.Unlock()
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	h.URL = srv.URL
	return h
}

func (h *hookTap) From() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.from...)
}

// multiCaddyfile is one instance of a fleet: the stack's site with a Redis
// store shared by every instance.
const multiCaddyfile = `{
	admin 127.0.0.1:{ADMIN}
	default_bind 127.0.0.1
	grace_period 3s
}
http://127.0.0.1:{PORT} {
	idle_session {
		cookie sid
		user_header X-Idle-User
		status_path /.idlegate/status
		idle {IDLE}
		rotation_grace 1s
		store redis {URL} {
			prefix {PREFIX}
{STORE}
		}
		logout {
			method POST
			path /logout
		}
		webhook {HOOK}?from={I} {
			secret {SECRET}
			timeout 30s
		}
	}
	reverse_proxy {UP}
}
`

// node is one Caddy instance of a fleet.
type node struct {
	I     int
	Caddy *Caddy
	Addr  string
	C     *Client
}

// fleet is n Caddy instances in front of one Upstream, sharing one Redis
// keyspace and one webhook Receiver (through a hookTap).
type fleet struct {
	t     *testing.T
	Up    *Upstream
	Recv  *Receiver
	Tap   *hookTap
	Nodes []*node
}

// redisStore says how instances reach Redis: a URL, and lines for the
// store block (addrs of a Cluster).
type redisStore struct {
	URL   string
	Lines []string
}

func startFleet(t *testing.T, n int, idle time.Duration, st redisStore) *fleet {
	t.Helper()
	needCaddy(t)
	f := &fleet{t: t, Up: NewUpstream(t), Recv: NewReceiver(t)}
	f.Tap = newHookTap(t, f.Recv)
	prefix := "e2e" + randomHex(4) + ":"
	var wg sync.WaitGroup
	f.Nodes = make([]*node, n)
	for i := range n {
		port := strconv.Itoa(FreePort(t))
		cf := Render(t, multiCaddyfile, map[string]string{
			"PORT": port, "UP": f.Up.Addr, "HOOK": f.Tap.URL + "/hook", "I": strconv.Itoa(i),
			"SECRET": TestSecret, "IDLE": idle.String(), "URL": st.URL, "PREFIX": prefix,
			"STORE": "\t\t\t" + strings.Join(st.Lines, "\n\t\t\t"),
		})
		nd := &node{I: i, Addr: "127.0.0.1:" + port}
		nd.C = NewClient("http://" + nd.Addr)
		f.Nodes[i] = nd
		wg.Add(1)
		go func() {
			defer wg.Done()
			nd.Caddy = StartCaddy(t, cf)
		}()
	}
	wg.Wait()
	for _, nd := range f.Nodes {
		if nd.Caddy == nil {
			t.FailNow() // StartCaddy failed in its goroutine
		}
	}
	return f
}

// login signs user in through node i and returns the new sid.
func (f *fleet) login(i int, user string, opts ...ReqOption) (string, time.Time) {
	f.t.Helper()
	r := f.Nodes[i].C.Post(f.t, "/login?user="+user, opts...)
	c := r.SetCookie(UpstreamCookie)
	if r.StatusCode != http.StatusOK || c == nil || c.Value == "" {
		f.t.Fatalf("login through instance %d: %s", i, r)
	}
	return c.Value, r.At
}

// get sends GET / with sid to node i and returns the status (0 when the
// request failed).
func (f *fleet) get(i int, sid string) int {
	r, err := f.Nodes[i].C.Try(http.MethodGet, "/", WithCookie(UpstreamCookie, sid))
	if err != nil {
		return 0
	}
	return r.StatusCode
}

// metric returns the sum of the samples of a metric on node i's admin
// endpoint whose label set contains every one of labels.
func (f *fleet) metric(i int, name string, labels ...string) float64 {
	_, body := f.Nodes[i].Caddy.Admin(f.t, http.MethodGet, "/metrics", nil)
	sum := 0.0
	for _, line := range bytes.Split(body, []byte("\n")) {
		l := string(line)
		if !strings.HasPrefix(l, name+"{") && !strings.HasPrefix(l, name+" ") {
			continue
		}
		ok := true
		for _, lb := range labels {
			ok = ok && strings.Contains(l, lb)
		}
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(l[strings.LastIndex(l, " ")+1:], 64)
		if err == nil {
			sum += v
		}
	}
	return sum
}
