package tests

// The several-instances harness: redis-server processes (a single node or a
// three-node Cluster) that the tests start on 127.0.0.1 and stop by PID,
// and a fleet of Caddy instances sharing one Redis store.

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// redisServer is a redis-server process on a fixed 127.0.0.1 port, so it
// can be killed and started again where the instances expect it.
type redisServer struct {
	t    testing.TB
	port int
	dir  string
	args []string
	cmd  *exec.Cmd
}

// needRedis skips t when redis-server is not installed, except on CI.
func needRedis(t testing.TB) {
	t.Helper()
	for _, bin := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(bin); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is needed for the several-instances tests: %v", bin, err)
			}
			t.Skipf("%s not installed", bin)
		}
	}
}

// startRedis starts a server with an append-only file fsynced on every
// write, so a SIGKILL and a start on the same directory lose nothing.
func startRedis(t testing.TB, extra ...string) *redisServer {
	t.Helper()
	needRedis(t)
	r := &redisServer{t: t, port: FreePort(t), dir: t.TempDir(), args: extra}
	r.Start()
	t.Cleanup(r.Kill)
	return r
}

func (r *redisServer) Addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }
func (r *redisServer) URL() string  { return "redis://" + r.Addr() }

// Start runs redis-server and waits until it answers PING.
func (r *redisServer) Start() {
	r.t.Helper()
	args := append([]string{"--port", strconv.Itoa(r.port), "--bind", "127.0.0.1", "--save", "",
		"--appendonly", "yes", "--appendfsync", "always",
		"--dir", r.dir, "--logfile", filepath.Join(r.dir, "redis.log")}, r.args...)
	r.cmd = exec.Command("redis-server", args...)
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	Eventually(r.t, 10*time.Second, 20*time.Millisecond, func() error {
		out, err := r.CLI("PING")
		if err != nil || strings.TrimSpace(out) != "PONG" {
			return fmt.Errorf("redis-server on %s: %v %q", r.Addr(), err, out)
		}
		return nil
	})
}

// Kill stops the server with SIGKILL, by PID, and waits for it.
func (r *redisServer) Kill() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	r.cmd.Process.Kill()
	r.cmd.Wait()
	r.cmd = nil
}

// CLI runs redis-cli against the server.
func (r *redisServer) CLI(args ...string) (string, error) {
	out, err := exec.Command("redis-cli", append([]string{"-h", "127.0.0.1", "-p", strconv.Itoa(r.port)}, args...)...).CombinedOutput()
	return string(out), err
}

// CommandStats is INFO commandstats as command -> calls. Commands that a
// script runs count as calls too.
func (r *redisServer) CommandStats() map[string]int {
	out, err := r.CLI("INFO", "commandstats")
	if err != nil {
		r.t.Fatalf("INFO commandstats: %v %s", err, out)
	}
	stats := map[string]int{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		name, rest, ok := strings.Cut(line, ":calls=")
		if !ok {
			continue
		}
		n, _ := strconv.Atoi(strings.SplitN(rest, ",", 2)[0])
		stats[strings.TrimPrefix(name, "cmdstat_")] = n
	}
	return stats
}

// startCluster starts a three-master Redis Cluster and waits until every
// node serves every slot. It returns the node addresses.
func startCluster(t testing.TB) []string {
	t.Helper()
	needRedis(t)
	var addrs []string
	var nodes []*redisServer
	for i := range 3 {
		r := startRedis(t, "--cluster-enabled", "yes", "--cluster-config-file", fmt.Sprintf("nodes-%d.conf", i),
			"--cluster-node-timeout", "2000", "--appendonly", "no")
		addrs = append(addrs, r.Addr())
		nodes = append(nodes, r)
	}
	cmd := exec.Command("redis-cli", append(append([]string{"--cluster", "create"}, addrs...), "--cluster-replicas", "0", "--cluster-yes")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, n := range nodes {
		Eventually(t, 30*time.Second, 100*time.Millisecond, func() error {
			out, _ := n.CLI("CLUSTER", "INFO")
			if !strings.Contains(out, "cluster_state:ok") {
				return fmt.Errorf("cluster node %s not ok", n.Addr())
			}
			return nil
		})
	}
	return addrs
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
