// Package tests holds idlegate's end-to-end tests: they build the real Caddy
// binary (./cmd/caddy), run it as a child process in front of a small real
// application (Upstream), and check the signed webhooks it sends with the
// Standard Webhooks reference library (Receiver).
//
//	go test ./tests/                      # builds ./cmd/caddy once into tests/.cache/
//	IDLEGATE_CADDY_BIN=/abs/caddy go test ./tests/    # a prebuilt binary (a relative path is from tests/)
//	go test -short ./tests/               # no binary: only the harness's own checks
//
// Everything listens on 127.0.0.1 only. Each test gets its own ports, its own
// Caddy data directory (so its bbolt store is its own) and its own admin
// endpoint; the Caddy it starts is killed by process group when it ends.
//
// Waiting is always polling with a deadline (Eventually, Consistently,
// Receiver.WaitEvents); nothing sleeps and hopes.
package tests
