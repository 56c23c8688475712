package main

import (
	"bufio"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"slices"
	"sort"
	"sync"
	"time"
)

// pairedResult is what runPaired measured: per side, per round, the
// latencies (µs, sorted) of the requests due in that round.
type pairedResult struct {
	A, B         [][]uint32
	errA, errB   int
	nonA, nonB   int
	firstErr     error
	roundSeconds float64
}

// runPaired drives A and B from one fixed-rate schedule: for each due time
// it queues one request to A and one to B at the same instant, each side
// served by its own pool of connections. A stall of the machine (or of the
// load tool) therefore delays both sides' requests of that instant alike,
// and their difference is what the servers themselves add. Latency is from
// the due time (coordinated omission corrected: a request that waited for a
// free connection, or for the scheduler to wake up, counts that wait).
//
// rate is per side. The schedule runs warm-up (unmeasured) and then rounds
// consecutive windows of roundDur; a request belongs to the round its due
// time falls in, and every request due in the measured window is waited
// for, so slow answers at the end of a window are not censored.
//
// atBoundary, if not nil, is called at the start of each round and at the
// end of the last (rounds+1 calls, with 0..rounds), e.g. to read the
// servers' CPU time per round.
func runPaired(a, b runConfig, rate float64, warmup, roundDur time.Duration, rounds int, atBoundary func(int)) (pairedResult, error) {
	step := time.Duration(float64(time.Second) / rate)
	start := time.Now().Add(20 * time.Millisecond)
	measureAt := start.Add(warmup)
	end := measureAt.Add(time.Duration(rounds) * roundDur)
	var boundaries sync.WaitGroup
	if atBoundary != nil {
		boundaries.Go(func() {
			for r := 0; r <= rounds; r++ {
				time.Sleep(time.Until(measureAt.Add(time.Duration(r) * roundDur)))
				atBoundary(r)
			}
		})
	}
	// Room for every due time, so the scheduler never blocks on a queue
	// when a side falls behind: the request waits, its latency grows.
	n := int(end.Sub(start)/step) + 2
	res := pairedResult{A: make([][]uint32, rounds), B: make([][]uint32, rounds), roundSeconds: roundDur.Seconds()}

	var mu sync.Mutex
	type side struct {
		cfg     runConfig
		queue   chan time.Time
		lat     [][]uint32
		errs    *int
		non200  *int
		workers sync.WaitGroup
	}
	sides := [2]*side{
		{cfg: a, queue: make(chan time.Time, n), lat: res.A, errs: &res.errA, non200: &res.nonA},
		{cfg: b, queue: make(chan time.Time, n), lat: res.B, errs: &res.errB, non200: &res.nonB},
	}
	for si, s := range sides {
		for c := range s.cfg.conns {
			s.workers.Add(1)
			go func() {
				defer s.workers.Done()
				rng := rand.New(rand.NewPCG(uint64(si<<16|c)+1, uint64(start.UnixNano())))
				local := make([][]uint32, rounds)
				var errs, non200 int
				var first error
				var conn net.Conn
				var br *bufio.Reader
				req := make([]byte, 0, 256)
				for due := range s.queue {
					status, err := func() (int, error) {
						if conn == nil {
							var err error
							if conn, err = net.Dial("tcp", s.cfg.addr); err != nil {
								return 0, err
							}
							br = bufio.NewReaderSize(conn, 16<<10)
						}
						// A hung server fails the run rather than hanging it.
						conn.SetDeadline(time.Now().Add(10 * time.Second))
						req = appendRequest(req[:0], &s.cfg, rng)
						if _, err := conn.Write(req); err != nil {
							return 0, err
						}
						status, keep, err := readResponse(br)
						if err != nil || !keep {
							conn.Close()
							conn = nil
						}
						return status, err
					}()
					done := time.Now()
					if err != nil {
						if conn != nil {
							conn.Close()
							conn = nil
						}
						errs++
						first = cmp(first, err)
						continue
					}
					if status != 200 {
						non200++
					}
					if due.Before(measureAt) {
						continue
					}
					r := int(due.Sub(measureAt) / roundDur)
					local[r] = append(local[r], uint32(min(done.Sub(due).Microseconds(), math.MaxUint32)))
				}
				if conn != nil {
					conn.Close()
				}
				mu.Lock()
				for r := range local {
					s.lat[r] = append(s.lat[r], local[r]...)
				}
				*s.errs += errs
				*s.non200 += non200
				res.firstErr = cmp(res.firstErr, first)
				mu.Unlock()
			}()
		}
	}

	// The scheduler. Which queue gets a due time first alternates, so
	// that neither side's connection is always woken first.
	for i := 0; ; i++ {
		due := start.Add(time.Duration(i) * step)
		if !due.Before(end) {
			break
		}
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		first, second := sides[i%2], sides[1-i%2]
		first.queue <- due
		second.queue <- due
	}
	for _, s := range sides {
		close(s.queue)
	}
	for _, s := range sides {
		s.workers.Wait()
	}
	boundaries.Wait()
	for r := range rounds {
		slices.Sort(res.A[r])
		slices.Sort(res.B[r])
		if len(res.A[r]) == 0 || len(res.B[r]) == 0 {
			return res, fmt.Errorf("round %d: no request completed (first error: %v)", r+1, res.firstErr)
		}
	}
	return res, nil
}

// appendRequest appends one GET request of cfg to req, with a session
// cookie chosen at random.
func appendRequest(req []byte, cfg *runConfig, rng *rand.Rand) []byte {
	req = append(req, "GET "...)
	req = append(req, cfg.path...)
	req = append(req, " HTTP/1.1\r\nHost: bench\r\nUser-Agent: idlegate-bench\r\n"...)
	if cfg.cookie != "" {
		req = append(req, "Cookie: csrftoken=Qm9yZ2VzIGFuZCBiZW5jaG1hcmtz; "...)
		req = append(req, cfg.cookie...)
		req = append(req, '=')
		if len(cfg.values) > 0 {
			req = append(req, cfg.values[rng.IntN(len(cfg.values))]...)
		} else {
			req = cookieValue(req, rng.IntN(cfg.sessions))
		}
		req = append(req, "; theme=dark\r\n"...)
	}
	return append(req, "\r\n"...)
}

// pooledQuantile is the p-quantile of the union of the sorted rounds, round
// r counted weight[r] times (nil: each once): the smallest v such that more
// than p of the pooled samples are ≤ v — the same definition as run's
// sorted[int(p*n)]. It searches on the value, so a bootstrap resample of
// the rounds costs no copy and no sort.
func pooledQuantile(rounds [][]uint32, weight []int, p float64) float64 {
	w := func(r int) int {
		if weight == nil {
			return 1
		}
		return weight[r]
	}
	n, hi := 0, uint32(0)
	for r, s := range rounds {
		if w(r) > 0 && len(s) > 0 {
			n += w(r) * len(s)
			hi = max(hi, s[len(s)-1])
		}
	}
	if n == 0 {
		return math.NaN()
	}
	k := min(n-1, int(p*float64(n))) + 1 // samples that must be ≤ the answer
	atMost := func(v uint32) int {
		c := 0
		for r, s := range rounds {
			if w(r) > 0 {
				c += w(r) * sort.Search(len(s), func(i int) bool { return s[i] > v })
			}
		}
		return c
	}
	lo := uint32(0)
	for lo < hi {
		mid := lo + (hi-lo)/2
		if atMost(mid) >= k {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return float64(lo)
}

// quantiles are the latency quantiles reported, in µs.
type quantiles struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
}

var quantileLevels = []float64{0.50, 0.90, 0.99, 0.999}

func pooled(rounds [][]uint32, weight []int) quantiles {
	var q [4]float64
	for i, p := range quantileLevels {
		q[i] = pooledQuantile(rounds, weight, p)
	}
	return quantiles{q[0], q[1], q[2], q[3]}
}

func (q quantiles) minus(o quantiles) quantiles {
	return quantiles{q.P50 - o.P50, q.P90 - o.P90, q.P99 - o.P99, q.P999 - o.P999}
}

// interval is a [low, high] range of a figure, in µs.
type interval [2]float64

type intervals struct {
	P50  interval `json:"p50"`
	P90  interval `json:"p90"`
	P99  interval `json:"p99"`
	P999 interval `json:"p999"`
}

// bootstrapAdded is a 95% interval of the pooled differences B - A: the
// rounds are resampled with replacement, the same rounds for both sides
// (a round's A and B samples saw the same moments of the machine, and
// samples within a round are not independent of each other, so the round
// is the unit that is resampled).
func bootstrapAdded(a, b [][]uint32, reps int) intervals {
	rng := rand.New(rand.NewPCG(1, 2))
	rounds := len(a)
	var d [4][]float64
	weight := make([]int, rounds)
	for range reps {
		clear(weight)
		for range rounds {
			weight[rng.IntN(rounds)]++
		}
		q := pooled(b, weight).minus(pooled(a, weight))
		for i, v := range []float64{q.P50, q.P90, q.P99, q.P999} {
			d[i] = append(d[i], v)
		}
	}
	var out [4]interval
	for i := range d {
		slices.Sort(d[i])
		out[i] = interval{percentileOf(d[i], 0.025), percentileOf(d[i], 0.975)}
	}
	return intervals{out[0], out[1], out[2], out[3]}
}

// percentileOf is the p-quantile of sorted xs, linearly interpolated.
func percentileOf(xs []float64, p float64) float64 {
	x := p * float64(len(xs)-1)
	i := int(x)
	if i+1 >= len(xs) {
		return xs[len(xs)-1]
	}
	return xs[i] + (x-float64(i))*(xs[i+1]-xs[i])
}

// splitHalves is the pooled difference B - A on the odd rounds (1st, 3rd,
// ...) and on the even ones: two independent estimates from the same run,
// whose gap shows how far one estimate from half the samples can be off.
func splitHalves(a, b [][]uint32) intervals {
	odd := make([]int, len(a))
	even := make([]int, len(a))
	for r := range a {
		if r%2 == 0 {
			odd[r] = 1
		} else {
			even[r] = 1
		}
	}
	o := pooled(b, odd).minus(pooled(a, odd))
	e := pooled(b, even).minus(pooled(a, even))
	return intervals{interval{o.P50, e.P50}, interval{o.P90, e.P90}, interval{o.P99, e.P99}, interval{o.P999, e.P999}}
}

// roundResult summarises one side's sorted latencies of one round.
func roundResult(lat []uint32, seconds float64) runResult {
	pct := func(p float64) float64 { return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))]) }
	return runResult{
		Requests: len(lat), Total: len(lat), RPS: float64(len(lat)) / seconds,
		P50: pct(0.50), P90: pct(0.90), P99: pct(0.99), P999: pct(0.999),
	}
}

// cpuPaired is B's CPU time over A's across the paired rounds.
type cpuPaired struct {
	Ratio  float64  `json:"ratio"`  // all rounds: B's CPU seconds ÷ A's
	CI95   interval `json:"ci95"`   // bootstrap over rounds
	Rounds stats    `json:"rounds"` // the per-round ratios
}

// pairedCPU takes each server's CPU seconds at the rounds+1 boundaries of
// runPaired. Both servers were sent the same requests in each round, so the
// ratio of CPU time is the ratio of CPU per request.
func pairedCPU(a, b []float64, reps int) cpuPaired {
	rounds := len(a) - 1
	da, db := make([]float64, rounds), make([]float64, rounds)
	per := make([]float64, 0, rounds)
	for r := range rounds {
		da[r], db[r] = a[r+1]-a[r], b[r+1]-b[r]
		if da[r] > 0 {
			per = append(per, db[r]/da[r])
		}
	}
	out := cpuPaired{Ratio: (b[rounds] - b[0]) / (a[rounds] - a[0])}
	if len(per) > 0 {
		out.Rounds = summary(per)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	boot := make([]float64, 0, reps)
	for range reps {
		var sa, sb float64
		for range rounds {
			r := rng.IntN(rounds)
			sa, sb = sa+da[r], sb+db[r]
		}
		if sa > 0 {
			boot = append(boot, sb/sa)
		}
	}
	if len(boot) > 0 {
		slices.Sort(boot)
		out.CI95 = interval{percentileOf(boot, 0.025), percentileOf(boot, 0.975)}
	}
	return out
}
