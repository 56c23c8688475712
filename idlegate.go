// Package idlegate plugs the idle_session handler into Caddy. Build it in
// with
//
//	xcaddy build --with github.com/idlegate/idlegate
//
// The module itself lives in package caddymodule; this package only imports
// it, the way caddy-l4 does, so the module path is the one to pass to xcaddy.
package idlegate

import _ "github.com/idlegate/idlegate/caddymodule"
