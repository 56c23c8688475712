package main

import (
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
