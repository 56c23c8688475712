package storage_test

import (
	"context"
	"testing"
	"time"
)

func TestBoltSessionsCountsAZone(t *testing.T) {
	st, _ := seeded(1234, time.Now().UnixNano(), t.TempDir())
	defer st.Close()
	for zone, want := range map[string]int{benchZone: 1234, "other": 0} {
		n, err := st.Sessions(context.Background(), zone)
		if err != nil || n != want {
			t.Fatalf("Sessions(%q) = %d, %v; want %d", zone, n, err, want)
		}
	}
}
