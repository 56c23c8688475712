package tests

// Helpers shared by the reliability tests (issue #7): the long/short switch,
// reading Caddy's metrics, and small statistics.

import (
	"bufio"
	"encoding/json"
	"math"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// longRun reports whether the long forms run: IDLEGATE_LONG=1. Without it
// every reliability test runs a short form sized for CI.
func longRun() bool { return os.Getenv("IDLEGATE_LONG") == "1" }

// pick returns long in the long form, short otherwise.
func pick[T any](short, long T) T {
	if longRun() {
		return long
	}
	return short
}

// Metrics scrapes Caddy's admin /metrics and returns every sample as
// "name{labels}" -> value (labels exactly as exposed, sorted by Prometheus).
func (c *Caddy) Metrics(t testing.TB) map[string]float64 {
	t.Helper()
	status, body := c.Admin(t, http.MethodGet, "/metrics", nil)
	if status != http.StatusOK {
		t.Fatalf("admin /metrics: %d %s", status, body)
	}
	return parseMetrics(string(body))
}

func parseMetrics(text string) map[string]float64 {
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[line[:i]] = v
	}
	return out
}

// sumMetric adds every sample of name whose labels contain all of want
// (e.g. `op="write"`).
func sumMetric(m map[string]float64, name string, want ...string) float64 {
	var sum float64
	for k, v := range m {
		base, labels, _ := strings.Cut(k, "{")
		if base != name {
			continue
		}
		ok := true
		for _, w := range want {
			if !strings.Contains(labels, w) {
				ok = false
			}
		}
		if ok {
			sum += v
		}
	}
	return sum
}

// percentile returns the p-th percentile (0..100) of ds, nearest rank.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

// procRSS returns the resident set size of pid in bytes, from /proc.
func procRSS(pid int) (int64, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) >= 1 {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				return kb << 10, err == nil
			}
		}
	}
	return 0, false
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
