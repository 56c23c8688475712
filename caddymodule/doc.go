// Package caddymodule is the Caddy adapter of idlegate: the idle_session HTTP
// handler, its Caddyfile and JSON configuration, the admin API and metrics.
package caddymodule
