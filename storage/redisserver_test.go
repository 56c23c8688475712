package storage_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/idlegate/idlegate/storage"
)

// The Redis store tests run real redis-server processes (internal/redistest).

var prefixes atomic.Int64

// uniquePrefix keeps the stores of one server apart.
func uniquePrefix() string { return fmt.Sprintf("test%d:", prefixes.Add(1)) }

func openRedis(t *testing.T, o storage.RedisOptions) *storage.Redis {
	t.Helper()
	st, err := storage.OpenRedis(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}
