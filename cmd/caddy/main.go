// Command caddy is Caddy with its standard modules plus idlegate.
//
//	go build ./cmd/caddy
//	./caddy run --config Caddyfile.example --adapter caddyfile
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"
	_ "github.com/idlegate/idlegate"
)

func main() {
	caddycmd.Main()
}
