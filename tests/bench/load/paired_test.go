package main

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// pooledQuantile must agree with sorting the pooled samples (each round
// repeated weight times) and taking sorted[int(p*n)], as run does.
func TestPooledQuantile(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 200 {
		rounds := make([][]uint32, 1+rng.IntN(6))
		weight := make([]int, len(rounds))
		for r := range rounds {
			for range rng.IntN(300) {
				rounds[r] = append(rounds[r], uint32(rng.ExpFloat64()*1000))
			}
			slices.Sort(rounds[r])
			weight[r] = rng.IntN(3)
		}
		var all []uint32
		for r, s := range rounds {
			for range weight[r] {
				all = append(all, s...)
			}
		}
		if len(all) == 0 {
			continue
		}
		slices.Sort(all)
		for _, p := range []float64{0, 0.5, 0.9, 0.99, 0.999, 1} {
			want := float64(all[min(len(all)-1, int(p*float64(len(all))))])
			if got := pooledQuantile(rounds, weight, p); got != want {
				t.Fatalf("p=%v n=%d: got %v, want %v", p, len(all), got, want)
			}
		}
	}
}

func TestPairedCPU(t *testing.T) {
	// Cumulative CPU seconds at 5 boundaries: A spends 1 s a round, B
	// 1.02 s, except one noisy round where both spend twice as much.
	a := []float64{10, 11, 12, 14, 15}
	b := []float64{20, 21.02, 22.04, 24.08, 25.10}
	got := pairedCPU(a, b, 200)
	if math.Abs(got.Ratio-1.02) > 1e-9 {
		t.Errorf("ratio = %v, want 1.02", got.Ratio)
	}
	if math.Abs(got.Rounds.Min-1.02) > 1e-9 || math.Abs(got.Rounds.Max-1.02) > 1e-9 {
		t.Errorf("per-round ratios = %+v, want all 1.02", got.Rounds)
	}
	if math.Abs(got.CI95[0]-1.02) > 1e-9 || math.Abs(got.CI95[1]-1.02) > 1e-9 {
		t.Errorf("interval = %v, want [1.02, 1.02] when every round agrees", got.CI95)
	}
	// Rounds that disagree widen the interval around the pooled ratio.
	b = []float64{20, 21.00, 22.04, 24.08, 25.16}
	got = pairedCPU(a, b, 500)
	if !(got.CI95[0] < got.Ratio && got.Ratio < got.CI95[1]) || got.CI95[0] < 1.0 || got.CI95[1] > 1.16 {
		t.Errorf("interval %v around %v", got.CI95, got.Ratio)
	}
}
