package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/idlegate/idlegate/storage"
)

// cmdInstr counts the instructions Caddy executes per request, with
// valgrind's callgrind: one Caddy process serves a plain reverse_proxy site
// and an idle_session + reverse_proxy site side by side, and each round
// (sequential keep-alive requests to one site) is measured alone by
// switching callgrind's instrumentation on for it and dumping its counts
// after it. Rounds alternate plain, idle, plain, idle, ...; the first pair
// warms up and is discarded. Instruction counts do not depend on how busy
// the machine is, so the ratio idle ÷ plain is the overhead of idle_session
// without the noise of a shared machine.
//
// Cases: hot (ten sessions repeating: cookie, HMAC, table, observer), cold
// (every request a different one of the seeded sessions, so each leaves one
// dirty session for the 1 s flush), and new (every request a cookie value
// never seen: a store lookup and an adoption on probation, which writes
// nothing until the value comes back). A round ends only once the process is quiet
// after its last request, at least one flush interval and a half later, so
// the flush of the round's sessions is counted in the round that caused it.
//
// -godebug gcstoptheworld=2 (what tests/bench/instr passes) makes every
// garbage collection stop the world and sweep at once. Go's concurrent
// collector paces its mark worker by the clock: how much of a round runs
// while marking, with write barriers on, then depends on how fast the
// machine ran the round, and plain rounds of one process differ by up to
// ±2.5% (the same build measured 1.002× and 1.029× hot). Stopping the
// world, a collection does the same marking and sweeping, set off by
// allocation alone, so every byte allocated is still paid for; the
// per-round ratios of a case then agree within ±0.4%.
func cmdInstr(args []string) error {
	fs := flag.NewFlagSet("instr", flag.ExitOnError)
	caddy := fs.String("caddy", "", "the Caddy binary")
	dir := fs.String("dir", "", "working directory (stores, Caddyfiles, callgrind dumps)")
	cache := fs.String("cache", "", "directory of cached seeded bbolt files (seed-N.db)")
	requests := fs.Int("requests", 3000, "requests per round")
	pairs := fs.Int("pairs", 3, "measured rounds per site (plus one warm-up pair)")
	godebug := fs.String("godebug", "", "GODEBUG settings for Caddy beside asyncpreemptoff=1 (e.g. gcstoptheworld=2)")
	runs := fs.String("runs", "bolt:10000:hot,cold;bolt:100000:cold;bolt:1000000:cold;redis:10000:hot,cold",
		"store:sessions:cases;... (one Caddy process per entry)")
	fs.Parse(args)
	if *caddy == "" || *dir == "" {
		return errors.New("-caddy and -dir are required")
	}
	for _, bin := range []string{"valgrind", "callgrind_control"} {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Errorf("%s is needed (apt-get install valgrind): %w", bin, err)
		}
	}
	up, err := startUpstream()
	if err != nil {
		return err
	}
	defer up.Close()
	// Go's asynchronous preemption signals crash callgrind.
	res := instrResult{Requests: *requests, Pairs: *pairs, GODEBUG: "asyncpreemptoff=1"}
	if *godebug != "" {
		res.GODEBUG += "," + *godebug
	}
	for _, spec := range strings.Split(*runs, ";") {
		parts := strings.Split(spec, ":")
		if len(parts) != 3 {
			return fmt.Errorf("bad -runs entry %q", spec)
		}
		n, err := strconv.Atoi(parts[1])
		if err != nil {
			return fmt.Errorf("bad -runs entry %q: %w", spec, err)
		}
		p := &instrProc{store: parts[0], sessions: n, dir: *dir, cache: *cache, caddy: *caddy, upstream: up.Addr().String(), godebug: res.GODEBUG}
		cases, err := p.run(strings.Split(parts[2], ","), *requests, *pairs)
		if err != nil {
			return fmt.Errorf("%s: %w", spec, err)
		}
		res.Cases = append(res.Cases, cases...)
	}
	emit(res)
	return nil
}

type instrResult struct {
	Requests int         `json:"requests_per_round"`
	Pairs    int         `json:"pairs"`
	GODEBUG  string      `json:"godebug"` // Caddy's
	Cases    []instrCase `json:"cases"`
}

// instrCase is one case's rounds: instructions per request of each round,
// in order (plain and idle alternate; warm-up excluded), and the ratios.
type instrCase struct {
	Name     string    `json:"name"` // e.g. bolt-cold-10000
	Store    string    `json:"store"`
	Kind     string    `json:"kind"` // hot or cold
	Sessions int       `json:"sessions"`
	Plain    []float64 `json:"plain_ir_per_req"`
	Idle     []float64 `json:"idle_ir_per_req"`
	// Ratio is mean(idle) ÷ mean(plain); PerRound is each idle round ÷
	// the plain round before it.
	Ratio    float64   `json:"ratio"`
	PerRound []float64 `json:"per_round"`
	Min      float64   `json:"min"`
	Max      float64   `json:"max"`
	// Seconds is the wall time of the case's measured rounds.
	Seconds float64 `json:"seconds"`
}

func startUpstream() (net.Listener, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	body := []byte("ok\n")
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write(body)
	}), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(l)
	return l, nil
}

// instrProc is one Caddy process under callgrind with its store.
type instrProc struct {
	store    string // bolt or redis
	sessions int
	dir      string
	cache    string
	caddy    string
	upstream string
	godebug  string // Caddy's GODEBUG

	cmd         *exec.Cmd
	out         string // callgrind's output file prefix
	plain, idle string // base URLs
	admin       string // Caddy's admin endpoint
	dumps       int
	order       []int // the cold case's order of the seeded sessions
	cold        int   // cold values handed out to measured idle requests
	spare       int   // cold values handed out to every other request
	measured    int   // measured idle requests of the cold case (pairs × requests)
	fresh       int   // new cookie values handed out so far
}

func (p *instrProc) name() string { return p.store + "-" + strconv.Itoa(p.sessions) }

func (p *instrProc) run(cases []string, requests, pairs int) (out []instrCase, err error) {
	work := filepath.Join(p.dir, "instr-"+p.name())
	os.RemoveAll(work)
	if err := os.MkdirAll(work, 0o700); err != nil {
		return nil, err
	}
	store, stop, err := p.prepareStore(work)
	if err != nil {
		return nil, err
	}
	defer stop()
	if err := p.start(work, store); err != nil {
		return nil, err
	}
	defer p.stop()
	for _, kind := range cases {
		c, err := p.measure(kind, requests, pairs)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// prepareStore seeds the store with p.sessions signed-in sessions (cookie
// values as cookieValue makes them) and returns the Caddyfile's store line.
func (p *instrProc) prepareStore(work string) (string, func(), error) {
	switch p.store {
	case "bolt":
		db := filepath.Join(work, "sessions.db")
		if err := seededCopy(p.cache, p.sessions, db); err != nil {
			return "", nil, err
		}
		return "store bolt " + db, func() {}, nil
	case "redis":
		srv, err := startRedis(work)
		if err != nil {
			return "", nil, err
		}
		st, err := storage.OpenRedis(storage.RedisOptions{URL: srv.url})
		if err != nil {
			srv.stop()
			return "", nil, err
		}
		err = seedSessions(st, "sessionid", p.sessions, time.Now().Add(-time.Minute).UnixNano(), func(int) int64 { return 0 })
		st.Close()
		if err != nil {
			srv.stop()
			return "", nil, err
		}
		return "store redis " + srv.url, srv.stop, nil
	}
	return "", nil, fmt.Errorf("unknown store %q", p.store)
}

// seededCopy puts a bbolt file with n seeded sessions at dst, from the cache
// (seeded there first when missing) or seeded in place without one.
func seededCopy(cache string, n int, dst string) error {
	seed := func(path string) error {
		st, err := storage.OpenBolt(path, storage.BoltOptions{})
		if err != nil {
			return err
		}
		err = seedSessions(st, "sessionid", n, time.Now().Add(-time.Minute).UnixNano(), func(int) int64 { return 0 })
		if cerr := st.Close(); err == nil {
			err = cerr
		}
		return err
	}
	if cache == "" {
		return seed(dst)
	}
	cached := filepath.Join(cache, fmt.Sprintf("seed-%d.db", n))
	if fi, err := os.Stat(cached); err != nil || fi.Size() == 0 || time.Since(fi.ModTime()) > 7*24*time.Hour {
		fmt.Fprintf(os.Stderr, "instr: seeding %d sessions into %s\n", n, cached)
		os.Remove(cached + ".tmp")
		if err := seed(cached + ".tmp"); err != nil {
			return err
		}
		if err := os.Rename(cached+".tmp", cached); err != nil {
			return err
		}
	}
	return exec.Command("cp", "--sparse=always", cached, dst).Run()
}

type redisProc struct {
	cmd *exec.Cmd
	url string
}

func (r *redisProc) stop() {
	r.cmd.Process.Kill()
	r.cmd.Wait()
}

// startRedis runs a redis-server without persistence on a free 127.0.0.1
// port and waits until it answers.
func startRedis(work string) (*redisProc, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "",
		"--appendonly", "no", "--dir", work, "--logfile", filepath.Join(work, "redis.log"))
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("redis-server: %w", err)
	}
	r := &redisProc{cmd: cmd, url: "redis://127.0.0.1:" + strconv.Itoa(port)}
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil {
			c.Write([]byte("PING\r\n"))
			line, _ := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if strings.HasPrefix(line, "+PONG") {
				return r, nil
			}
		}
		if time.Now().After(deadline) {
			r.stop()
			return nil, fmt.Errorf("redis-server on port %d did not answer", port)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// start runs Caddy under callgrind with instrumentation off (loading a
// million sessions instrumented would take minutes) and waits for both
// sites.
func (p *instrProc) start(work, store string) error {
	var ports [3]int
	for i := range ports {
		var err error
		if ports[i], err = freePort(); err != nil {
			return err
		}
	}
	cf := filepath.Join(work, "Caddyfile")
	err := os.WriteFile(cf, []byte(fmt.Sprintf(`{
	admin 127.0.0.1:%d
	auto_https off
	persist_config off
	grace_period 1s
}
http://:%d {
	bind 127.0.0.1
	reverse_proxy %s
}
http://:%d {
	bind 127.0.0.1
	idle_session {
		cookie sessionid
		idle 720h
		%s
		max_sessions 2000000
	}
	reverse_proxy %s
}
`, ports[0], ports[1], p.upstream, ports[2], store, p.upstream)), 0o600)
	if err != nil {
		return err
	}
	p.out = filepath.Join(work, "callgrind.out")
	p.cmd = exec.Command("nice", "-n", "10", "valgrind", "--tool=callgrind", "--instr-atstart=no",
		"--callgrind-out-file="+p.out, p.caddy, "run", "--config", cf, "--adapter", "caddyfile")
	// One P keeps the run deterministic enough to count.
	p.cmd.Env = append(os.Environ(), "GODEBUG="+p.godebug, "GOMAXPROCS=1", "XDG_DATA_HOME="+work, "XDG_CONFIG_HOME="+work)
	logf, err := os.Create(filepath.Join(work, "caddy.log"))
	if err != nil {
		return err
	}
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	t0 := time.Now()
	if err := p.cmd.Start(); err != nil {
		return err
	}
	p.plain = fmt.Sprintf("http://127.0.0.1:%d/", ports[1])
	p.idle = fmt.Sprintf("http://127.0.0.1:%d/", ports[2])
	p.admin = fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	c := &http.Client{Timeout: 5 * time.Second}
	for _, u := range []string{p.idle, p.plain} {
		for deadline := time.Now().Add(10 * time.Minute); ; {
			resp, err := c.Get(u)
			if err == nil {
				resp.Body.Close()
				break
			}
			if p.cmd.ProcessState != nil || time.Now().After(deadline) {
				p.stop()
				return fmt.Errorf("caddy under callgrind did not answer on %s (see %s)", u, logf.Name())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	fmt.Fprintf(os.Stderr, "instr: %s: caddy under callgrind ready after %.1fs\n", p.name(), time.Since(t0).Seconds())
	return nil
}

func (p *instrProc) stop() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
	p.cmd = nil
}

// collect runs a full garbage collection in Caddy: the admin endpoint's
// heap profile with gc=1 calls runtime.GC first.
func (p *instrProc) collect() error {
	resp, err := http.Get(p.admin + "/debug/pprof/heap?gc=1")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GC through %s/debug/pprof/heap: %s", p.admin, resp.Status)
	}
	return nil
}

// control runs callgrind_control with args against the process.
func (p *instrProc) control(args ...string) error {
	out, err := exec.Command("callgrind_control", append(args, strconv.Itoa(p.cmd.Process.Pid))...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("callgrind_control %v: %w: %s", args, err, out)
	}
	return nil
}

// measure runs the warm-up pair and then pairs of plain and idle rounds.
func (p *instrProc) measure(kind string, requests, pairs int) (instrCase, error) {
	c := instrCase{Name: p.store + "-" + kind + "-" + strconv.Itoa(p.sessions), Store: p.store, Kind: kind, Sessions: p.sessions}
	if kind != "hot" && kind != "cold" && kind != "new" {
		return c, fmt.Errorf("unknown case %q", kind)
	}
	if kind == "cold" && pairs*requests >= p.sessions {
		return c, fmt.Errorf("cold: %d measured requests need more than %d seeded sessions, each sent once", pairs*requests, p.sessions)
	}
	p.measured = pairs * requests
	t0 := time.Now()
	for i := 0; i <= pairs; i++ {
		if i == 1 {
			t0 = time.Now()
		}
		for _, site := range []string{"plain", "idle"} {
			ir, err := p.round(site, kind, requests, i > 0)
			if err != nil {
				return c, err
			}
			fmt.Fprintf(os.Stderr, "instr: %s %s round %d: %.0f instructions/request\n", c.Name, site, i, ir)
			if i == 0 {
				continue // warm-up
			}
			if site == "plain" {
				c.Plain = append(c.Plain, ir)
			} else {
				c.Idle = append(c.Idle, ir)
			}
		}
	}
	c.Seconds = time.Since(t0).Seconds()
	for i := range c.Idle {
		c.PerRound = append(c.PerRound, c.Idle[i]/c.Plain[i])
	}
	c.Ratio = mean(c.Idle) / mean(c.Plain)
	c.Min, c.Max = slices.Min(c.PerRound), slices.Max(c.PerRound)
	fmt.Fprintf(os.Stderr, "instr: %s: idle ÷ plain %.3f (per round %.3f–%.3f)\n", c.Name, c.Ratio, c.Min, c.Max)
	return c, nil
}

func mean(xs []float64) float64 {
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

// round sends requests sequentially on one keep-alive connection to site,
// with instrumentation on from just before the first request until the
// process is quiet after the last, and returns instructions per request.
func (p *instrProc) round(site, kind string, requests int, measured bool) (float64, error) {
	base := p.plain
	if site == "idle" {
		base = p.idle
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 60 * time.Second}
	req, err := http.NewRequest("GET", base+"page", nil)
	if err != nil {
		return 0, err
	}
	// One request first, outside the count, so the connection is open.
	if err := p.get(client, req, p.cookie(kind, 0, false)); err != nil {
		return 0, err
	}
	// Each round starts from a collected heap, with instrumentation off:
	// otherwise where the previous round's garbage tips a GC cycle decides
	// which round pays for it, the largest part of the per-round spread.
	if err := p.collect(); err != nil {
		return 0, err
	}
	if err := p.control("-z"); err != nil {
		return 0, err
	}
	if err := p.control("-i", "on"); err != nil {
		return 0, err
	}
	for i := range requests {
		if err := p.get(client, req, p.cookie(kind, i, measured && site == "idle")); err != nil {
			return 0, err
		}
	}
	if err := p.quiet(); err != nil {
		return 0, err
	}
	if err := p.control("-i", "off"); err != nil {
		return 0, err
	}
	p.dumps++
	if err := p.control("-d"); err != nil {
		return 0, err
	}
	ir, err := dumpTotal(fmt.Sprintf("%s.%d", p.out, p.dumps))
	if err != nil {
		return 0, err
	}
	return float64(ir) / float64(requests), nil
}

// cookie is request i's session cookie value: one of ten seeded sessions
// (hot), a seeded session no measured request sent before (cold: each
// request makes a different session dirty, and its ID is not in the
// keyer's cache), or a value never sent before (new: looked up in the
// store, adopted on probation, never written).
//
// Cold: the measured idle requests (counted) walk the first pairs ×
// requests sessions of a random order, once each; every other request (the
// plain site's, the warm-up pair's, the one opening each round's
// connection) takes the rest of the order, repeating if it must, so none
// of them makes a measured session known beforehand.
func (p *instrProc) cookie(kind string, i int, counted bool) string {
	switch kind {
	case "hot":
		return string(cookieValue(nil, i%10))
	case "cold":
		if p.order == nil {
			p.order = rand.New(rand.NewPCG(1, 2)).Perm(p.sessions)
		}
		if counted {
			p.cold++
			return string(cookieValue(nil, p.order[(p.cold-1)%p.measured]))
		}
		rest := p.order[p.measured:]
		p.spare++
		return string(cookieValue(nil, rest[p.spare%len(rest)]))
	}
	p.fresh++
	return "n" + strconv.FormatInt(time.Now().UnixNano(), 36) + "x" + strconv.Itoa(p.fresh)
}

func (p *instrProc) get(client *http.Client, req *http.Request, cookie string) error {
	req.Header.Set("Cookie", "sessionid="+cookie)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: status %d", req.URL, resp.StatusCode)
	}
	return nil
}

// quiet waits at least 1.5 flush intervals, then until the process used
// less than 5% of a core over 300 ms: the flush that holds the round's
// activity has then run.
func (p *instrProc) quiet() error {
	time.Sleep(1500 * time.Millisecond)
	deadline := time.Now().Add(5 * time.Minute)
	prev, err := cpuTicks(p.cmd.Process.Pid)
	if err != nil {
		return err
	}
	for {
		time.Sleep(300 * time.Millisecond)
		cur, err := cpuTicks(p.cmd.Process.Pid)
		if err != nil {
			return err
		}
		// Clock ticks are 10 ms: at most one tick in 300 ms is quiet.
		if cur-prev <= 1 {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("caddy did not become quiet after a round")
		}
		prev = cur
	}
}

// cpuTicks is the utime+stime of pid in clock ticks.
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return ut + st, nil
}

// dumpTotal reads the instruction total of a callgrind dump.
func dumpTotal(path string) (int64, error) {
	var b []byte
	var err error
	for deadline := time.Now().Add(30 * time.Second); ; {
		b, err = os.ReadFile(path)
		if err == nil && bytes.Contains(b, []byte("\ntotals:")) {
			break
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("callgrind dump %s: %v", path, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// "totals:" is the dump's sum of costs; "summary:" (older dumps
	// only) is the same, and stays 0 after callgrind_control -z.
	for _, k := range []string{"totals:", "summary:"} {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, k); ok {
				if f := strings.Fields(v); len(f) > 0 {
					return strconv.ParseInt(f[0], 10, 64)
				}
			}
		}
	}
	return 0, fmt.Errorf("callgrind dump %s: no totals", path)
}
