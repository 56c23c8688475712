// Package testnet gives tests loopback ports for the servers they start.
package testnet

import (
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"testing"
)

var (
	mu    sync.Mutex
	given = map[int]bool{}
)

// FreePort returns a 127.0.0.1 port that is free now, for a server the test
// is about to start. It is taken below the kernel's ephemeral range (32768
// and up on Linux): a port from there, free when checked, can become the
// local end of any outgoing connection before the server that was given it
// binds it (Caddy failed to start with "address already in use" that way).
// One test process never hands out the same port twice.
func FreePort(t testing.TB) int {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	for range 1000 {
		port := 20000 + rand.IntN(12000)
		if given[port] {
			continue
		}
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue
		}
		ln.Close()
		given[port] = true
		return port
	}
	t.Fatalf("free port: none free in 20000-31999")
	return 0
}
