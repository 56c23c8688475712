package tests

// Session floods (issue #7, item 4): clients sending invented cookie values
// at full speed. The mechanism (docs/SECURITY.md, "Floods"): a value that
// neither memory nor the store knows is adopted on probation, in a FIFO
// pool of bounded size (max_sessions/8, at least 1024) that is never
// written to disk; only a second request (or the upstream naming a user)
// promotes it, and promotion never evicts an established session — a full
// table just stops taking new ones. So a flood of fresh values only pushes
// out other unconfirmed values.
//
// Checked: real sessions are never refused and stay tracked; the number of
// established sessions stays at the real ones (one-shot values) or under
// max_sessions (values sent twice); the Go heap stays flat while millions
// of values go by; the store file does not grow; and the p99 latency of
// real users under the flood stays within 2x of their p99 under the same
// load of ordinary cookie-less requests ("normal": the machine is equally
// busy, only the cookies differ).
//
// Short form: 5 s per phase. Long form (IDLEGATE_LONG=1): the flood runs
// until 2,000,000 invented values have been sent.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const floodCaddyfile = `{
	admin 127.0.0.1:{ADMIN}
	default_bind 127.0.0.1
	grace_period 3s
}
http://127.0.0.1:{PORT} {
	idle_session {
		cookie sid
		user_header X-Idle-User
		idle 10m
		status_path /.idlegate/status
		max_sessions {MAX}
		store bolt {DB}
	}
	handle /login {
		reverse_proxy {UP}
	}
	handle {
		respond "ok"
	}
}
`

func TestReliabilityFlood(t *testing.T) {
	needCaddy(t)
	const (
		maxSessions = 2000
		realUsers   = 20
		flooders    = 4
	)
	phase := pick(5*time.Second, 20*time.Second)    // of each load, split into rounds
	floodTarget := pick(int64(0), int64(2_000_000)) // long form: run until this many values
	up := NewUpstream(t)
	port := strconv.Itoa(FreePort(t))
	db := filepath.Join(t.TempDir(), "sessions.db")
	caddy := StartCaddy(t, Render(t, floodCaddyfile, map[string]string{
		"PORT": port, "UP": up.Addr, "DB": db, "MAX": strconv.Itoa(maxSessions),
	}))
	base := "http://127.0.0.1:" + port
	c := NewClient(base)
	s := &stack{t: t, Caddy: caddy, Up: up, C: c}
	var sids []string
	for i := range realUsers {
		sid, _ := s.login("real" + strconv.Itoa(i))
		sids = append(sids, sid)
	}
	keepAlive := func() *http.Client {
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 4}}
	}

	// Real users: steady clicks, latency measured per request.
	type sample struct {
		lat    time.Duration
		status int
	}
	var (
		smu     sync.Mutex
		samples []sample
		refused atomic.Int64
	)
	realCtx, stopReal := context.WithCancel(context.Background())
	var realWG sync.WaitGroup
	for _, sid := range sids {
		realWG.Add(1)
		go func() {
			defer realWG.Done()
			hc := keepAlive()
			for realCtx.Err() == nil {
				req, _ := http.NewRequest(http.MethodGet, base+"/", nil)
				req.AddCookie(&http.Cookie{Name: UpstreamCookie, Value: sid})
				start := time.Now()
				resp, err := hc.Do(req)
				if err != nil {
					t.Errorf("real user: %v", err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				lat := time.Since(start)
				if resp.StatusCode != http.StatusOK {
					refused.Add(1)
				}
				smu.Lock()
				samples = append(samples, sample{lat, resp.StatusCode})
				smu.Unlock()
				time.Sleep(20 * time.Millisecond) // think time
			}
		}()
	}
	defer func() { stopReal(); realWG.Wait() }()
	takeSamples := func() []time.Duration {
		smu.Lock()
		defer smu.Unlock()
		out := make([]time.Duration, len(samples))
		for i, s := range samples {
			out[i] = s.lat
		}
		samples = samples[:0]
		return out
	}

	// load runs the flooders with cookie(i) per request until until()
	// and returns how many requests they sent.
	load := func(cookie func(buf []byte) string, until func(sent int64, began time.Time) bool) (int64, time.Duration) {
		var sent atomic.Int64
		var wg sync.WaitGroup
		began := time.Now()
		for range flooders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				hc := keepAlive()
				buf := make([]byte, 20)
				for !until(sent.Load(), began) {
					req, _ := http.NewRequest(http.MethodGet, base+"/", nil)
					if v := cookie(buf); v != "" {
						req.Header.Set("Cookie", "sid="+v)
					}
					resp, err := hc.Do(req)
					if err != nil {
						t.Errorf("flooder: %v", err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					sent.Add(1)
				}
			}()
		}
		wg.Wait()
		return sent.Load(), time.Since(began)
	}
	heap := func() float64 { return sumMetric(caddy.Metrics(t), "go_memstats_heap_inuse_bytes") }
	active := func() float64 { return sumMetric(caddy.Metrics(t), "caddy_idle_session_active") }

	// Normal (the same full-speed load, without cookies) and flood (every
	// request a fresh invented value) alternate in short rounds, so noise
	// from other work on the machine falls on both alike.
	invent := func(buf []byte) string {
		rand.Read(buf)
		return hex.EncodeToString(buf)
	}
	rounds := pick(5, 10)
	slice := phase / time.Duration(rounds)
	forSlice := func(_ int64, began time.Time) bool { return time.Since(began) >= slice }
	floodUntil := forSlice
	if floodTarget > 0 {
		per := floodTarget / int64(rounds)
		floodUntil = func(sent int64, _ time.Time) bool { return sent >= per }
	}
	dbBefore := fileSize(t, db)
	var (
		normal, flood                 []time.Duration
		normalReqs, floodReqs         int64
		normalTook, floodTook         time.Duration
		heapBefore, heapMid, heapPeak float64
		ratios                        []float64 // per round: p99 flood / p99 normal
	)
	rssBefore, _ := procRSS(caddy.Pid())
	for r := range rounds {
		takeSamples()
		n, d := load(func([]byte) string { return "" }, forSlice)
		rn := takeSamples()
		normal, normalReqs, normalTook = append(normal, rn...), normalReqs+n, normalTook+d
		if r == 0 {
			heapBefore = heap()
		}
		n, d = load(invent, floodUntil)
		rf := takeSamples()
		flood, floodReqs, floodTook = append(flood, rf...), floodReqs+n, floodTook+d
		ratios = append(ratios, float64(percentile(rf, 99))/float64(max(percentile(rn, 99), time.Microsecond)))
		h := heap()
		heapPeak = max(heapPeak, h)
		if r == rounds/2 {
			heapMid = h
		}
	}
	heapAfter := heap()
	rssAfter, _ := procRSS(caddy.Pid())
	dbAfter := fileSize(t, db)
	activeAfterFlood := active()

	// Repeat flood: every invented value sent twice, so each is promoted.
	// The table fills to max_sessions and stops; nothing real is evicted.
	var pending sync.Map
	var n atomic.Int64
	repeat := func(buf []byte) string {
		k := n.Add(1)
		if v, ok := pending.LoadAndDelete(k - 1); ok && k%2 == 0 {
			return v.(string)
		}
		v := invent(buf)
		pending.Store(k, v)
		return v
	}
	repeatReqs, _ := load(repeat, func(sent int64, _ time.Time) bool { return sent >= 3*maxSessions })
	repeatSamples := takeSamples()
	activeAfterRepeat := active()

	stopReal()
	realWG.Wait()

	// Every real session is still there, tracked and active.
	for i, sid := range sids {
		if st := s.status(sid); !st.Active {
			t.Errorf("real user %d: session gone after the flood: %+v", i, st)
		}
	}
	if r := refused.Load(); r != 0 {
		t.Errorf("%d requests of real users were refused during the floods", r)
	}
	if activeAfterFlood != realUsers {
		t.Errorf("established sessions after a flood of one-shot values: %v, want the %d real ones", activeAfterFlood, realUsers)
	}
	if activeAfterRepeat > maxSessions {
		t.Errorf("established sessions after the repeat flood: %v, over max_sessions %d", activeAfterRepeat, maxSessions)
	}
	// Memory: the flood's values come and go through a bounded pool. The
	// heap may hold a few MB of buffers and pool entries; it must not grow
	// with the number of values.
	if growth := heapPeak - heapBefore; growth > 16<<20 {
		t.Errorf("heap grew %.1f MiB during a flood of %d values (bound: probation pool, ~1024 entries)", growth/(1<<20), floodReqs)
	}
	if dbAfter > dbBefore+256<<10 {
		t.Errorf("store file grew from %d to %d bytes during the flood: probationary values must not be written", dbBefore, dbAfter)
	}
	p99n, p99f := percentile(normal, 99), percentile(flood, 99)
	ratio := float64(p99f) / float64(max(p99n, time.Microsecond))
	sort.Float64s(ratios)
	medRatio := ratios[len(ratios)/2]
	// A 2-core machine shared with other work has scheduling bursts of
	// tens of ms that land in one round or another; the median round
	// ratio is the figure that says what the flood itself costs. Both are
	// reported. Under 5 ms a p99 is noise, whatever the ratio.
	if medRatio > 2 && p99f > 5*time.Millisecond {
		t.Errorf("p99 of real users: median round ratio flood/normal %.2f > 2 (all rounds %.2f; overall %s vs %s)", medRatio, ratios, p99f, p99n)
	}
	summary := fmt.Sprintf("flood: %d invented values in %s (%.0f/s) vs normal %d cookie-less requests in %s (%.0f/s); "+
		"real users p99 %s normal, %s flood (ratio %.2f, median round ratio %.2f), p50 %s / %s, %d samples, 0 refused; "+
		"established %v (real %d, max_sessions %d); heap in use %.1f -> %.1f MiB (mid %.1f, peak %.1f), RSS %.1f -> %.1f MiB; store %d -> %d bytes; "+
		"repeat flood: %d requests, established %v <= %d, real p99 %s",
		floodReqs, floodTook.Round(100*time.Millisecond), float64(floodReqs)/floodTook.Seconds(),
		normalReqs, normalTook.Round(100*time.Millisecond), float64(normalReqs)/normalTook.Seconds(),
		p99n, p99f, ratio, medRatio, percentile(normal, 50), percentile(flood, 50), len(normal)+len(flood),
		activeAfterFlood, realUsers, maxSessions,
		heapBefore/(1<<20), heapAfter/(1<<20), heapMid/(1<<20), heapPeak/(1<<20), float64(rssBefore)/(1<<20), float64(rssAfter)/(1<<20),
		dbBefore, dbAfter, repeatReqs, activeAfterRepeat, maxSessions, percentile(repeatSamples, 99))
	t.Log(summary)
	artifact(t, "reliability.txt", time.Now().UTC().Format(time.RFC3339)+" "+summary)
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}
