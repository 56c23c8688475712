package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// runConfig is one load run against one URL.
type runConfig struct {
	addr     string // host:port
	path     string
	cookie   string   // cookie name; "" sends none
	sessions int      // distinct cookie values, chosen at random per request
	values   []string // the cookie values, when not synthetic (signed-in sessions of a real app)
	conns    int
	warmup   time.Duration
	duration time.Duration
	rate     float64 // requests/s over all connections; 0 = closed loop (as fast as answers come)
}

// runResult is what one run measured. Latencies are in microseconds; with a
// fixed rate they are measured from the time each request was due
// (coordinated omission corrected), so a stall counts for every request it
// delayed.
type runResult struct {
	Requests int     `json:"requests"`                     // in the measured window
	Total    int     `json:"total"`                        // with the warm-up
	CPUus    float64 `json:"cpu_us_per_request,omitempty"` // the server process's CPU time (all threads) per request, when its PID is known
	Errors   int     `json:"errors"`
	Non200   int     `json:"non_200"`
	RPS      float64 `json:"rps"`
	P50      float64 `json:"p50_us"`
	P90      float64 `json:"p90_us"`
	P99      float64 `json:"p99_us"`
	P999     float64 `json:"p999_us"`
}

// run drives cfg.conns keep-alive HTTP/1.1 connections. The client is a
// minimal one (pre-formatted request, Content-Length responses only) so
// that most of the machine's two cores go to the server being measured.
func run(cfg runConfig) (runResult, error) {
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		lat       []uint32
		nErr      atomic.Int64
		non200    atomic.Int64
		total     atomic.Int64
		firstErr  error
		start     = time.Now()
		measureAt = start.Add(cfg.warmup)
		stopAt    = measureAt.Add(cfg.duration)
	)
	for c := range cfg.conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c)+1, uint64(start.UnixNano())))
			var local []uint32
			var interval time.Duration
			if cfg.rate > 0 {
				interval = time.Duration(float64(time.Second) * float64(cfg.conns) / cfg.rate)
			}
			// Spread the first requests of the connections over one interval.
			due := start.Add(time.Duration(rng.Int64N(int64(interval) + 1)))
			var conn net.Conn
			var br *bufio.Reader
			req := make([]byte, 0, 256)
			for {
				if cfg.rate > 0 {
					if d := time.Until(due); d > 0 {
						time.Sleep(d)
					}
				} else {
					due = time.Now()
				}
				if due.After(stopAt) {
					break
				}
				if conn == nil {
					var err error
					conn, err = net.Dial("tcp", cfg.addr)
					if err != nil {
						nErr.Add(1)
						mu.Lock()
						firstErr = cmp(firstErr, err)
						mu.Unlock()
						time.Sleep(10 * time.Millisecond)
						due = due.Add(interval)
						continue
					}
					br = bufio.NewReaderSize(conn, 16<<10)
				}
				req = appendRequest(req[:0], &cfg, rng)
				sent := due
				if _, err := conn.Write(req); err != nil {
					nErr.Add(1)
					conn.Close()
					conn = nil
					continue
				}
				status, keep, err := readResponse(br)
				done := time.Now()
				if err != nil {
					nErr.Add(1)
					mu.Lock()
					firstErr = cmp(firstErr, err)
					mu.Unlock()
					conn.Close()
					conn = nil
				} else {
					total.Add(1)
					if status != 200 {
						non200.Add(1)
					}
					if !keep {
						conn.Close()
						conn = nil
					}
				}
				if !sent.Before(measureAt) && !done.After(stopAt) {
					local = append(local, uint32(min(done.Sub(sent).Microseconds(), 1<<31)))
				}
				due = due.Add(interval)
			}
			if conn != nil {
				conn.Close()
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(lat) == 0 {
		return runResult{}, fmt.Errorf("no request completed (first error: %v)", firstErr)
	}
	if firstErr != nil {
		fmt.Fprintf(os.Stderr, "  (errors: %d, first: %v)\n", nErr.Load(), firstErr)
	}
	slices.Sort(lat)
	r := roundResult(lat, cfg.duration.Seconds())
	r.Total, r.Errors, r.Non200 = int(total.Load()), int(nErr.Load()), int(non200.Load())
	return r, nil
}

func cmp(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

var errFraming = errors.New("response without Content-Length")

// readResponse reads one response and discards its body. It understands
// what Caddy and the upstream send here: a Content-Length body.
func readResponse(br *bufio.Reader) (status int, keep bool, err error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, false, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.1 ")) {
		return 0, false, fmt.Errorf("bad status line %q", line)
	}
	status, _ = strconv.Atoi(string(line[9:12]))
	keep, length := true, -1
	for {
		line, err = br.ReadSlice('\n')
		if err != nil {
			return 0, false, err
		}
		if len(line) <= 2 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			length, _ = strconv.Atoi(string(value))
		case bytes.EqualFold(name, []byte("Connection")) && bytes.EqualFold(value, []byte("close")):
			keep = false
		}
	}
	if length < 0 {
		if status == 204 || status == 304 {
			return status, keep, nil
		}
		return status, false, errFraming
	}
	_, err = br.Discard(length)
	return status, keep, err
}

// cmdCompare alternates runs against two URLs — A (the baseline) and B —
// in one process run, so both see the same machine load, and prints the
// ratio of each pair. Rounds alternate the order (AB, BA, AB, ...) so a
// drift in the machine's load does not favour either side.
//
// Phase 1 (closed loop): each connection sends its next request as soon as
// the previous is answered; the figure is requests/s of B over A.
// Phase 2 (-latency-rate > 0): A and B side by side at the same fixed rate
// (together, that fraction of A's median throughput from phase 1), driven
// by one schedule that sends each due request to A and to B at the same
// instant (runPaired). The figure is B's p50/p99 minus A's, of the samples
// of all rounds pooled per side: the latency the middleware adds at the
// same load, under the same noise from the rest of the machine. The
// per-round differences give the spread; a bootstrap over rounds and the
// odd/even-round split give the uncertainty of the pooled figure.
func cmdCompare(args []string) error {
	fs := flag.NewFlagSet("compare", flag.ExitOnError)
	aURL := fs.String("a", "", "baseline URL (plain reverse_proxy)")
	bURL := fs.String("b", "", "URL under test (idle_session + reverse_proxy)")
	aName := fs.String("a-name", "plain", "label of A")
	bName := fs.String("b-name", "idle", "label of B")
	cookie := fs.String("cookie", "sessionid", "session cookie name")
	sessions := fs.Int("sessions", 10000, "distinct cookie values")
	conns := fs.Int("c", 16, "connections")
	rounds := fs.Int("rounds", 5, "rounds (each runs A and B once)")
	dur := fs.Duration("d", 5*time.Second, "measured duration per run")
	warm := fs.Duration("warmup", time.Second, "unmeasured warm-up per run")
	aCookies := fs.String("a-cookies", "", "file of A's cookie values (from login); default synthetic values")
	bCookies := fs.String("b-cookies", "", "file of B's cookie values (from login)")
	aPID := fs.Int("a-pid", 0, "A's server process, for CPU time per request")
	bPID := fs.Int("b-pid", 0, "B's server process")
	latFrac := fs.Float64("latency-rate", 0.5, "phase 2 rate as a fraction of A's throughput; 0 skips phase 2")
	latSamples := fs.Int("latency-samples", 0, "phase 2: at least this many measured requests per side over all rounds (lengthens the rounds past -d)")
	fs.Parse(args)

	target := func(raw string) (string, string, error) {
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" {
			return "", "", fmt.Errorf("bad URL %q", raw)
		}
		p := u.RequestURI()
		return u.Host, p, nil
	}
	aAddr, aPath, err := target(*aURL)
	if err != nil {
		return err
	}
	bAddr, bPath, err := target(*bURL)
	if err != nil {
		return err
	}
	cfgA := runConfig{addr: aAddr, path: aPath, cookie: *cookie, sessions: *sessions, conns: *conns, warmup: *warm, duration: *dur}
	cfgB := cfgA
	cfgB.addr, cfgB.path = bAddr, bPath
	if *aCookies != "" {
		if cfgA.values, err = readCookies(*aCookies); err != nil {
			return err
		}
		cfgA.sessions = len(cfgA.values)
	}
	if *bCookies != "" {
		if cfgB.values, err = readCookies(*bCookies); err != nil {
			return err
		}
		cfgB.sessions = len(cfgB.values)
	}

	type pair struct {
		A, B  runResult
		Ratio float64 `json:"ratio"`
	}
	both := func(phase string, a, b runConfig) ([]pair, error) {
		var out []pair
		for r := range *rounds {
			var p pair
			order := []string{"A", "B"}
			if r%2 == 1 {
				order = []string{"B", "A"}
			}
			for _, which := range order {
				cfg, dst, name, pid := a, &p.A, *aName, *aPID
				if which == "B" {
					cfg, dst, name, pid = b, &p.B, *bName, *bPID
				}
				cpu0 := cpuTime(pid)
				res, err := run(cfg)
				if pid > 0 && res.Total > 0 {
					res.CPUus = (cpuTime(pid) - cpu0) * 1e6 / float64(res.Total)
				}
				if err != nil {
					return nil, fmt.Errorf("%s round %d %s: %w", phase, r+1, name, err)
				}
				if res.Non200 > 0 || res.Errors > 0 {
					return nil, fmt.Errorf("%s round %d %s: %d non-200 answers, %d errors: the comparison would be meaningless", phase, r+1, name, res.Non200, res.Errors)
				}
				*dst = res
			}
			p.Ratio = p.B.RPS / p.A.RPS
			cpu := func(us float64) string {
				if us == 0 {
					return ""
				}
				return fmt.Sprintf(" %.0f µs CPU/req", us)
			}
			fmt.Fprintf(os.Stderr, "  %s round %d: %s %.0f req/s%s | %s %.0f req/s%s | ratio %.3f\n",
				phase, r+1, *aName, p.A.RPS, cpu(p.A.CPUus), *bName, p.B.RPS, cpu(p.B.CPUus), p.Ratio)
			out = append(out, p)
		}
		return out, nil
	}

	fmt.Fprintf(os.Stderr, "compare: %s vs %s, %d sessions, %d connections, %d rounds of %s\n", *aName, *bName, *sessions, *conns, *rounds, *dur)
	thr, err := both("throughput", cfgA, cfgB)
	if err != nil {
		return err
	}
	ratios := make([]float64, len(thr))
	aRPS := make([]float64, len(thr))
	bRPS := make([]float64, len(thr))
	for i, p := range thr {
		ratios[i], aRPS[i], bRPS[i] = p.Ratio, p.A.RPS, p.B.RPS
	}
	result := map[string]any{}
	if *aPID > 0 && *bPID > 0 {
		// The servers' own CPU time per request, B over A: what B costs
		// the machine per request. Less sensitive to the rest of the
		// machine than requests/s, which also measures the scheduler.
		cr := make([]float64, len(thr))
		ac := make([]float64, len(thr))
		bc := make([]float64, len(thr))
		for i, p := range thr {
			cr[i], ac[i], bc[i] = p.B.CPUus/p.A.CPUus, p.A.CPUus, p.B.CPUus
		}
		result["cpu_ratio"], result["a_cpu_us"], result["b_cpu_us"] = summary(cr), summary(ac), summary(bc)
	}
	maps.Copy(result, map[string]any{
		"sessions": *sessions, "conns": *conns, "rounds": *rounds, "duration_s": dur.Seconds(),
		"ratio":  summary(ratios),
		"a_rps":  summary(aRPS),
		"b_rps":  summary(bRPS),
		"a_name": *aName, "b_name": *bName,
		"throughput_rounds": thr,
	})
	if *latFrac > 0 {
		// A and B from one schedule, each at half the rate: each due time
		// sends one request to A and one to B at the same instant, so that
		// both see the same noise from the rest of the machine and their
		// latency difference is what the middleware adds.
		rate := *latFrac * median(aRPS)
		perSide := rate / 2
		// Rounds long enough for latSamples requests per side in all: a
		// p99 from a few thousand samples rests on its few dozen worst.
		roundDur := *dur
		if need := time.Duration(float64(*latSamples) / perSide / float64(*rounds) * float64(time.Second)); need > roundDur {
			roundDur = (need + 99*time.Millisecond).Truncate(100 * time.Millisecond)
		}
		fmt.Fprintf(os.Stderr, "compare: latency at a fixed %.0f req/s in total (%.0f%% of %s's median throughput), one schedule for %s and %s, %d rounds of %s\n",
			rate, 100**latFrac, *aName, *aName, *bName, *rounds, roundDur)
		a, b := cfgA, cfgB
		a.conns, b.conns = max(1, a.conns/2), max(1, b.conns/2)
		// Each server's CPU time at every round boundary: both serve the
		// same requests at the same instants, so B's CPU over A's in a
		// round is B's cost per request with the rest of the machine as
		// alike as it can be.
		var cpuA, cpuB []float64
		var atBoundary func(int)
		if *aPID > 0 && *bPID > 0 {
			cpuA, cpuB = make([]float64, *rounds+1), make([]float64, *rounds+1)
			atBoundary = func(r int) { cpuA[r], cpuB[r] = cpuTime(*aPID), cpuTime(*bPID) }
		}
		res, err := runPaired(a, b, perSide, *warm, roundDur, *rounds, atBoundary)
		if err == nil && res.errA+res.errB+res.nonA+res.nonB > 0 {
			err = fmt.Errorf("%d errors and %d non-200 answers from %s, %d and %d from %s (first error: %v): the comparison would be meaningless",
				res.errA, res.nonA, *aName, res.errB, res.nonB, *bName, res.firstErr)
		}
		if err != nil {
			return fmt.Errorf("latency: %w", err)
		}
		var d50, d99 []float64
		var lat []pair
		for r := range *rounds {
			p := pair{A: roundResult(res.A[r], res.roundSeconds), B: roundResult(res.B[r], res.roundSeconds)}
			p.Ratio = p.B.RPS / p.A.RPS
			fmt.Fprintf(os.Stderr, "  latency round %d: %s p50 %.0fµs p99 %.0fµs | %s p50 %.0fµs p99 %.0fµs | added p99 %+.0fµs\n",
				r+1, *aName, p.A.P50, p.A.P99, *bName, p.B.P50, p.B.P99, p.B.P99-p.A.P99)
			d50 = append(d50, p.B.P50-p.A.P50)
			d99 = append(d99, p.B.P99-p.A.P99)
			lat = append(lat, p)
		}
		// The headline: quantiles of all rounds' samples pooled per side,
		// B minus A. The per-round differences are the spread; a bootstrap
		// over rounds and the odd/even split give the uncertainty.
		qa, qb := pooled(res.A, nil), pooled(res.B, nil)
		added := qb.minus(qa)
		na, nb := 0, 0
		for r := range *rounds {
			na, nb = na+len(res.A[r]), nb+len(res.B[r])
		}
		result["latency_rate"] = rate
		result["latency_round_s"] = res.roundSeconds
		result["latency_samples"] = map[string]int{"a": na, "b": nb}
		result["a_latency_us"], result["b_latency_us"] = qa, qb
		result["added_us"] = added
		result["added_p50_us"], result["added_p99_us"] = added.P50, added.P99
		result["added_p50_rounds_us"], result["added_p99_rounds_us"] = summary(d50), summary(d99)
		if *rounds >= 2 {
			result["added_halves_us"] = splitHalves(res.A, res.B)
		}
		if *rounds >= 4 {
			result["added_ci95_us"] = bootstrapAdded(res.A, res.B, 1000)
		}
		result["latency_rounds"] = lat
		if cpuA != nil {
			pc := pairedCPU(cpuA, cpuB, 1000)
			result["latency_cpu"] = pc
			fmt.Fprintf(os.Stderr, "  CPU over the paired rounds, %s ÷ %s: %.4f (95%% interval %.4f…%.4f; per round median %.4f)\n",
				*bName, *aName, pc.Ratio, pc.CI95[0], pc.CI95[1], pc.Rounds.Median)
		}
		fmt.Fprintf(os.Stderr, "  pooled (%d | %d samples): %s p50 %.0fµs p99 %.0fµs | %s p50 %.0fµs p99 %.0fµs | added p50 %+.0fµs p99 %+.0fµs\n",
			na, nb, *aName, qa.P50, qa.P99, *bName, qb.P50, qb.P99, added.P50, added.P99)
	}
	emit(result)
	return nil
}

// cpuTime returns the user+system CPU seconds of process pid so far (all
// its threads), from /proc/<pid>/stat; 0 without a pid.
func cpuTime(pid int) float64 {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces; count from its ')'.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / clockTicks
}

// clockTicks is USER_HZ, 100 on Linux.
const clockTicks = 100

type stats struct {
	Min    float64 `json:"min"`
	Median float64 `json:"median"`
	Max    float64 `json:"max"`
}

func summary(xs []float64) stats {
	s := slices.Clone(xs)
	slices.Sort(s)
	return stats{Min: s[0], Median: median(s), Max: s[len(s)-1]}
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
