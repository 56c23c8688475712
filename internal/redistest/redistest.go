// Package redistest runs redis-server processes for tests: on a free
// 127.0.0.1 port, in the test's temporary directory, stopped by PID.
package redistest

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/idlegate/idlegate/internal/testnet"
)

// Server is one redis-server process. Its port and directory stay the same
// across Kill and Start, so a test can crash it and bring it back where its
// clients expect it.
type Server struct {
	t    testing.TB
	port int
	dir  string
	args []string
	cmd  *exec.Cmd
}

// Need skips t when redis-server or redis-cli is not installed, except on
// CI, where a missing server must fail loudly rather than pass silently.
func Need(t testing.TB) {
	t.Helper()
	for _, bin := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(bin); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is needed for the Redis tests (apt-get install redis-server): %v", bin, err)
			}
			t.Skipf("%s not installed", bin)
		}
	}
}

// Start starts a server without persistence; extra arguments override the
// defaults (later arguments win). It is killed when the test ends.
func Start(t testing.TB, extra ...string) *Server {
	t.Helper()
	Need(t)
	s := &Server{t: t, port: testnet.FreePort(t), dir: t.TempDir(), args: extra}
	s.Start()
	t.Cleanup(s.Kill)
	return s
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// URL is the server's redis:// URL.
func (s *Server) URL() string { return "redis://" + s.Addr() }

// Start runs redis-server and waits until it answers PING.
func (s *Server) Start() {
	s.t.Helper()
	args := append([]string{"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", s.dir, "--logfile", filepath.Join(s.dir, "redis.log")}, s.args...)
	s.cmd = exec.Command("redis-server", args...)
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := s.CLI("PING")
		if err == nil && strings.TrimSpace(out) == "PONG" {
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
			s.t.Fatalf("redis-server on %s did not answer: %v %q\n%s", s.Addr(), err, out, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill stops the server with SIGKILL (like a crash), by PID, and waits for it.
func (s *Server) Kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Kill()
	s.cmd.Wait()
	s.cmd = nil
}

// Signal sends sig to the server process (SIGSTOP: a server that accepts
// connections but does not answer).
func (s *Server) Signal(sig os.Signal) error {
	if s.cmd == nil || s.cmd.Process == nil {
		return fmt.Errorf("redis-server on %s is not running", s.Addr())
	}
	return s.cmd.Process.Signal(sig)
}

// CLI runs redis-cli against the server.
func (s *Server) CLI(args ...string) (string, error) {
	out, err := exec.Command("redis-cli", append([]string{"-h", "127.0.0.1", "-p", strconv.Itoa(s.port)}, args...)...).CombinedOutput()
	return string(out), err
}

// CommandStats is INFO commandstats as command -> calls. Commands that a
// script runs count as calls too.
func (s *Server) CommandStats() map[string]int {
	out, err := s.CLI("INFO", "commandstats")
	if err != nil {
		s.t.Fatalf("INFO commandstats: %v %s", err, out)
	}
	stats := map[string]int{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		name, rest, ok := strings.Cut(line, ":calls=")
		if !ok {
			continue
		}
		n, _ := strconv.Atoi(strings.SplitN(rest, ",", 2)[0])
		stats[strings.TrimPrefix(name, "cmdstat_")] = n
	}
	return stats
}

// Cluster starts a three-master Redis Cluster (no persistence) and waits
// until every node serves every slot. It returns the node addresses.
func Cluster(t testing.TB) []string {
	t.Helper()
	Need(t)
	var addrs []string
	var nodes []*Server
	for i := range 3 {
		// The cluster bus defaults to the port + 10000, which lands in the
		// kernel's ephemeral range (32768-60999 here), where an outgoing
		// connection can hold it: give the bus a port of its own.
		s := Start(t, "--cluster-enabled", "yes", "--cluster-config-file", fmt.Sprintf("nodes-%d.conf", i),
			"--cluster-node-timeout", "2000", "--cluster-port", strconv.Itoa(testnet.FreePort(t)))
		addrs = append(addrs, s.Addr())
		nodes = append(nodes, s)
	}
	cmd := exec.Command("redis-cli", append(append([]string{"--cluster", "create"}, addrs...), "--cluster-replicas", "0", "--cluster-yes")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, n := range nodes {
		for {
			out, _ := n.CLI("CLUSTER", "INFO")
			if strings.Contains(out, "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("cluster node %s not ok:\n%s", n.Addr(), out)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return addrs
}
